"""The binlog as it goes wrong: purged, reset (renumbered), another server; check's
config_errors for a server or user that cannot do CDC; the traps of binlog clients (a start
position ignored, silent reconnects, replayed transactions); Airbyte's saved offsets."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbkit import ConfigError, Database, TransientError
from dbkit.protocol import StreamDescriptor
from dbkit.source import TableInfo
from source_mysql import MySqlSourceConfig, MySqlSourceDialect
from source_mysql.cdc.reader import MySqlCdcReader, _GtidState

from .test_cdc import MySqlCdc

pytestmark = [pytest.mark.slow]


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> MySqlCdc:
    return MySqlCdc(request, tmp_path)


def reader_for(source: MySqlCdc, db: Database) -> MySqlCdcReader:
    reader = db.dialect.cdc_reader(db)  # type: ignore[attr-defined]
    assert isinstance(reader, MySqlCdcReader)
    return reader


def open_db(source: MySqlCdc, **overrides: Any) -> Database:
    return Database(MySqlSourceDialect(MySqlSourceConfig.model_validate(source.cdc_config(**overrides))))


def table_of(db: Database, name: str) -> dict[StreamDescriptor, TableInfo]:
    with db.connect() as conn:
        info = next(t for t in db.dialect.list_tables(conn) if t.name == name)  # type: ignore[attr-defined]
    return {info.descriptor: info}


def test_reset_master_and_another_server_are_lost_positions(source: MySqlCdc) -> None:
    source.execute(f"CREATE TABLE {source.qualified('dbkit_log')} (id INT PRIMARY KEY, v TEXT)")
    with open_db(source) as db:
        reader = reader_for(source, db)
        saved = reader.current_position()
        assert reader.position_problem(saved) is None
        assert saved.created > 0
        assert saved.server
        # another server: the same binlog names, another history
        source.run("SET GLOBAL server_id = 77")
        try:
            other = reader_for(source, db)
            problem = other.position_problem(saved)
            assert problem is not None
            assert "another server" in problem
        finally:
            source.run("SET GLOBAL server_id = 1")
        # RESET MASTER: binlog.000001 again, created anew, as long as the saved position or longer
        time.sleep(1.1)
        source.run("RESET MASTER")
        for i in range(40):
            source.execute(f"INSERT INTO {source.qualified('dbkit_log')} VALUES ({i}, REPEAT('x', 500))")
        fresh = reader_for(source, db)
        problem = fresh.position_problem(saved)
        assert problem is not None
        assert "reset or renumbered" in problem or "created anew" in problem, problem
        renamed = fresh.current_position()
        if renamed.file == saved.file and renamed.pos > saved.pos:
            assert "created anew" in problem


def test_check_names_what_cdc_needs(source: MySqlCdc) -> None:
    runner = source.runner()
    source.execute(f"CREATE TABLE {source.qualified('dbkit_check')} (id INT PRIMARY KEY)")
    checked = runner.check(source.cdc_config())
    first = checked.connection_status
    assert first["status"] == "SUCCEEDED", first
    assert any("binlog_row_metadata = FULL" in line for line in checked.logs()), checked.logs()

    def failed(config: dict[str, Any], *parts: str) -> None:
        status = runner.check(config).connection_status
        assert status["status"] == "FAILED", status
        for part in parts:
            assert part in status["message"], status["message"]

    for variable, value, expected in (
        ("binlog_format", "'STATEMENT'", "binlog_format = ROW"),
        ("binlog_row_image", "'MINIMAL'", "binlog_row_image = FULL"),
    ):
        source.run(f"SET GLOBAL {variable} = {value}")
        try:
            failed(source.cdc_config(), expected)
        finally:
            source.run(f"SET GLOBAL {variable} = {'ROW' if variable == 'binlog_format' else 'FULL'}")

    def user(*grants: str) -> dict[str, Any]:
        name = f"dbkit_c_{secrets.token_hex(4)}"
        source.run(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw'")
        source.run(f"GRANT SELECT ON `{source.database.database}`.* TO '{name}'@'%'")
        for grant in grants:
            source.run(f"GRANT {grant} ON *.* TO '{name}'@'%'")
        return source.cdc_config(username=name, password="pw")

    failed(user(), "REPLICATION CLIENT")
    failed(user("REPLICATION CLIENT"), "REPLICATION SLAVE")
    assert runner.check(user("REPLICATION CLIENT", "REPLICATION SLAVE")).connection_status["status"] == (
        "SUCCEEDED"
    )


def test_start_position_is_exact_and_nothing_is_replayed(source: MySqlCdc) -> None:
    """A read from a file/position on MariaDB starts there (not at a GTID, not at the file's
    start), and 1,000 rows in 10 transactions give exactly 1,000 images."""
    table = source.qualified("dbkit_exact")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
    with open_db(source) as db:
        reader = reader_for(source, db)
        source.execute(*(f"INSERT INTO {table} VALUES ({i}, 0)" for i in range(5)))
        start = reader.current_position()
        for t in range(10):
            values = ", ".join(f"({100 + t * 100 + i}, {t})" for i in range(100))
            source.execute(f"INSERT INTO {table} VALUES {values}")
        tables = table_of(db, "dbkit_exact")
        upper = reader.current_position()
        images = [c.image["id"] for b in reader.changes(start, upper, tables) for c in b.changes]
        assert len(images) == 1000
        assert sorted(int(i) for i in images) == sorted(
            100 + t * 100 + i for t in range(10) for i in range(100)
        )
        # a second read from the last state: nothing again
        assert [c for b in reader.changes(upper, upper, tables) for c in b.changes] == []


def test_a_dropped_dump_connection_is_an_error_not_a_silent_reconnect(source: MySqlCdc) -> None:
    table = source.qualified("dbkit_dropped")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    with open_db(source, replication_method={"method": "CDC", "initial_waiting_seconds": 120}) as db:
        reader = reader_for(source, db)
        start = reader.current_position()
        source.execute(f"INSERT INTO {table} VALUES (1)")
        tables = table_of(db, "dbkit_dropped")
        # an upper bound the log never reaches: the read waits on heartbeats until its dump is killed
        upper = start.__class__(start.index + 5, 4, "binlog.999999")

        def kill() -> None:
            time.sleep(1.5)
            for row in source.run("SHOW PROCESSLIST")[0]:
                if str(row[4]).startswith("Binlog Dump"):
                    source.run(f"KILL {row[0]}")

        killer = threading.Thread(target=kill)
        killer.start()
        began = time.monotonic()
        seen = []

        def consume() -> None:
            for batch in reader.changes(start, upper, tables):
                seen.extend(batch.changes)

        with pytest.raises(TransientError, match="lost the binlog connection"):
            consume()
        killer.join()
        assert time.monotonic() - began < 30
        assert [c.image["id"] for c in seen] == ["1"]


def test_airbyte_state_resumes_from_its_offset(source: MySqlCdc) -> None:
    """Airbyte source-mysql's GLOBAL state: its offset's file/pos is where the read resumes, and
    streams whose snapshot Airbyte finished are not snapshotted again."""
    from dbkit.testing import configured_catalog

    table = source.qualified("dbkit_moved")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))")
    source.execute(f"INSERT INTO {table} VALUES (1, 'old'), (2, 'old')")
    with open_db(source) as db:
        at = reader_for(source, db).current_position()
    source.execute(f"UPDATE {table} SET v = 'new' WHERE id = 2", f"INSERT INTO {table} VALUES (3, 'new')")
    db_name = source.database.database
    offset = {"transaction_id": None, "ts_sec": 1, "file": at.file, "pos": at.pos, "gtids": at.gtids}
    key = orjson.dumps([db_name, {"server": db_name}]).decode()
    state = {
        "type": "GLOBAL",
        "global": {
            "shared_state": {
                "state": {
                    "mysql_cdc_offset": {key: orjson.dumps(offset).decode()},
                    "mysql_db_history": "[]",
                    "is_compressed": False,
                }
            },
            "stream_states": [
                {
                    "stream_descriptor": {"name": "dbkit_moved", "namespace": db_name},
                    "stream_state": {
                        "stream_name": "dbkit_moved",
                        "stream_namespace": db_name,
                        "cursor_field": [],
                    },
                }
            ],
        },
    }
    runner = source.runner()
    stream = runner.discover(source.cdc_config()).raise_on_failure().stream("dbkit_moved", db_name)
    catalog = configured_catalog([stream], sync_mode="incremental", destination_sync_mode="append_dedup")
    result = runner.read(source.cdc_config(), catalog, [state]).raise_on_failure()
    records = sorted((r["id"], r["v"]) for r in result.records("dbkit_moved"))
    assert records == [(2, "new"), (3, "new")], "only the changes after Airbyte's offset, no snapshot"
    assert result.states()[-1]["global"]["shared_state"]["position"]["file"] == at.file

    bad = {
        **state,
        "global": {**state["global"], "shared_state": {"state": {"mysql_cdc_offset": {key: "{}"}}}},
    }
    failed = runner.read(source.cdc_config(), catalog, [bad])
    assert failed.errors()[0]["failure_type"] == "config_error"


def test_mysql_gtid_sets_grow_with_the_transactions_read() -> None:
    state = _GtidState("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,4e11fa47-71ca-11e1-9e33-c80aa9429562:1")
    state.add_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562", 6)
    state.add_mysql("4e11fa47-71ca-11e1-9e33-c80aa9429562", 3)
    assert state.text() == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7,4e11fa47-71ca-11e1-9e33-c80aa9429562:1:3"
    assert _GtidState("0-1-45,1-2-7").text() == "0-1-45,1-2-7"


def test_a_bad_saved_position_is_a_config_error() -> None:
    reader = MySqlCdcReader(None, None, lambda: None, "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reset"):
        reader.position_from_state({"lsn": 5})


def test_a_position_inside_an_event_is_a_config_error(source: MySqlCdc) -> None:
    """The server refuses a dump from a position that is no event boundary (1236): a config_error,
    never records decoded from the middle of an event."""
    table = source.qualified("dbkit_inside")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    with open_db(source) as db:
        reader = reader_for(source, db)
        now = reader.current_position()
        source.execute(f"INSERT INTO {table} VALUES (1)")
        upper = reader.current_position()
        inside = now.__class__(now.index, 5, now.file, now.gtids, now.server, now.created)
        with pytest.raises(ConfigError, match="can no longer be read"):
            list(reader.changes(inside, upper, table_of(db, "dbkit_inside")))


def test_a_transaction_larger_than_a_batch_has_no_position_inside(source: MySqlCdc) -> None:
    """12,000 rows in one transaction: batches inside it carry no position (a read cannot resume
    in the middle of a transaction), the one that ends it does, and every row comes once."""
    table = source.qualified("dbkit_big")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))")
    with open_db(source) as db:
        reader = reader_for(source, db)
        start = reader.current_position()
        source.execute(f"INSERT INTO {table} SELECT seq, CONCAT('v', seq) FROM seq_1_to_12000")
        upper = reader.current_position()
        batches = list(reader.changes(start, upper, table_of(db, "dbkit_big")))
    assert [b.position is None for b in batches[:-1]] == [True] * (len(batches) - 1)
    assert len(batches) >= 3
    assert batches[-1].position == upper
    ids = [int(c.image["id"]) for b in batches for c in b.changes]
    assert sorted(ids) == list(range(1, 12001))
