"""source-sqlite as a platform runs it: the real ``source-sqlite`` program in a subprocess.

spec / check / discover / read with a state file, exit codes, output that is nothing but
protocol lines, and a database that the source never changes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airbyte_protocol.models import AirbyteMessage

from dbkit.protocol import parse_configured_catalog, validate_lines

PROGRAM = str(Path(sys.executable).parent / "source-sqlite")


def run(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([PROGRAM, *argv], capture_output=True, timeout=120, check=False)
    lines = done.stdout.splitlines()
    messages = [json.loads(line) for line in lines]  # stdout holds protocol lines only
    for message in messages:
        AirbyteMessage.model_validate(message)
    return done.returncode, messages


def write(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document))
    return str(path)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC,
                                 updated_at DATETIME);
            CREATE TABLE notes (body TEXT);
            CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 50;
            """
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(i, f"c{i % 4}", i * 10.5, f"2024-01-{1 + i // 3:02d} 10:00:00") for i in range(1, 13)],
        )
        conn.executemany("INSERT INTO notes VALUES (?)", [("a",), ("b",), ("c",)])
    conn.close()
    return path


def test_spec() -> None:
    rc, messages = run("spec")
    assert rc == 0
    (spec,) = messages
    properties = spec["spec"]["connectionSpecification"]["properties"]
    assert {"path", "include_tables", "exclude_tables", "checkpoint_records"} <= set(properties)
    assert spec["spec"]["connectionSpecification"]["required"] == ["path"]


def test_check(database: Path, tmp_path: Path) -> None:
    rc, messages = run("check", "--config", write(tmp_path / "ok.json", {"path": str(database)}))
    assert rc == 0
    assert messages[-1]["connectionStatus"] == {"status": "SUCCEEDED"}

    missing = tmp_path / "missing.db"
    rc, messages = run("check", "--config", write(tmp_path / "missing.json", {"path": str(missing)}))
    assert rc == 0
    status = messages[-1]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert str(missing) in status["message"]
    assert not missing.exists()  # checking did not create it

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    rc, messages = run("check", "--config", write(tmp_path / "garbage.json", {"path": str(garbage)}))
    assert rc == 0
    assert messages[-1]["connectionStatus"]["status"] == "FAILED"
    assert "not a SQLite database" in messages[-1]["connectionStatus"]["message"]

    rc, messages = run("check", "--config", write(tmp_path / "bad.json", {"path": "x", "colour": "red"}))
    assert rc == 0
    assert messages[-1]["connectionStatus"]["status"] == "FAILED"
    assert "colour" in messages[-1]["connectionStatus"]["message"]


def test_discover_then_read_and_resume_from_a_state_file(database: Path, tmp_path: Path) -> None:
    before = database.read_bytes()
    config = write(tmp_path / "config.json", {"path": str(database), "checkpoint_records": 5})
    rc, messages = run("discover", "--config", config)
    assert rc == 0
    streams = {s["name"]: s for s in messages[-1]["catalog"]["streams"]}
    assert set(streams) == {"orders", "notes", "big_orders"}
    assert streams["orders"]["default_cursor_field"] == ["updated_at"]

    catalog_doc = {
        "streams": [
            {
                "stream": streams["orders"],
                "sync_mode": "incremental",
                "destination_sync_mode": "append_dedup",
                "primary_key": [["id"]],
            },
            {"stream": streams["notes"], "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"},
            {"stream": streams["big_orders"], "sync_mode": "full_refresh", "destination_sync_mode": "append"},
        ]
    }
    catalog = write(tmp_path / "catalog.json", catalog_doc)
    done = subprocess.run(
        [PROGRAM, "read", "--config", config, "--catalog", catalog],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert not validate_lines(done.stdout.splitlines(), parse_configured_catalog(catalog_doc))
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert len([r for r in records if r["stream"] == "orders"]) == 12
    assert [r["data"] for r in records if r["stream"] == "notes"] == [
        {"body": "a"},
        {"body": "b"},
        {"body": "c"},
    ]
    assert sorted(r["data"]["id"] for r in records if r["stream"] == "big_orders") == list(range(5, 13))
    orders_states = [
        m["state"]
        for m in messages
        if m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == "orders"
    ]
    assert len(orders_states) == 3  # after 5 and 10 records, and the final one
    final_position = orders_states[-1]["stream"]["stream_state"]["position"]
    assert final_position["cursor"] == "2024-01-05 10:00:00"

    # resume from the first checkpoint: exactly the 7 rows after it
    state = write(tmp_path / "state.json", [orders_states[0]])
    rc, resumed = run("read", "--config", config, "--catalog", catalog, "--state", state)
    assert rc == 0
    ids = [
        m["record"]["data"]["id"]
        for m in resumed
        if m["type"] == "RECORD" and m["record"]["stream"] == "orders"
    ]
    assert ids == list(range(6, 13))

    # a new row at the last cursor value, after the final state: read, and nothing else
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO orders VALUES (100, 'late', 1, '2024-01-05 10:00:00')")
    conn.close()
    before = database.read_bytes()
    state = write(tmp_path / "state2.json", [orders_states[-1]])
    rc, again = run("read", "--config", config, "--catalog", catalog, "--state", state)
    assert rc == 0
    ids = [
        m["record"]["data"]["id"]
        for m in again
        if m["type"] == "RECORD" and m["record"]["stream"] == "orders"
    ]
    assert ids == [100]
    assert database.read_bytes() == before  # a source never writes to the database it reads


def test_a_failed_stream_exits_non_zero_with_a_trace(database: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", {"path": str(database)})
    rc, messages = run("discover", "--config", config)
    streams = {s["name"]: s for s in messages[-1]["catalog"]["streams"]}
    catalog = write(
        tmp_path / "catalog.json",
        {
            "streams": [
                {"stream": streams[name], "sync_mode": "full_refresh", "destination_sync_mode": "append"}
                for name in ("notes", "orders")
            ]
        },
    )
    with sqlite3.connect(database) as conn:
        conn.execute("DROP VIEW big_orders")
        conn.execute("DROP TABLE notes")
    conn.close()
    rc, messages = run("read", "--config", config, "--catalog", catalog)
    assert rc == 1
    statuses = [
        (m["trace"]["stream_status"]["stream_descriptor"]["name"], m["trace"]["stream_status"]["status"])
        for m in messages
        if m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS"
    ]
    assert statuses == [
        ("notes", "STARTED"),
        ("notes", "INCOMPLETE"),
        ("orders", "STARTED"),
        ("orders", "COMPLETE"),
    ]
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["failure_type"] == "config_error"
    assert errors[0]["stream_descriptor"] == {"name": "notes"}

    rc, messages = run("read", "--config", config, "--catalog", str(tmp_path / "nope.json"))
    assert rc == 1
    assert messages[-1]["trace"]["error"]["failure_type"] == "config_error"
    assert "nope.json" in messages[-1]["trace"]["error"]["message"]
