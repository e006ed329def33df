"""destination-sqlite as the platform runs it: the ``destination-sqlite`` console script in a
subprocess, Airbyte messages on stdin, protocol messages on stdout, a real SQLite file."""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for

EXE = shutil.which("destination-sqlite", path=str(Path(sys.executable).parent)) or "destination-sqlite"
FIELDS = {
    "id": json_schema_for(AirbyteType.INTEGER),
    "updated": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
    "amount": json_schema_for(AirbyteType.NUMBER),
}


def _catalog(mode: str, **extra: Any) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "stream": {
            "name": "orders",
            "json_schema": {"type": "object", "properties": FIELDS},
            "supported_sync_modes": ["full_refresh", "incremental"],
        },
        "sync_mode": "incremental",
        "destination_sync_mode": mode,
        "primary_key": [["id"]],
        "cursor_field": ["updated"],
        **extra,
    }
    return {"streams": [stream]}


def _record(i: int, updated: str, amount: Any, emitted_at: int) -> dict[str, Any]:
    data = {"id": i, "updated": updated, "amount": amount}
    return {"type": "RECORD", "record": {"stream": "orders", "data": data, "emitted_at": emitted_at}}


def _state(n: int, state_id: int) -> dict[str, Any]:
    descriptor = {"name": "orders"}
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": descriptor, "stream_state": {"cursor": n}},
            "sourceStats": {"recordCount": 1.0},
            "id": state_id,
        },
    }


COMPLETE = {
    "type": "TRACE",
    "trace": {
        "type": "STREAM_STATUS",
        "emitted_at": 1.0,
        "stream_status": {"stream_descriptor": {"name": "orders"}, "status": "COMPLETE"},
    },
}


class Files:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = tmp_path / "out.sqlite"

    def config(self, **extra: Any) -> Path:
        path = self.tmp / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps({"path": str(self.db), **extra}))
        return path

    def catalog(self, cat: dict[str, Any]) -> Path:
        path = self.tmp / f"catalog-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(cat))
        return path

    def write(
        self, cat: dict[str, Any], lines: Sequence[Any], **config: Any
    ) -> tuple[int, list[dict[str, Any]]]:
        stdin = b"".join(
            (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
        )
        proc = subprocess.run(
            [EXE, "write", "--config", str(self.config(**config)), "--catalog", str(self.catalog(cat))],
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
        messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return proc.returncode, messages

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def test_spec_and_check(files: Files) -> None:
    spec = subprocess.run([EXE, "spec"], capture_output=True, check=True, timeout=60)
    (message,) = [json.loads(line) for line in spec.stdout.splitlines()]
    assert message["type"] == "SPEC"
    assert message["spec"]["supported_destination_sync_modes"] == ["append", "overwrite", "append_dedup"]
    props = message["spec"]["connectionSpecification"]["properties"]
    assert {"path", "cdc_deletion_mode", "batch_records", "flush_seconds"} <= set(props)
    check = subprocess.run(
        [EXE, "check", "--config", str(files.config())], capture_output=True, check=True, timeout=60
    )
    (status,) = [json.loads(line) for line in check.stdout.splitlines()]
    assert status == {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    assert files.rows("SELECT name FROM sqlite_schema") == []  # the check table was dropped


def test_two_dedup_syncs_through_the_console_script(files: Files) -> None:
    cat = _catalog("append_dedup", generation_id=1, minimum_generation_id=0, sync_id=501)
    big = (
        b'{"type":"RECORD","record":{"stream":"orders","emitted_at":1700000000003,'
        b'"data":{"id":3,"updated":"2024-01-03T00:00:00Z","amount":12345678901234567890.5}}}'
    )
    code, out = files.write(
        cat,
        [
            _record(1, "2024-01-01T00:00:00Z", 1.5, 1_700_000_000_001),
            _record(2, "2024-01-02T00:00:00+02:00", 10, 1_700_000_000_002),
            _state(2, 1),
            big,
            _state(3, 2),
            COMPLETE,
        ],
        batch_records=1,
    )
    assert code == 0, out
    states = [m["state"] for m in out if m["type"] == "STATE"]
    assert [(s["id"], s["destinationStats"]["recordCount"], s["sourceStats"]) for s in states] == [
        (1, 2.0, {"recordCount": 1.0}),
        (2, 1.0, {"recordCount": 1.0}),
    ]
    cat2 = _catalog("append_dedup", generation_id=1, minimum_generation_id=0, sync_id=502)
    code, out = files.write(
        cat2,
        [
            _record(1, "2024-02-01T00:00:00Z", 2.5, 1_700_000_100_000),
            _record(2, "2023-12-31T00:00:00Z", 99, 1_700_000_100_000),  # older cursor: ignored
            _state(4, 3),
            COMPLETE,
        ],
    )
    assert code == 0, out
    rows = files.rows(
        "SELECT id, updated, amount, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id "
        "FROM orders ORDER BY id"
    )
    assert rows == [
        (
            1,
            "2024-02-01T00:00:00.000000Z",
            2.5,
            "2023-11-14T22:15:00.000000Z",
            '{"changes":[],"sync_id":502}',
            1,
        ),
        (
            2,
            "2024-01-01T22:00:00.000000Z",
            10,
            "2023-11-14T22:13:20.002000Z",
            '{"changes":[],"sync_id":501}',
            1,
        ),
        (
            3,
            "2024-01-03T00:00:00.000000Z",
            "12345678901234567890.5",
            "2023-11-14T22:13:20.003000Z",
            '{"changes":[],"sync_id":501}',
            1,
        ),
    ]
    raw_ids = [r[0] for r in files.rows("SELECT _airbyte_raw_id FROM orders")]
    assert len({str(uuid.UUID(r)) for r in raw_ids}) == 3
    assert files.rows("SELECT name FROM sqlite_schema WHERE type = 'table'") == [("orders",)]


def test_invalid_input_fails_with_a_trace_naming_the_line(files: Files) -> None:
    cat = _catalog("append")
    code, out = files.write(
        cat,
        [
            _record(1, "2024-01-01T00:00:00Z", 1, 1),
            _state(1, 1),
            _record(2, "2024-01-01T00:00:00Z", 1, 1),
            b"{oops",
            _state(2, 2),
            COMPLETE,
        ],
    )
    assert code == 1
    assert [m["type"] for m in out] == ["STATE", "TRACE"]
    error = out[1]["trace"]["error"]
    assert error["failure_type"] == "system_error"
    assert error["message"].startswith("line 4 of the input: not valid JSON")
    assert files.rows("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


def test_a_stalled_source_still_gets_its_state_echoed(files: Files) -> None:
    cat = _catalog("append_dedup")
    proc = subprocess.Popen(
        [
            EXE,
            "write",
            "--config",
            str(files.config(flush_seconds=0.5)),
            "--catalog",
            str(files.catalog(cat)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        for line in (_record(1, "2024-01-01T00:00:00Z", 1, 1), _state(1, 1)):
            proc.stdin.write(json.dumps(line).encode() + b"\n")
        proc.stdin.flush()
        started = time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no echo while the input stayed open"
        echo = json.loads(os.read(proc.stdout.fileno(), 65536).splitlines()[0])
        assert echo["type"] == "STATE"
        assert echo["state"]["id"] == 1
        assert time.monotonic() - started >= 0.3
        assert files.rows("SELECT id FROM orders") == [(1,)]
        proc.stdin.write(json.dumps(COMPLETE).encode() + b"\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
