"""pytest fixtures giving tests real database servers and a fresh database per test.

Session-scoped servers come from dbkit.testing.servers.get_server (shared by the process, so each
pytest-xdist worker has its own); when no provider can give one, the tests that need it are skipped
with the finder's reasons. Database fixtures create a uniquely named database before the test and
drop it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest

from dbkit.testing.servers import (
    DatabaseServer,
    NoServerAvailable,
    ServerKind,
    ServerRequirements,
    TestDatabase,
    get_server,
)

REQUIRE_ENV_VAR = "DBKIT_REQUIRE_SERVERS"


def server_or_skip(
    kind: ServerKind, requirements: ServerRequirements, providers: Sequence[str] | None = None
) -> DatabaseServer:
    """The process-wide server (see :func:`~dbkit.testing.servers.get_server`), or a skip with the
    finder's reasons; a failure instead when the environment sets ``DBKIT_REQUIRE_SERVERS=1`` (the
    project's CI does: there, a missing server is a defect)."""
    try:
        return get_server(kind, requirements, providers=list(providers) if providers is not None else None)
    except NoServerAvailable as exc:
        if os.environ.get(REQUIRE_ENV_VAR, "") not in ("", "0"):
            pytest.fail(f"{exc}\n({REQUIRE_ENV_VAR} is set, so a missing server fails the test)")
        pytest.skip(str(exc))


def _database(server: DatabaseServer) -> Iterator[TestDatabase]:
    database = server.create_database(prefix="t")
    try:
        yield database
    finally:
        server.drop_database(database.name)


@pytest.fixture(scope="session")
def postgres_server() -> DatabaseServer:
    """A PostgreSQL server with no special settings."""
    return server_or_skip("postgres", ServerRequirements())


@pytest.fixture(scope="session")
def postgres_server_logical() -> DatabaseServer:
    """A PostgreSQL server with wal_level=logical and replication slots."""
    return server_or_skip("postgres", ServerRequirements(logical_replication=True))


@pytest.fixture(scope="session")
def mysql_server() -> DatabaseServer:
    """A MySQL or MariaDB server with no special settings."""
    return server_or_skip("mysql", ServerRequirements())


@pytest.fixture(scope="session")
def mysql_server_binlog() -> DatabaseServer:
    """A MySQL or MariaDB server with a row-based, full-image binlog."""
    return server_or_skip("mysql", ServerRequirements(binlog=True))


@pytest.fixture
def postgres_db(postgres_server: DatabaseServer) -> Iterator[TestDatabase]:
    """A fresh database on ``postgres_server``, dropped after the test."""
    yield from _database(postgres_server)


@pytest.fixture
def postgres_db_logical(postgres_server_logical: DatabaseServer) -> Iterator[TestDatabase]:
    """A fresh database on ``postgres_server_logical`` (wal_level=logical), dropped after the test
    together with its replication slots (slots are per cluster: drop_database removes the ones on
    this database, ending the sessions that hold them)."""
    yield from _database(postgres_server_logical)


@pytest.fixture
def mysql_db(mysql_server: DatabaseServer) -> Iterator[TestDatabase]:
    """A fresh database on ``mysql_server``, dropped after the test."""
    yield from _database(mysql_server)
