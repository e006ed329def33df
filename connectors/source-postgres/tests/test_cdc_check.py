"""``check`` with ``replication_method: CDC``: every reason a CDC sync could not read the WAL is a
failed CONNECTION_STATUS saying what to do (wal_level, the REPLICATION attribute, the
publication and what it publishes and holds, a slot of another plugin or database, a lost slot);
what a sync copes with is a WARN (a missing slot: the first sync creates it)."""

from __future__ import annotations

import secrets
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dbkit.entrypoint import launch
from dbkit.testing.servers import DatabaseServer, TestDatabase
from source_postgres import PostgresSource

pytestmark = [pytest.mark.postgres]


def config(db: TestDatabase, **method: Any) -> dict[str, Any]:
    p = db.connection_params()
    replication = {"method": "CDC", "replication_slot": "s_check", "publication": "p_check", **method}
    return {
        "host": p["host"],
        "port": p["port"],
        "database": p["dbname"],
        "username": p["user"],
        "password": p["password"] or "",
        "replication_method": replication,
    }


def check(tmp_path: Path, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The CONNECTION_STATUS and the LOG texts of a ``check`` run in-process."""
    path = tmp_path / f"config-{secrets.token_hex(4)}.json"
    path.write_bytes(orjson.dumps(cfg))
    out = BytesIO()
    assert launch(PostgresSource(), ["check", "--config", str(path)], stdout=out) == 0
    messages = [orjson.loads(line) for line in out.getvalue().splitlines()]
    (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    return status, [m["log"]["message"] for m in messages if m["type"] == "LOG"]


def failed(tmp_path: Path, cfg: dict[str, Any], *expected: str) -> str:
    status, _ = check(tmp_path, cfg)
    assert status["status"] == "FAILED", status
    for text in expected:
        assert text in status["message"], status["message"]
    return str(status["message"])


def succeeded(tmp_path: Path, cfg: dict[str, Any]) -> list[str]:
    status, logs = check(tmp_path, cfg)
    assert status["status"] == "SUCCEEDED", status
    return [line for line in logs if "WARN" in line or "dbkit.source.check" in line]


def run(db: TestDatabase, *statements: str, dbname: str | None = None) -> None:
    params = db.connection_params()
    if dbname is not None:
        params = {**params, "dbname": dbname}
    with psycopg.connect(**params, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_wal_level_not_logical(postgres_db: TestDatabase, tmp_path: Path) -> None:
    with psycopg.connect(**postgres_db.connection_params()) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
    assert row is not None
    if row[0] == "logical":  # pragma: no cover - the shared service runs with wal_level=replica
        pytest.fail("the shared PostgreSQL service must not run with wal_level=logical")
    run(postgres_db, "CREATE TABLE a (id int PRIMARY KEY)")
    failed(tmp_path, config(postgres_db), "wal_level is", "wal_level = logical", "restart")


def test_publication_and_slot_problems(
    postgres_db_logical: TestDatabase, postgres_server_logical: DatabaseServer, tmp_path: Path
) -> None:
    db = postgres_db_logical
    cfg = config(db)
    run(db, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY)")
    run(db, "CREATE TABLE nokey (x int)")

    failed(tmp_path, cfg, "publication 'p_check' does not exist", 'CREATE PUBLICATION "p_check"')

    run(db, "CREATE PUBLICATION p_check WITH (publish = 'insert, truncate')")
    failed(tmp_path, cfg, "does not publish updates, deletes", "SET (publish =")

    run(db, "ALTER PUBLICATION p_check SET (publish = 'insert, update, delete')")
    failed(tmp_path, cfg, "has no tables", 'ALTER PUBLICATION "p_check" ADD TABLE')

    run(db, "ALTER PUBLICATION p_check ADD TABLE nokey")  # no key: never read with CDC
    failed(tmp_path, cfg, "holds none of the 2 table(s)", '"public"."a"', '"public"."b"')

    run(db, "ALTER PUBLICATION p_check ADD TABLE a")
    warnings = succeeded(tmp_path, cfg)
    assert any('"public"."b" are not in publication' in w for w in warnings), warnings
    assert any("does not publish truncates" in w for w in warnings), warnings
    missing = [w for w in warnings if "does not exist: the first sync creates it" in w]
    assert len(missing) == 1, warnings
    assert "the next sync fails" in missing[0]
    resync = config(db, invalid_cdc_cursor_position_behavior="Re-sync data")
    assert any("reads every table again" in w for w in succeeded(tmp_path, resync))

    run(
        db,
        "ALTER PUBLICATION p_check SET (publish = 'insert, update, delete, truncate')",
        "ALTER PUBLICATION p_check ADD TABLE b",
        "SELECT pg_create_logical_replication_slot('s_check', 'test_decoding')",
    )
    failed(tmp_path, cfg, "not a pgoutput logical slot", "plugin 'test_decoding'", "set replication_slot")

    run(db, "SELECT pg_drop_replication_slot('s_check')")
    other = postgres_server_logical.create_database(prefix="t")
    try:
        run(db, "SELECT pg_create_logical_replication_slot('s_check', 'pgoutput')", dbname=other.name)
        failed(tmp_path, cfg, "not a pgoutput logical slot of database", f"database {other.name!r}")
    finally:
        postgres_server_logical.drop_database(other.name)  # drops its slots too

    run(db, "SELECT pg_create_logical_replication_slot('s_check', 'pgoutput')")
    assert succeeded(tmp_path, cfg) == []

    run(
        db,
        "ALTER TABLE b ADD COLUMN u int NOT NULL DEFAULT 0",
        "CREATE UNIQUE INDEX b_u ON b (u)",
        "ALTER TABLE b REPLICA IDENTITY USING INDEX b_u",
        "ALTER TABLE a REPLICA IDENTITY NOTHING",
    )
    warnings = succeeded(tmp_path, cfg)
    assert len(warnings) == 2, warnings
    assert 'table "public"."a" has REPLICA IDENTITY NOTHING' in warnings[0]
    assert 'table "public"."b" has a replica identity index without the primary key' in warnings[1]


def test_user_without_replication(postgres_db_logical: TestDatabase, tmp_path: Path) -> None:
    db = postgres_db_logical
    role = f"r_{secrets.token_hex(5)}"
    run(
        db,
        "CREATE TABLE a (id int PRIMARY KEY)",
        "CREATE PUBLICATION p_check FOR TABLE a",
        f"CREATE ROLE {role} LOGIN",
        f"GRANT SELECT ON a TO {role}",
    )
    try:
        cfg = {**config(db), "username": role, "password": ""}
        failed(tmp_path, cfg, f"user {role!r} may not read the WAL", f'ALTER ROLE "{role}" WITH REPLICATION')
        run(db, f'ALTER ROLE "{role}" WITH REPLICATION')
        warnings = succeeded(tmp_path, cfg)
        assert [w for w in warnings if "first sync creates it" in w], warnings
    finally:
        run(db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


@pytest.mark.slow
def test_lost_slot(postgres_db_logical: TestDatabase, tmp_path: Path) -> None:
    """A slot whose WAL was removed (max_slot_wal_keep_size exceeded) is a config_error, or a
    WARN when the config asks for a resync; one about to lose it (unreserved) a WARN."""
    db = postgres_db_logical
    slot = f"s_{secrets.token_hex(5)}"
    cfg = config(db, replication_slot=slot)
    run(
        db,
        "CREATE TABLE a (id int PRIMARY KEY)",
        "CREATE PUBLICATION p_check FOR TABLE a",
        f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')",
    )
    status = ""
    try:
        run(db, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()")
        with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
            for _ in range(4):  # a new WAL segment each, past the slot's limit
                conn.execute("INSERT INTO a SELECT coalesce(max(id), 0) + 1 FROM a")
                conn.execute("SELECT pg_switch_wal()")
            row = conn.execute(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            assert row is not None
            status = row[0]
            assert status == "unreserved", status
            unreserved = succeeded(tmp_path, cfg)
            assert any("wal_status unreserved" in w for w in unreserved), unreserved
            conn.execute("CHECKPOINT")
            row = conn.execute(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            assert row is not None
            assert row[0] == "lost", row
    finally:
        run(db, "ALTER SYSTEM RESET max_slot_wal_keep_size", "SELECT pg_reload_conf()")
    failed(tmp_path, cfg, "wal_status lost", "reset the connection's data", "Re-sync data")
    resync = config(db, replication_slot=slot, invalid_cdc_cursor_position_behavior="Re-sync data")
    assert any("drops it and reads every table again" in w for w in succeeded(tmp_path, resync))
