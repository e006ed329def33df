"""The source framework: what a source connector author uses.

A connector subclasses :class:`SqlSource` (name, config model, dialect class) and
:class:`SourceDialect` (types, discovery, value binding); it may return its own :class:`ReadJob`
for some streams, yielding :class:`ReadChunk` s with typed state objects as checkpoints.
"""

from dbkit.source.connector import SqlSource
from dbkit.source.dialect import SourceDialect
from dbkit.source.discover import catalog_streams
from dbkit.source.jobs import Cancelled, ReadChunk, ReadContext, ReadJob
from dbkit.source.model import ColumnInfo, RowLocator, TableInfo
from dbkit.source.plan_job import PlanJob
from dbkit.source.reader import Cancellation, ReadOptions, SourceReader, StreamOutcome
from dbkit.source.records import Changes, PythonRecordEncoder, RecordEncoder
from dbkit.source.state import (
    STATE_VERSION,
    CursorState,
    FullRefreshState,
    GlobalState,
    StreamState,
    parse_global_state,
    parse_stream_state,
)

__all__ = [
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
]
