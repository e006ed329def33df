"""Values from the log equal values from a snapshot read: every type case of the acceptance suite
inserted, then read both ways (the server-rendered record data of the snapshot path, and the
change assembled from pgoutput through the walsender with the snapshot path's session settings).
And unchanged TOAST values: exact under REPLICA IDENTITY FULL; under the default identity left
out by the assembler and filled in by key (exact while the row is unchanged since)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from dbkit.testing.servers import TestDatabase
from source_postgres import PostgresSourceConfig, PostgresSourceDialect
from source_postgres.cdc import ReplicationConnection, RowChange, ToastFiller, toast_identity_problems
from source_postgres.encoder import changes_sql, data_sql
from source_postgres.types import SESSION_SETTINGS

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) AS i)"


def acceptance_type_cases() -> Any:
    path = Path(__file__).with_name("test_acceptance.py")
    spec = importlib.util.spec_from_file_location("_source_postgres_acceptance_cases", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TYPE_CASES


def snapshot_data(db: TestDatabase, tables: list[str]) -> dict[str, tuple[bytes, list[Any]]]:
    """Each table's one row as the snapshot read renders it (data JSON, meta changes)."""
    config = PostgresSourceConfig.model_validate(
        {
            "host": db.host,
            "port": db.port,
            "database": db.database,
            "username": db.user,
            "password": db.password,
        }
    )
    dialect = PostgresSourceDialect(config)
    engine = sa.create_engine(db.url)
    with engine.connect() as conn:
        infos = {t.name: t for t in dialect.list_tables(conn)}
    engine.dispose()
    out = {}
    with psycopg.connect(**db.connection_params(), autocommit=True) as pg:
        for name, value in SESSION_SETTINGS:
            pg.execute("SELECT set_config(%s, %s, false)", (name, value))
        for table in tables:
            columns = list(infos[table].columns)
            changes = changes_sql(columns)
            query = sql.SQL("SELECT {}, {} FROM {}").format(
                data_sql(columns), changes if changes is not None else sql.SQL("NULL"), sql.Identifier(table)
            )
            row = pg.execute(query).fetchone()
            assert row is not None
            out[table] = (row[0].encode(), orjson.loads(row[1]) if row[1] else [])
    return out


def test_log_values_equal_snapshot_values_on_every_type_case(
    postgres_db_logical: TestDatabase, cdc: Any
) -> None:
    db = postgres_db_logical
    cases = acceptance_type_cases()
    tables = []
    for index, case in enumerate(cases):
        table = f"v_{index:03d}"
        cdc.run(db, *case.setup, f"CREATE TABLE {table} (id int PRIMARY KEY, v {case.sql_type})")
        tables.append(table)
    cdc.run(db, "CREATE PUBLICATION pub FOR ALL TABLES")
    inserts = [f"INSERT INTO {t} VALUES (1, {c.literal})" for t, c in zip(tables, cases, strict=True)]
    messages = cdc.capture(db, inserts, commits=len(inserts))
    events = cdc.assemble(db, messages)
    from_log = {e.table.name: e for e in events if isinstance(e, RowChange)}
    from_snapshot = snapshot_data(db, tables)
    mismatches = []
    for table, case in zip(tables, cases, strict=True):
        change = from_log[table]
        data, changes = from_snapshot[table]
        if orjson.dumps(change.data) != data or change.changes != changes:
            mismatches.append(
                f"{case.name}: log {orjson.dumps(change.data)!r} {change.changes} != {data!r} {changes}"
            )
    assert not mismatches, "\n".join(mismatches)
    assert len(from_log) == len(cases) > 100


def test_session_settings_matter(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    """Without the snapshot path's session settings the walsender writes other text forms: the
    settings are what makes the two paths agree."""
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE t (ts timestamptz, i interval, f float8, b bytea)",
        "CREATE PUBLICATION pub FOR TABLE t",
        "SET TimeZone = 'UTC'",
    )
    insert = "INSERT INTO t VALUES ('2024-01-02 03:04:05.5+02', '1 day 2 hours', 0.1, '\\x00ff')"
    with_settings = cdc.capture(db, [insert])
    row = next(m for _, m in with_settings if type(m).__name__ == "Insert")
    assert row.new == ("2024-01-02 01:04:05.5+00", "P1DT2H", "0.1", "\\x00ff")
    events = cdc.assemble(db, with_settings)
    assert orjson.loads(orjson.dumps(events[0].data)) == {
        "ts": "2024-01-02T01:04:05.500000+00:00",
        "i": "P1DT2H",
        "f": 0.1,
        "b": "AP8=",
    }
    other = cdc.capture(
        db,
        [insert],
        settings=[
            ("TimeZone", "America/New_York"),
            ("IntervalStyle", "postgres"),
            ("bytea_output", "escape"),
        ],
    )
    row = next(m for _, m in other if type(m).__name__ == "Insert")
    assert row.new[0].endswith("-05")
    assert row.new[1] == "1 day 02:00:00"
    assert row.new[3] != "\\x00ff"


