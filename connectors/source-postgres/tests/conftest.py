"""Fixtures of the CDC wire-layer tests: ``cdc`` gives a replication connection's parameters for a
test database, runs statements, and captures the decoded messages of a slot after statements ran."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest

from dbkit.testing.servers import TestDatabase
from source_postgres.cdc import (
    ChangeAssembler,
    ChangeEvent,
    PgOutputDecoder,
    PgOutputMessage,
    ReplicationConnection,
    TransactionCommitted,
)
from source_postgres.cdc.pgoutput import Commit, StreamAbort, StreamCommit
from source_postgres.types import SESSION_SETTINGS


def params(db: TestDatabase) -> dict[str, Any]:
    p = db.connection_params()
    return {
        "host": p["host"],
        "port": p["port"],
        "user": p["user"],
        "password": p["password"],
        "dbname": p["dbname"],
    }


def run(db: TestDatabase, *statements: str) -> None:
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def capture(
    db: TestDatabase,
    statements: Sequence[str] | Callable[[], None],
    *,
    publication: str = "pub",
    commits: int = 1,
    proto_version: int = 1,
    settings: Sequence[tuple[str, str]] | None = None,
    **start: Any,
) -> list[tuple[int, PgOutputMessage]]:
    """Create a slot, run ``statements`` (each autocommitted, or a callable), and return every
    decoded message up to the ``commits``-th transaction end."""
    walsender = list(SESSION_SETTINGS) + list(settings or ())
    with ReplicationConnection.connect(params(db), settings=walsender) as conn:
        slot = conn.create_slot("s_" + db.name[-12:], temporary=True, snapshot="nothing")
        if callable(statements):
            statements()
        else:
            run(db, *statements)
        stream = conn.start(
            slot.slot_name,
            slot.consistent_point,
            publications=[publication],
            proto_version=proto_version,
            **start,
        )
        decoder = PgOutputDecoder(proto_version)
        out: list[tuple[int, PgOutputMessage]] = []
        seen = 0
        while seen < commits:
            data = stream.read(timeout=10)
            assert data is not None, f"no message within 10s; got {out}"
            message = decoder.decode(data.payload, data.data_start)
            out.append((data.data_start, message))
            if isinstance(message, Commit | StreamCommit | StreamAbort):
                seen += 1
        stream.stop()
    return out


def assemble(db: TestDatabase, messages: Sequence[tuple[int, PgOutputMessage]]) -> list[ChangeEvent]:
    """The assembler's events for ``messages`` (types looked up on a regular connection)."""
    import sqlalchemy as sa

    from source_postgres.catalog import type_rows

    engine = sa.create_engine(db.url)
    try:
        with engine.connect() as conn:
            assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
            events = [assembler.feed(m, lsn) for lsn, m in messages]
    finally:
        engine.dispose()
    return [e for e in events if e is not None and not isinstance(e, TransactionCommitted)]


class CdcTools:
    """The helpers above, as a fixture (test modules cannot import each other in importlib mode)."""

    params = staticmethod(params)
    run = staticmethod(run)
    capture = staticmethod(capture)
    assemble = staticmethod(assemble)


@pytest.fixture
def cdc() -> CdcTools:
    return CdcTools()
