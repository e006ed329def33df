"""The replication connection on a real throwaway PostgreSQL 15 (wal_level=logical): slots and
their snapshots, streaming with acknowledgements, a clean stop, and server errors as dbkit errors."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbkit import ConfigError, TransientError
from dbkit.testing.servers import DatabaseServer, TestDatabase
from source_postgres.cdc import (
    PgOutputDecoder,
    ReplicationConnection,
    ReplicationStream,
    format_lsn,
    parse_lsn,
)
from source_postgres.cdc.pgoutput import Commit, Insert

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def scalar(db: TestDatabase, query: str, *args: Any) -> Any:
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        row = conn.execute(query, args or None).fetchone()
        return None if row is None else row[0]


def read_until_error(stream: ReplicationStream) -> None:
    """Read until the stream raises (within 10 seconds of no message)."""
    while stream.read(timeout=10) is not None:
        pass
    raise AssertionError("no error within 10s")


def test_lsn_text_form() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    with pytest.raises(ValueError, match="not a PostgreSQL LSN"):
        parse_lsn("16B374D848")


def test_exported_snapshot_and_stream_meet_exactly(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    """What committed before the slot is in its exported snapshot and not in the stream; what
    committed after is in the stream and not in the snapshot."""
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE PUBLICATION pub FOR TABLE t",
        "INSERT INTO t VALUES (1)",
    )
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        identity = conn.identify_system()
        assert identity.dbname == db.name
        assert identity.timeline == 1
        assert identity.xlogpos > 0
        slot = conn.create_slot("exported")
        assert slot.snapshot_name
        assert slot.consistent_point >= identity.xlogpos
        assert slot.output_plugin == "pgoutput"
        cdc.run(db, "INSERT INTO t VALUES (2)")
        with psycopg.connect(**db.connection_params()) as reader:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            reader.execute(f"SET TRANSACTION SNAPSHOT '{slot.snapshot_name}'")
            assert reader.execute("SELECT array_agg(id) FROM t").fetchone() == ([1],)
        stream = conn.start("exported", slot.consistent_point, publications=["pub"])
        decoder = PgOutputDecoder()
        inserted = []
        while True:
            data = stream.read(timeout=10)
            assert data is not None
            message = decoder.decode(data.payload, data.data_start)
            if isinstance(message, Insert):
                inserted.append(message.new)
            if isinstance(message, Commit):
                break
        assert inserted == [("2",)]
        stream.stop()
        conn.drop_slot("exported")


def test_use_snapshot_on_a_temporary_slot(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int)", "INSERT INTO t VALUES (7)")
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        conn.begin_snapshot()
        slot = conn.create_slot("used", temporary=True, snapshot="use")
        assert slot.snapshot_name is None
        cdc.run(db, "INSERT INTO t VALUES (8)")
        assert conn.execute("SELECT count(*) FROM t") == [("1",)]
        conn.execute("COMMIT")
        assert scalar(db, "SELECT temporary FROM pg_replication_slots WHERE slot_name = 'used'") is True
    assert scalar(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'used'") == 0


def test_only_acknowledged_positions_are_confirmed(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int)", "CREATE PUBLICATION pub FOR TABLE t")
    confirmed = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'acked'"
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        slot = conn.create_slot("acked", snapshot="nothing")
        cdc.run(db, "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")
        stream = conn.start("acked", slot.consistent_point, publications=["pub"], status_interval=0.05)
        decoder = PgOutputDecoder()
        ends: list[int] = []
        while len(ends) < 2:
            data = stream.read(timeout=10)
            assert data is not None
            message = decoder.decode(data.payload, data.data_start)
            if isinstance(message, Commit):
                ends.append(message.end_lsn)
        assert stream.read(timeout=0.3) is None  # status updates went out meanwhile
        assert parse_lsn(scalar(db, confirmed)) == slot.consistent_point  # read, not acknowledged
        stream.acknowledge(ends[0])
        stream.read(timeout=0.3)
        assert parse_lsn(scalar(db, confirmed)) == ends[0]
        stream.stop()
        assert conn.identify_system().dbname == db.name  # back in command mode
        conn.drop_slot("acked")


def test_missing_slot_and_publication_are_config_errors(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int)")
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        with pytest.raises(ConfigError, match=r"replication slot \"nope\" does not exist.*create it"):
            conn.start("nope", 0, publications=["pub"])
        slot = conn.create_slot("nopub", temporary=True, snapshot="nothing")
        cdc.run(db, "INSERT INTO t VALUES (1)")
        stream = conn.start("nopub", slot.consistent_point, publications=["no_such_pub"])
        with pytest.raises(
            ConfigError, match=r"publication \"no_such_pub\" does not exist.*CREATE PUBLICATION"
        ):
            read_until_error(stream)
        conn.create_slot("dup", snapshot="nothing")
        with pytest.raises(ConfigError, match=r"already exists.*another slot name"):
            conn.create_slot("dup", snapshot="nothing")
        conn.drop_slot("dup")


def test_role_without_replication_is_a_config_error(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    role = f"r_{db.name[-10:]}"
    cdc.run(db, f"CREATE ROLE {role} LOGIN")
    try:
        with pytest.raises(ConfigError, match="REPLICATION attribute"):
            ReplicationConnection.connect({**cdc.params(db), "user": role})
    finally:
        cdc.run(db, f"DROP ROLE {role}")


def test_wal_level_replica_is_a_config_error(
    postgres_db: TestDatabase, postgres_server: DatabaseServer, cdc: Any
) -> None:
    if postgres_server.server_variables.get("wal_level") == "logical":
        pytest.skip("this server has wal_level=logical")
    with (
        ReplicationConnection.connect(cdc.params(postgres_db)) as conn,
        pytest.raises(ConfigError, match=r"wal_level = logical.*restart"),
    ):
        conn.create_slot("never", temporary=True, snapshot="nothing")


def test_terminated_walsender_is_a_transient_error(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int)", "CREATE PUBLICATION pub FOR TABLE t")
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        slot = conn.create_slot("killed", temporary=True, snapshot="nothing")
        stream = conn.start("killed", slot.consistent_point, publications=["pub"])
        assert stream.read(timeout=0.2) is None
        cdc.run(
            db, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'killed'"
        )
        with pytest.raises(TransientError, match="lost the replication connection"):
            read_until_error(stream)
