"""What ``dbkit.source`` promises a connector author (changing this list is an API change)."""

from __future__ import annotations

import dbkit.source

EXPECTED = {
    "STATE_VERSION",
    "Cancellation",
    "Cancelled",
    "Changes",
    "ColumnInfo",
    "CursorState",
    "FullRefreshState",
    "GlobalState",
    "PlanJob",
    "PythonRecordEncoder",
    "ReadChunk",
    "ReadContext",
    "ReadJob",
    "ReadOptions",
    "RecordEncoder",
    "RowLocator",
    "SourceDialect",
    "SourceReader",
    "SqlSource",
    "StreamOutcome",
    "StreamState",
    "TableInfo",
    "catalog_streams",
    "parse_global_state",
    "parse_stream_state",
}


def test_the_source_surface() -> None:
    assert set(dbkit.source.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(dbkit.source, name) is not None