def test_unchanged_toast_is_exact_under_replica_identity_full(
    postgres_db_logical: TestDatabase, cdc: Any
) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE full_t (id int PRIMARY KEY, doc text, n int)",
        "ALTER TABLE full_t REPLICA IDENTITY FULL",
        f"INSERT INTO full_t VALUES (1, {BIG}, 1)",
        "CREATE PUBLICATION pub FOR TABLE full_t",
    )
    stored = None
    with psycopg.connect(**db.connection_params()) as conn:
        stored = conn.execute("SELECT doc FROM full_t").fetchone()
    messages = cdc.capture(db, ["UPDATE full_t SET n = 2"])
    update = next(m for _, m in messages if type(m).__name__ == "Update")
    assert update.new[1] is not None
    assert update.old_kind == "O"
    (event,) = cdc.assemble(db, messages)
    assert event.op == "update"
    assert stored is not None
    assert event.data == {"id": 1, "doc": stored[0], "n": 2}
    assert len(event.data["doc"]) == 9600


def test_unchanged_toast_under_default_identity_is_looked_up_by_key(
    postgres_db_logical: TestDatabase, cdc: Any
) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE dflt (id int PRIMARY KEY, doc text, n int)",
        "CREATE TABLE narrow (id int PRIMARY KEY, n int)",
        f"INSERT INTO dflt VALUES (1, {BIG}, 1)",
        "CREATE PUBLICATION pub FOR TABLE dflt, narrow",
    )
    with psycopg.connect(**db.connection_params()) as conn:
        row = conn.execute("SELECT doc FROM dflt").fetchone()
    assert row is not None
    stored = row[0]
    messages = cdc.capture(db, ["UPDATE dflt SET n = 2"])
    (event,) = cdc.assemble(db, messages)
    assert isinstance(event, RowChange)
    assert event.data == {"id": 1, "n": 2}, "the assembler leaves the unsent value out"
    assert event.unresolved == ("doc",)
    assert event.key_text == {"id": "1"}
    logs: list[tuple[str, str]] = []
    with ReplicationConnection.connect(cdc.params(db), replication=False) as plain:

        def fill() -> tuple[dict[str, Any], list[Any]]:
            image: dict[str, Any] = dict(event.data)
            problems: list[Any] = []
            filler = ToastFiller(
                lambda q, p, t: plain.execute(q, params=p, types=t), lambda *line: logs.append(line)
            )
            filler.note(event, image, problems)
            assert filler.active == {event.table.oid}
            filler.fill()
            assert not filler.active
            return image, problems

        assert fill() == ({"id": 1, "n": 2, "doc": stored}, [])
        assert logs == [], "the row is as the update left it: exact, no warning"
        cdc.run(db, "UPDATE dflt SET doc = 'later' WHERE id = 1")  # after the read's window
        assert fill() == ({"id": 1, "n": 2, "doc": "later"}, [])
        ((level, text),) = logs
        assert level == "WARN"
        assert "1 carry the row's current value, 0 NULL" in text
        assert 'ALTER TABLE "public"."dflt" REPLICA IDENTITY FULL' in text
        cdc.run(db, "DELETE FROM dflt")
        assert fill() == (
            {"id": 1, "n": 2, "doc": None},
            [{"field": "doc", "change": "NULLED", "reason": "SOURCE_RETRIEVAL_ERROR"}],
        )
    engine = sa.create_engine(db.url)
    with engine.connect() as conn:
        oids = [
            conn.execute(sa.text(f"SELECT '{t}'::regclass::oid::bigint")).scalar_one()
            for t in ("dflt", "narrow")
        ]
        problems = toast_identity_problems(conn, oids)
    engine.dispose()
    assert problems == [
        "public.dflt (REPLICA IDENTITY DEFAULT; columns that can be TOASTed: doc): "
        'ALTER TABLE "public"."dflt" REPLICA IDENTITY FULL'
    ]
