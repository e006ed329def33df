"""destination-mysql beyond the shared suite: bad configs, values exactly as stored, a value the
database still refuses, names, and the LOAD DATA LOCAL handler."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit import load_config
from dbkit.db import AirbyteType, json_schema_for
from dbkit.destination import plan_tables
from dbkit.protocol import parse_configured_catalog
from dbkit.testing import configured_catalog
from dbkit.testing.suites import (
    ITEM_SCHEMA,
    MysqlDestinationHarness,
    item,
    record,
    state,
    status,
    stream,
    sync_messages,
)
from destination_mysql import MySqlDestination
from destination_mysql.connection import StreamingConnection, load_stream

pytestmark = pytest.mark.mysql


class Mysql(MysqlDestinationHarness):
    command: ClassVar[str] = "destination-mysql"
    connector_class: ClassVar[type[Any]] = MySqlDestination

    def config(self, **overrides: Any) -> dict[str, Any]:
        return super().config(**{"ssl": False, **overrides})

    def plan(self, catalog: dict[str, Any], name: str) -> Any:
        dialect = MySqlDestination.dialect_class(load_config(MySqlDestination.config_model, self.config()))
        (plan,) = [
            p for d, p in plan_tables(dialect, parse_configured_catalog(catalog)).items() if d.name == name
        ]
        return plan

    def query(self, text: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(text), params)]


@pytest.fixture
def my(request: pytest.FixtureRequest, tmp_path: Path) -> Mysql:
    return Mysql(request, tmp_path)


def catalog(
    props: dict[str, Any], name: str = "t", mode: str = "append", pk: list[str] | None = None
) -> dict[str, Any]:
    return configured_catalog(
        [stream(name, props)],
        sync_mode="incremental" if pk else "full_refresh",
        destination_sync_mode=mode,
        cursor_field=None,
        primary_key=[[k] for k in pk] if pk else None,
        generation_id=1,
        minimum_generation_id=1 if mode == "overwrite" else 0,
        sync_id=1,
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"password": "wrong-password-123"}, "check the username and password"),
        ({"database": "dbkit_no_such_database_xyz"}, "does not exist"),
        ({"host": "no-such-host.invalid"}, "does not resolve"),
        ({"ssl": True}, "enable SSL on the server, or turn ssl off"),
    ],
    ids=["wrong_password", "missing_database", "unknown_host", "ssl_without_server_ssl"],
)
def test_bad_configs_are_config_errors_a_person_can_act_on(
    my: Mysql, overrides: dict[str, Any], expected: str
) -> None:
    config = my.config(**overrides)
    if "password" in overrides:
        config["username"] = "dbkit_nobody"
    result = my.runner().check(config)
    status_ = result.connection_status
    assert status_["status"] == "FAILED"
    assert expected in status_["message"], status_["message"]
    assert "wrong-password-123" not in result.output_text(), "the password is never printed"


def test_values_are_stored_exactly(my: Mysql) -> None:
    props = {
        "id": json_schema_for(AirbyteType.INTEGER),
        "big": {"type": "integer", "airbyte_type": "big_integer"},
        "x": json_schema_for(AirbyteType.NUMBER),
        "ts": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
        "naive": json_schema_for(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE),
        "d": json_schema_for(AirbyteType.DATE),
        "t": json_schema_for(AirbyteType.TIME_WITHOUT_TIMEZONE),
        "tz": json_schema_for(AirbyteType.TIME_WITH_TIMEZONE),
        "s": json_schema_for(AirbyteType.STRING),
        "j": json_schema_for(AirbyteType.OBJECT),
        "b": json_schema_for(AirbyteType.BOOLEAN),
        "bin": json_schema_for(AirbyteType.BINARY),
    }
    text = 'ü 😀 \\N \\ "q", \t\n\r \x00 end'
    row = {
        "id": 1,
        "big": 2**100,
        "x": Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
        "ts": "2024-03-10T23:30:00.123456-05:00",
        "naive": "0001-01-01T00:00:00",
        "d": "9999-12-31",
        "t": "23:59:59.999999",
        "tz": "12:00:00+02:00",
        "s": text,
        "j": {"n": Decimal("0.1000000000000000000000000000001"), "s": "ü\\"},
        "b": False,
        "bin": "AAEC/w==",
    }
    cat = catalog(props)
    my.runner().write(my.config(), cat, sync_messages("t", [row])).raise_on_failure()
    plan = my.plan(cat, "t")
    (stored,) = my.read_table(plan.name, plan.namespace)
    assert stored["big"] == Decimal(2**100)
    assert stored["x"] == row["x"]
    assert stored["ts"] == dt.datetime(2024, 3, 11, 4, 30, 0, 123456), "UTC"
    assert stored["naive"] == dt.datetime(1, 1, 1)
    assert stored["d"] == dt.date(9999, 12, 31)
    assert stored["t"] == dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)
    assert stored["tz"] == "12:00:00.000000+02:00"
    assert stored["s"] == text
    assert json.loads(stored["j"], parse_float=Decimal) == row["j"]
    assert stored["b"] == 0
    assert stored["bin"] == b"\x00\x01\x02\xff"
    assert json.loads(stored["_airbyte_meta"])["changes"] == []


def test_text_that_looks_like_null_stays_text_and_null_stays_null(my: Mysql) -> None:
    """LOAD DATA reads an unquoted ``NULL`` or ``\\N`` as NULL: text values are always sent
    quoted, NULLs of every column type unquoted."""
    props = {
        "id": json_schema_for(AirbyteType.INTEGER),
        "s": json_schema_for(AirbyteType.STRING),
        "n": json_schema_for(AirbyteType.INTEGER),
        "x": json_schema_for(AirbyteType.NUMBER),
        "d": json_schema_for(AirbyteType.DATE),
        "ts": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
        "b": json_schema_for(AirbyteType.BOOLEAN),
        "j": json_schema_for(AirbyteType.OBJECT),
    }
    texts = ["NULL", "null", "\\N", "\\", "", "N"]
    rows = [{"id": i, "s": text} for i, text in enumerate(texts)]
    rows.append(
        {"id": len(texts), "s": None, "n": None, "x": None, "d": None, "ts": None, "b": None, "j": None}
    )
    cat = catalog(props)
    my.runner().write(my.config(), cat, sync_messages("t", rows)).raise_on_failure()
    plan = my.plan(cat, "t")
    stored = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert [stored[i]["s"] for i in range(len(texts))] == texts
    assert {k: v for k, v in stored[len(texts)].items() if k in props and k != "id"} == dict.fromkeys(
        ["s", "n", "x", "d", "ts", "b", "j"]
    )


def test_a_value_the_column_cannot_hold_is_nulled_with_a_change_and_the_row_kept(my: Mysql) -> None:
    """A user narrowed the columns; LOAD DATA LOCAL would cut the values with a warning: each such
    value is NULL instead, with a change, and every row is kept."""
    props = {
        "id": json_schema_for(AirbyteType.INTEGER),
        "s": json_schema_for(AirbyteType.STRING),
        "n": json_schema_for(AirbyteType.INTEGER),
    }
    cat = catalog(props)
    my.runner().write(my.config(), cat, sync_messages("t", [{"id": 0, "s": "x", "n": 1}])).raise_on_failure()
    plan = my.plan(cat, "t")
    my.execute(f"ALTER TABLE `{plan.name}` MODIFY `s` VARCHAR(5), MODIFY `n` INT")
    rows = [{"id": 1, "s": "short", "n": 2**40}, {"id": 2, "s": "much too long", "n": 5}]
    my.runner().write(my.config(), cat, sync_messages("t", rows)).raise_on_failure()
    by_id = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert (by_id[1]["s"], by_id[1]["n"]) == ("short", None)
    assert (by_id[2]["s"], by_id[2]["n"]) == (None, 5)
    assert json.loads(by_id[1]["_airbyte_meta"])["changes"] == [
        {"field": "n", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}
    ]
    assert [(c["field"], c["reason"]) for c in json.loads(by_id[2]["_airbyte_meta"])["changes"]] == [
        ("s", "DESTINATION_FIELD_SIZE_LIMITATION")
    ]


def test_dedup_batch_of_new_and_stored_keys_with_refused_values(my: Mysql) -> None:
    """One dedup batch whose new keys are appended directly and whose stored keys are merged
    (``absent_keys``): newer rows update, an older one does not, and a value the column refuses
    in the appended part is NULL with a change at its own row of the batch."""
    props = {
        "id": json_schema_for(AirbyteType.INTEGER),
        "c": json_schema_for(AirbyteType.INTEGER),
        "s": json_schema_for(AirbyteType.STRING),
    }
    cat = configured_catalog(
        [stream("t", props)],
        sync_mode="incremental",
        destination_sync_mode="append_dedup",
        cursor_field=["c"],
        primary_key=[["id"]],
        generation_id=1,
        minimum_generation_id=0,
        sync_id=1,
    )
    first = [{"id": i, "c": 10, "s": f"old{i}"} for i in range(1, 5)]
    my.runner().write(my.config(), cat, sync_messages("t", first)).raise_on_failure()
    plan = my.plan(cat, "t")
    my.execute(f"ALTER TABLE `{plan.name}` MODIFY `s` VARCHAR(5)")
    second = [
        {"id": 2, "c": 20, "s": "new2"},
        {"id": 10, "c": 1, "s": "n10"},
        {"id": 3, "c": 5, "s": "stale"},
        {"id": 11, "c": 1, "s": "much too long"},
        {"id": 4, "c": 20, "s": "new4"},
        {"id": 12, "c": 1, "s": "n12"},
    ]
    my.runner().write(my.config(), cat, sync_messages("t", second)).raise_on_failure()
    stored = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert {i: (r["c"], r["s"]) for i, r in stored.items()} == {
        1: (10, "old1"),
        2: (20, "new2"),
        3: (10, "old3"),
        4: (20, "new4"),
        10: (1, "n10"),
        11: (1, None),
        12: (1, "n12"),
    }
    changed = {i for i, r in stored.items() if json.loads(r["_airbyte_meta"])["changes"]}
    assert changed == {11}
    assert [(c["field"], c["change"]) for c in json.loads(stored[11]["_airbyte_meta"])["changes"]] == [
        ("s", "NULLED")
    ]


def test_long_and_reserved_names(my: Mysql) -> None:
    long_name = "a_very_long_stream_name_" * 5
    props = {"select": json_schema_for(AirbyteType.STRING), "x" * 100: json_schema_for(AirbyteType.INTEGER)}
    cat = catalog(props, name=long_name)
    messages = [record(long_name, {"select": "s", "x" * 100: 1}), state(long_name, {}, 1), status(long_name)]
    my.runner().write(my.config(), cat, messages).raise_on_failure()
    plan = my.plan(cat, long_name)
    assert len(plan.name.encode()) <= 64
    assert all(len(c.name.encode()) <= 64 for c in plan.columns)
    assert plan.name == my.plan(cat, long_name).name, "deterministic"
    (row,) = my.read_table(plan.name, plan.namespace)
    assert row["select"] == "s"


def test_the_local_infile_handler_serves_only_its_stream(my: Mysql) -> None:
    """A server that asks for another file (here: told to by the statement) gets an empty one."""
    db = my.database
    conn = StreamingConnection(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password or "",
        database=db.database,
        local_infile=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE got (v LONGTEXT)")
            load_stream(cursor, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE got", [b"root:x:0:0\n"])
            load_stream(cursor, "LOAD DATA LOCAL INFILE {file} INTO TABLE got", [b"mine\n"])
            cursor.execute("SELECT v FROM got")
            assert cursor.fetchall() == (("mine",),)
    finally:
        conn.close()


def test_dbkit_sync_from_sqlite_by_url(my: Mysql, tmp_path: Path) -> None:
    """``dbkit sync --source sqlite:///... --destination mysql://...``: the URL finds this
    connector; a second run after a new source row holds every row once."""
    import sqlite3
    import subprocess
    import sys

    source = tmp_path / "shop.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(1, "ü 😀", "12.345"), (2, "b", None)])
    db = my.database
    url = f"mysql://{db.user}{':' + db.password if db.password else ''}@{db.host}:{db.port}/{db.database}"
    dbkit = str(Path(sys.executable).parent / "dbkit")

    def sync() -> None:
        argv = [dbkit, "sync", "--source", f"sqlite:///{source}", "--destination", url, "--no-progress"]
        done = subprocess.run(
            [*argv, "--state-file", str(tmp_path / "state.json")], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr

    sync()
    rows = sorted((r["id"], r["name"], r["price"]) for r in my.read_table("items", db.database))
    assert rows == [(1, "ü 😀", Decimal("12.345")), (2, "b", None)]
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO items VALUES (3, 'c', 1)")
    sync()
    assert sorted(r["id"] for r in my.read_table("items", db.database)) == [1, 2, 3]


def write_here(my: Mysql, cat: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """``write`` through the test runner (forked from its zygote: a fraction of a second)."""
    my.runner().write(my.config(), cat, messages).raise_on_failure()


def _dedup_catalog(props: dict[str, Any], key: str = "id") -> dict[str, Any]:
    return configured_catalog(
        [stream("t", props)],
        sync_mode="incremental",
        destination_sync_mode="append_dedup",
        cursor_field=["c"],
        primary_key=[[key]],
        generation_id=1,
        minimum_generation_id=0,
        sync_id=1,
    )


def _changes(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["reason"]) for c in json.loads(row["_airbyte_meta"])["changes"]]


_SIZE = "DESTINATION_FIELD_SIZE_LIMITATION"


@pytest.mark.parametrize("key_type", [AirbyteType.INTEGER, AirbyteType.STRING], ids=["int_key", "text_key"])
def test_dedup_merge_into_narrowed_columns_nulls_the_values_with_changes(
    my: Mysql, key_type: AirbyteType
) -> None:
    """A user narrowed columns of a dedup table: a first load (text key: staged) and a merge of
    stored keys through the staging table (with a key twice in the batch: not pre-deduped by the
    loader) store NULL with DESTINATION_FIELD_SIZE_LIMITATION where a value does not fit; no row
    is lost and the newest row per key wins."""
    props = {
        "id": json_schema_for(key_type),
        "c": json_schema_for(AirbyteType.INTEGER),
        "s": json_schema_for(AirbyteType.STRING),
        "n": json_schema_for(AirbyteType.INTEGER),
    }
    cat = _dedup_catalog(props)

    def k(i: int) -> Any:
        return i if key_type is AirbyteType.INTEGER else f"k{i}"

    write_here(my, cat, sync_messages("t", [{"id": k(0), "c": 1, "s": "x", "n": 1}]))
    plan = my.plan(cat, "t")
    my.execute(f"ALTER TABLE `{plan.name}` MODIFY `s` VARCHAR(5), MODIFY `n` INT")
    first = [
        {"id": k(i), "c": 10, "s": "much too long" if i == 2 else f"v{i}", "n": 2**40 if i == 3 else i}
        for i in range(1, 5)
    ]
    write_here(my, cat, sync_messages("t", first))
    second = [
        {"id": k(1), "c": 20, "s": "too long again", "n": 1},
        {"id": k(2), "c": 20, "s": "ok2", "n": 2},
        {"id": k(3), "c": 5, "s": "stale", "n": 2**41},
        {"id": k(4), "c": 20, "s": "four", "n": 2**42},
        {"id": k(4), "c": 30, "s": "four!", "n": 2**43},
        {"id": k(5), "c": 1, "s": "brand new but long", "n": 5},
    ]
    write_here(my, cat, sync_messages("t", second))
    stored = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert {i: (r["c"], r["s"], r["n"]) for i, r in stored.items()} == {
        k(0): (1, "x", 1),
        k(1): (20, None, 1),
        k(2): (20, "ok2", 2),
        k(3): (10, "v3", None),
        k(4): (30, "four!", None),
        k(5): (1, None, 5),
    }
    assert {i: _changes(r) for i, r in stored.items()} == {
        k(0): [],
        k(1): [("s", _SIZE)],
        k(2): [],
        k(3): [("n", _SIZE)],
        k(4): [("n", _SIZE)],
        k(5): [("s", _SIZE)],
    }


def test_overwrite_into_narrowed_columns_nulls_the_values_with_changes(my: Mysql) -> None:
    """Overwrite loading into the final table (the generation already there, as when resumed):
    a value a narrowed column cannot hold is NULL with a change, every row kept. A new
    generation's table has the stream's own column types again: the value is stored whole."""
    props = {"id": json_schema_for(AirbyteType.INTEGER), "s": json_schema_for(AirbyteType.STRING)}
    cat = catalog(props, mode="overwrite")
    write_here(my, cat, sync_messages("t", [{"id": 0, "s": "x"}]))
    plan = my.plan(cat, "t")
    my.execute(f"ALTER TABLE `{plan.name}` MODIFY `s` VARCHAR(5)")
    rows = [{"id": 1, "s": "short"}, {"id": 2, "s": "much too long"}]
    write_here(my, cat, sync_messages("t", rows))
    stored = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert {i: (r["s"], _changes(r)) for i, r in stored.items()} == {
        0: ("x", []),
        1: ("short", []),
        2: (None, [("s", _SIZE)]),
    }
    later = catalog(props, mode="overwrite")
    later["streams"][0].update(generation_id=2, minimum_generation_id=2)
    write_here(my, later, sync_messages("t", rows))
    stored = {r["id"]: r for r in my.read_table(plan.name, plan.namespace)}
    assert {i: (r["s"], _changes(r)) for i, r in stored.items()} == {
        1: ("short", []),
        2: ("much too long", []),
    }


def test_parallel_loads_into_a_table_with_a_trigger_run_one_at_a_time(my: Mysql) -> None:
    """Two loads of one write that lock the same row (a trigger's summary row) would wait for
    each other: a table with a trigger (or a unique index) is found at setup, and its loads run
    one at a time (the default ``parallel_loads`` is 2), with no lock wait."""
    cat = catalog(ITEM_SCHEMA, "items")
    my.runner().write(my.config(), cat, sync_messages("items", [item(1, "a", 1)])).raise_on_failure()
    (table,) = [name for (name,) in my.query("SHOW TABLES") if str(name).startswith("items")]
    with my.engine.begin() as conn:
        dialect = MySqlDestination.dialect_class(load_config(MySqlDestination.config_model, my.config()))
        appendable = dialect.tables.concurrent_appends
        meta_table = sa.Table(table, sa.MetaData())
        assert appendable(conn, meta_table), "a plain table takes loads side by side"
        conn.exec_driver_sql(f"CREATE VIEW dbkit_items_view AS SELECT * FROM `{table}`")
        view = sa.Table("dbkit_items_view", sa.MetaData())
        assert not appendable(conn, view), "a view hides its table's indexes and triggers"
        conn.exec_driver_sql("CREATE TABLE dbkit_summary (k VARCHAR(10) PRIMARY KEY, n INT)")
        conn.exec_driver_sql(
            f"CREATE TRIGGER dbkit_tally BEFORE INSERT ON `{table}` FOR EACH ROW BEGIN "
            "IF NEW.name = 'slow' THEN SET @x = SLEEP(2); END IF; "
            "INSERT INTO dbkit_summary VALUES (IF(NEW.name = 'slow' OR NEW.id > 10, 'b', 'a'), 1) "
            "ON DUPLICATE KEY UPDATE n = n + 1; END"
        )
        assert not appendable(conn, meta_table)
    rows = [item(i, f"v{i}", 1) for i in range(2, 22)]
    rows[5] = item(7, "slow", 1)  # side by side, the second batch would take 'b' while the first sleeps
    config = my.config(batch_records=10, flush_seconds=3600)
    result = my.runner().write(config, cat, sync_messages("items", rows)).raise_on_failure()
    assert not any("rolled back" in line for line in result.logs())
    assert any("its batches load one at a time" in line for line in result.logs())
    assert sorted(int(i) for (i,) in my.query(f"SELECT id FROM `{table}`")) == list(range(1, 22))
    assert sorted(my.query("SELECT k, n FROM dbkit_summary")) == [("a", 8), ("b", 12)], "each insert once"
