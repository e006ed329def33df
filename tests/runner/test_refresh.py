"""``dbkit sync --refresh``: a truncate refresh of some streams of a CDC (GLOBAL state) connection,
end to end on SQLite (source-sqlite's change log into destination-sqlite)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dbkit import cli
from dbkit.protocol import AirbyteStream, SyncMode
from dbkit.runner.plan import plan_catalog
from dbkit.runner.state import SyncState
from source_sqlite import install_change_log, truncate_table


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return [tuple(r) for r in conn.execute(f'SELECT id, name FROM "{table}" ORDER BY id')]


def generations(db: Path, table: str) -> list[int]:
    with closing(sqlite3.connect(db)) as conn:
        query = f'SELECT DISTINCT _airbyte_generation_id FROM "{table}" ORDER BY 1'
        return [r[0] for r in conn.execute(query)]


@pytest.fixture
def connection(tmp_path: Path) -> dict[str, Path]:
    source = tmp_path / "source.db"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.executescript(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);"
            "CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT);"
        )
        conn.executemany("INSERT INTO people VALUES (?, ?)", [(i, f"person {i}") for i in range(1, 21)])
        conn.executemany("INSERT INTO pets VALUES (?, ?)", [(i, f"pet {i}") for i in range(1, 6)])
    with closing(sqlite3.connect(source)) as conn:
        install_change_log(conn, ["people", "pets"])
    config = tmp_path / "source.json"
    config.write_text(
        json.dumps(
            {
                "path": str(source),
                "checkpoint_records": 5,
                "replication_method": {"method": "CDC", "initial_waiting_seconds": 5},
            }
        )
    )
    return {"source": source, "config": config, "warehouse": tmp_path / "w.db", "state": tmp_path / "s.json"}


def sync(connection: dict[str, Path], *extra: str) -> int:
    return cli.main(
        [
            "sync",
            "--source", "source-sqlite", "--source-config", str(connection["config"]),
            "--destination", f"sqlite:///{connection['warehouse']}",
            "--state-file", str(connection["state"]),
            "--in-process", "--no-progress", *extra,
        ]
    )  # fmt: skip


def entry(connection: dict[str, Path], name: str) -> dict[str, Any]:
    doc = json.loads(connection["state"].read_text())
    found: dict[str, Any] = next(e for e in doc["streams"] if e["stream_descriptor"]["name"] == name)
    return found


def test_refresh_after_a_truncate_replaces_that_stream_only(
    connection: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, warehouse = connection["source"], connection["warehouse"]
    assert sync(connection) == 0
    assert rows(warehouse, "people") == rows(source, "people")
    shared = json.loads(connection["state"].read_text())["global"]["shared_state"]
    assert shared["mode"] == "cdc"

    with closing(sqlite3.connect(source)) as conn:
        truncate_table(conn, "people")
        with conn:
            conn.executemany("INSERT INTO people VALUES (?, ?)", [(i, f"new {i}") for i in (3, 50)])
            conn.execute("UPDATE pets SET name = 'renamed' WHERE id = 2")
    capsys.readouterr()
    assert sync(connection) == 1, "a truncate must stop the sync"
    output = capsys.readouterr()
    assert "--refresh people" in output.out + output.err

    pets_generation = entry(connection, "pets")["generation_id"]
    people_generation = entry(connection, "people")["generation_id"]
    assert sync(connection, "--refresh", "people") == 0
    assert rows(warehouse, "people") == rows(source, "people") == [(3, "new 3"), (50, "new 50")]
    assert rows(warehouse, "pets") == rows(source, "pets")
    people, pets = entry(connection, "people"), entry(connection, "pets")
    assert people["generation_id"] == people_generation + 1
    assert pets["generation_id"] == pets_generation, "a stream not refreshed keeps its generation"
    assert generations(warehouse, "people") == [people_generation + 1]
    assert people["finished"] is True
    assert people["refreshing"] is True  # until a later sync plans it normally

    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("UPDATE people SET name = 'later' WHERE id = 50")
        conn.execute("INSERT INTO pets VALUES (9, 'pet 9')")
    assert sync(connection) == 0
    assert rows(warehouse, "people") == rows(source, "people")
    assert rows(warehouse, "pets") == rows(source, "pets")
    people = entry(connection, "people")
    assert (people["generation_id"], people["refreshing"]) == (people_generation + 1, False)
    assert people["last_sync"]["records_read"] == 1, "the sync after the refresh reads only changes"


def test_refresh_of_an_unknown_stream_is_refused(
    connection: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sync(connection, "--refresh", "nope") == 1
    assert "unknown stream(s) nope" in capsys.readouterr().err


def test_an_unfinished_refresh_is_continued_by_the_next_sync(tmp_path: Path) -> None:
    stream = AirbyteStream(
        "people",
        {"type": "object", "properties": {"id": {"type": "integer"}}},
        (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
        source_defined_cursor=True,
        default_cursor_field=("_ab_cdc_cursor",),
        source_defined_primary_key=(("id",),),
    )
    state = SyncState(tmp_path / "state.json")
    plan_catalog(state, [stream], False)
    state.entry(stream.descriptor).state = {"v": 1, "mode": "full_refresh", "complete": True}
    state.entry(stream.descriptor).finished = True

    refreshed = plan_catalog(state, [stream], False, ["people"]).streams[0]
    assert (refreshed.generation_id, refreshed.minimum_generation_id) == (1, 1)
    assert state.entry(stream.descriptor).state is None, "a refresh drops the stream's state"
    partial = {"v": 1, "mode": "full_refresh", "by": ["id"], "after": [7]}
    state.entry(stream.descriptor).state = partial  # acknowledged, then the sync died

    continued = plan_catalog(state, [stream], False).streams[0]
    assert (continued.generation_id, continued.minimum_generation_id) == (1, 1)
    assert state.entry(stream.descriptor).state == partial, "the refresh resumes where it was"
    state.entry(stream.descriptor).finished = True

    normal = plan_catalog(state, [stream], False).streams[0]
    assert (normal.generation_id, normal.minimum_generation_id) == (1, 0)
    assert state.entry(stream.descriptor).refreshing is False
