"""Dialect-owned reads (ReadJob): the reader emits their lines and states like any other read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson

from dbkit.entrypoint import launch
from dbkit.protocol import messages as msg
from dbkit.source import ReadChunk, ReadContext, ReadJob, StreamState
from source_sqlite import SqliteSource
from source_sqlite.dialect import SqliteSourceDialect


@dataclass(frozen=True)
class Opaque(StreamState):
    """A job's own checkpoint: the reader only orders and emits it."""

    done: Any

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done}


class CountingJob:
    """Ten records in five chunks; every other chunk is a resumable point."""

    def __init__(self, context: ReadContext) -> None:
        self.context = context
        self.warnings = ["a job may warn"]

    def chunks(self) -> Iterator[ReadChunk]:
        prefix, suffix = msg.record_envelope(self.context.descriptor, 1)
        for chunk in range(5):
            lines = [prefix + orjson.dumps({"id": chunk * 2 + i}) + suffix for i in range(2)]
            yield ReadChunk(lines, 2, Opaque(chunk) if chunk % 2 == 0 else None)

    def final_state(self) -> StreamState:
        return Opaque("all")


class JobDialect(SqliteSourceDialect):
    def read_job(self, context: ReadContext) -> ReadJob | None:
        return CountingJob(context)


class JobSource(SqliteSource):
    dialect_class = JobDialect


def test_a_read_job_is_emitted_with_states_at_its_resumable_points(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    (tmp_path / "c.json").write_bytes(orjson.dumps({"path": str(db), "checkpoint_records": 3}))
    stream = {
        "name": "t",
        "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "supported_sync_modes": ["full_refresh"],
    }
    catalog = {
        "streams": [{"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]
    }
    (tmp_path / "cat.json").write_bytes(orjson.dumps(catalog))
    out = BytesIO()
    code = launch(
        JobSource(),
        ["read", "--config", str(tmp_path / "c.json"), "--catalog", str(tmp_path / "cat.json")],
        stdout=out,
    )
    assert code == 0
    messages = [orjson.loads(line) for line in out.getvalue().splitlines()]
    kinds = [
        (
            m["type"],
            m.get("record", {}).get("data", {}).get("id"),
            m.get("state", {}).get("stream", {}).get("stream_state"),
        )
        for m in messages
        if m["type"] in ("RECORD", "STATE")
    ]
    # checkpoint_records=3: chunk 0 (2 records) is not due yet; chunk 2 (6 records) is; chunk 4 is
    # (4 more); chunks 1 and 3 are not resumable points; the final state always comes
    assert [k for k in kinds if k[0] == "STATE"] == [
        ("STATE", None, {"done": 2}),
        ("STATE", None, {"done": 4}),
        ("STATE", None, {"done": "all"}),
    ]
    assert [k[1] for k in kinds if k[0] == "RECORD"] == list(range(10))
    counts = [m["state"]["sourceStats"]["recordCount"] for m in messages if m["type"] == "STATE"]
    assert counts == [6.0, 4.0, 0.0]
    logs = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    assert any("a job may warn" in text for text in logs)
