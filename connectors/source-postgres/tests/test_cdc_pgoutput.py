"""The pgoutput decoder on messages a real PostgreSQL 15 (wal_level=logical, throwaway) sends:
every message kind of protocols 1 and 2, every tuple value kind, and refusals naming the byte
and the LSN."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.testing.servers import TestDatabase
from source_postgres.cdc import UNCHANGED_TOAST, PgOutputDecoder, PgOutputError
from source_postgres.cdc.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Type,
    Update,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) AS i)"  # 9600 bytes, incompressible


def kinds(messages: list[tuple[int, object]]) -> list[str]:
    return [type(m).__name__ for _, m in messages]


def test_begin_relation_insert_commit(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, s text, n numeric(5,2))",
        "CREATE PUBLICATION pub FOR TABLE t",
    )
    messages = cdc.capture(db, ["INSERT INTO t VALUES (1, 'é x', NULL)"])
    assert kinds(messages) == ["Begin", "Relation", "Insert", "Commit"]
    (_, begin), (_, relation), (insert_lsn, insert), (_, commit) = messages
    assert isinstance(begin, Begin)
    assert isinstance(commit, Commit)
    assert isinstance(relation, Relation)
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
    assert begin.commit_time == commit.commit_time > 0
    assert (relation.namespace, relation.name, relation.replica_identity) == ("public", "t", "d")
    assert [(c.name, c.is_key, c.type_oid, c.typmod) for c in relation.columns] == [
        ("id", True, 23, -1),
        ("s", False, 25, -1),
        ("n", False, 1700, (5 << 16 | 2) + 4),
    ]
    assert insert == Insert(None, relation.oid, ("1", "é x", None))
    assert begin.final_lsn >= insert_lsn


def test_update_delete_with_key_and_full_identity(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TABLE k (id int PRIMARY KEY, v text)",
        "CREATE TABLE f (id int, v text)",
        "ALTER TABLE f REPLICA IDENTITY FULL",
        "INSERT INTO k VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO f VALUES (1, 'a')",
        "CREATE PUBLICATION pub FOR TABLE k, f",
    )
    messages = cdc.capture(
        db,
        [
            "UPDATE k SET v = 'x' WHERE id = 1",  # no old tuple: the key did not change
            "UPDATE k SET id = 3 WHERE id = 2",  # old key
            "DELETE FROM k WHERE id = 1",
            "UPDATE f SET v = 'z'",  # whole old row
            "DELETE FROM f",
        ],
        commits=5,
    )
    changes = [m for _, m in messages if isinstance(m, Update | Delete)]
    rel = {m.name: m.oid for _, m in messages if isinstance(m, Relation)}
    assert changes == [
        Update(None, rel["k"], None, None, ("1", "x")),
        Update(None, rel["k"], "K", ("2", None), ("3", "b")),
        Delete(None, rel["k"], "K", ("1", None)),
        Update(None, rel["f"], "O", ("1", "a"), ("1", "z")),
        Delete(None, rel["f"], "O", ("1", "z")),
    ]
    identities = {m.name: m.replica_identity for _, m in messages if isinstance(m, Relation)}
    assert identities == {"k": "d", "f": "f"}


def test_unchanged_toast_truncate_type_and_messages(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TYPE mood AS ENUM ('sad', 'happy')",
        "CREATE TABLE big (id int PRIMARY KEY, doc text, m mood)",
        "CREATE TABLE other (id int PRIMARY KEY)",
        f"INSERT INTO big VALUES (1, {BIG}, 'sad')",
        "CREATE PUBLICATION pub FOR TABLE big, other",
    )
    messages = cdc.capture(
        db,
        [
            "UPDATE big SET m = 'happy'",
            "TRUNCATE big, other RESTART IDENTITY CASCADE",
            "SELECT pg_logical_emit_message(false, 'dbkit', '\\x00ff'::bytea)",  # sent at once
            "SELECT pg_logical_emit_message(true, 'dbkit', 'in a transaction')",
        ],
        commits=3,
        messages=True,
    )
    assert kinds(messages)[:4] == ["Begin", "Type", "Relation", "Update"]
    type_message = messages[1][1]
    assert isinstance(type_message, Type)
    assert (type_message.namespace, type_message.name) == (
        "public",
        "mood",
    )
    update = messages[3][1]
    assert isinstance(update, Update)
    assert update.new == ("1", UNCHANGED_TOAST, "happy")
    truncate = next(m for _, m in messages if isinstance(m, Truncate))
    assert truncate.cascade
    assert truncate.restart_identity
    assert len(truncate.relation_oids) == 2
    notes = [m for _, m in messages if isinstance(m, LogicalMessage)]
    assert [(n.transactional, n.prefix, n.content) for n in notes] == [
        (False, "dbkit", b"\x00\xff"),
        (True, "dbkit", b"in a transaction"),
    ]
    assert notes[1].lsn > notes[0].lsn > 0


def test_origin(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int)", "CREATE PUBLICATION pub FOR TABLE t")
    statements = [
        "DO $$ BEGIN PERFORM pg_replication_origin_create('upstream');"
        " PERFORM pg_replication_origin_session_setup('upstream');"
        " PERFORM pg_replication_origin_xact_setup('0/AB', now());"
        " INSERT INTO t VALUES (1); END $$"
    ]
    messages = cdc.capture(db, statements)
    assert kinds(messages) == ["Begin", "Origin", "Relation", "Insert", "Commit"]
    origin = messages[1][1]
    assert isinstance(origin, Origin)
    assert origin.name == "upstream"
    assert origin.commit_lsn == 0xAB


def test_binary_values(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int, b bytea)", "CREATE PUBLICATION pub FOR TABLE t")
    messages = cdc.capture(db, ["INSERT INTO t VALUES (258, '\\x01')"], binary=True)
    insert = next(m for _, m in messages if isinstance(m, Insert))
    assert insert.new == (b"\x00\x00\x01\x02", b"\x01")


def test_protocol_2_streamed_transactions(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    """A transaction bigger than logical_decoding_work_mem (64kB) arrives streamed: blocks of
    StreamStart .. StreamStop whose messages carry the xid, then StreamCommit (or StreamAbort)."""
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int, pad text)", "CREATE PUBLICATION pub FOR TABLE t")
    rows = "INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 3000) AS i"

    def statements() -> None:
        import psycopg

        with psycopg.connect(**db.connection_params()) as conn:  # one transaction each
            conn.execute(rows)
            conn.commit()
            conn.execute(rows)
            conn.rollback()
        cdc.run(db, "INSERT INTO t VALUES (0, 'last')")

    settings = [("logical_decoding_work_mem", "64kB")]
    messages = cdc.capture(db, statements, proto_version=2, streaming=True, settings=settings, commits=3)
    names = kinds(messages)
    assert names[0] == "StreamStart"
    assert "StreamStop" in names
    commit = next(m for _, m in messages if isinstance(m, StreamCommit))
    starts = [m for _, m in messages if isinstance(m, StreamStart)]
    assert starts[0].first_segment
    assert starts[0].xid == commit.xid
    inserts = [m for _, m in messages if isinstance(m, Insert)]
    streamed = [m for m in inserts if m.xid is not None]
    assert len(streamed) >= 3000
    assert {m.xid for m in streamed} >= {commit.xid}
    abort = next(m for _, m in messages if isinstance(m, StreamAbort))
    assert abort.xid != commit.xid
    assert any(isinstance(m, StreamStop) for _, m in messages)
    last = [m for m in inserts if m.xid is None]
    assert [m.new for m in last] == [("0", "last")]


def test_what_it_cannot_decode_names_the_byte_and_lsn() -> None:
    decoder = PgOutputDecoder(1)
    with pytest.raises(PgOutputError, match=r"'Z' \(0x5a\) at LSN 0/16B3748"):
        decoder.decode(b"Z\x00", 0x16B3748)
    with pytest.raises(PgOutputError, match=r"'S' \(0x53\) at LSN 0/1.*protocol 1"):
        decoder.decode(b"S\x00\x00\x00\x01\x01", 1)  # a stream message is not protocol 1
    insert_bad_kind = b"I\x00\x00\x00\x05N\x00\x01x"
    with pytest.raises(PgOutputError, match=r"'I' \(0x49\) at LSN 1/0: unknown tuple value kind 'x'"):
        decoder.decode(insert_bad_kind, 1 << 32)
    truncated = b"I\x00\x00\x00\x05N\x00\x01t\x00\x00\x00\x09abc"
    with pytest.raises(PgOutputError, match=r"'I' \(0x49\) at LSN 0/2"):
        decoder.decode(truncated, 2)
    with pytest.raises(PgOutputError, match="trailing"):
        decoder.decode(b"B" + bytes(20) + b"!", 3)
    with pytest.raises(PgOutputError, match="empty"):
        decoder.decode(b"", 4)
