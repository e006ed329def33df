"""Ready-made harnesses: SQLite files, and fresh PostgreSQL / MySQL databases.

The server harnesses create their own database on a session-scoped server (so a harness can
serve a whole test class) and drop it when the requesting scope ends. A connector's harness
subclasses one of them and maps :attr:`database` to its config in :meth:`config`. By default the
server is the session's fixture (the first provider of the environment's order); a harness that
sets :attr:`ServerDatabase.providers` takes its server from exactly those providers instead, so
one test module can run a suite against, say, a throwaway server and the local service::

    class PostgresThrowaway(MyPostgresHarness):
        providers = ("local-binaries",)
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from dbkit.runner.registry import ENTRY_POINT_GROUP
from dbkit.testing.fixtures import server_or_skip
from dbkit.testing.servers import (
    DatabaseServer,
    ServerKind,
    ServerRequirements,
    TestDatabase,
)
from dbkit.testing.suites.harness import BadConfig, DestinationHarness, Harness, SourceHarness


class SqliteFile(Harness):
    """A new SQLite database file in the test's temporary directory."""

    def setup(self, **fixtures: Any) -> None:
        self.path = self.tmp_path / "db.sqlite"
        sqlite3.connect(self.path).close()

    def url(self) -> sa.URL | str:
        return f"sqlite:///{self.path}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"path": str(self.path), **overrides}


class SqliteSourceHarness(SqliteFile, SourceHarness):
    command: ClassVar[str] = "source-sqlite"

    def bad_configs(self) -> dict[str, BadConfig]:
        garbage = self.tmp_path / "garbage.sqlite"
        garbage.write_bytes(b"this is not a database file" * 100)
        return {
            "missing_database": BadConfig(
                {"path": str(self.tmp_path / "missing.sqlite")}, ["does not exist"]
            ),
            "not_a_database": BadConfig({"path": str(garbage)}, ["not a SQLite database"]),
        }


def installed_connector(name: str) -> Any:
    """The object of the installed ``dbkit.connectors`` entry point ``name`` (a connector class)."""
    points = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not points:
        pytest.fail(f"connector {name!r} is not installed (no {ENTRY_POINT_GROUP} entry point of that name)")
    return next(iter(points)).load()


class SqliteDestinationHarness(SqliteFile, DestinationHarness):
    command: ClassVar[str | Sequence[str]] = "destination-sqlite"
    connector_name: ClassVar[str] = "destination-sqlite"
    """The installed connector whose capabilities the suite consults (a subclass may run another
    ``command``, such as a deliberately broken copy, against the same capabilities)."""

    @property
    def connector_class(self) -> Any:  # type: ignore[override]
        """Found as ``dbkit sync`` finds it, through its ``dbkit.connectors`` entry point: the
        toolkit never imports a connector package."""
        return installed_connector(self.connector_name)


def provided_server(kind: ServerKind, providers: Sequence[str]) -> DatabaseServer:
    """The process-wide server of ``kind`` from the first of ``providers`` that has one
    (:func:`~dbkit.testing.servers.get_server`, so it is started once per process).

    When none has one the calling test is skipped with the providers' reasons, or fails when the
    environment sets ``DBKIT_REQUIRE_SERVERS`` (as the fixtures do).
    """
    return server_or_skip(kind, ServerRequirements(), providers)


class ServerDatabase(Harness):
    """A fresh database on a session-scoped server: the ``server_fixture`` fixture, or the server
    of the named ``providers`` when a subclass sets them."""

    server_fixture: ClassVar[str]
    server_kind: ClassVar[ServerKind]
    providers: ClassVar[tuple[str, ...] | None] = None
    """Provider names (``"local-binaries"``, ``"local-service"``, ...; see
    :data:`~dbkit.testing.servers.PROVIDERS`) to take the server from, in order; None uses the
    fixture."""

    def required_fixtures(self) -> tuple[str, ...]:
        return () if self.providers is not None else (self.server_fixture,)

    def setup(self, **fixtures: Any) -> None:
        self.server: DatabaseServer = (
            provided_server(self.server_kind, self.providers)
            if self.providers is not None
            else fixtures[self.server_fixture]
        )
        self.database: TestDatabase = self.server.create_database(prefix="suite")
        self.request.addfinalizer(lambda: self.server.drop_database(self.database.name))

    def url(self) -> sa.URL | str:
        return self.database.url


class PostgresDatabase(ServerDatabase):
    server_fixture: ClassVar[str] = "postgres_server"
    server_kind: ClassVar[ServerKind] = "postgres"
    namespace: str | None = "public"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The config of a connector on :class:`dbkit.db.postgres.PostgresConnection` (both
        shipped PostgreSQL connectors): the fresh database, no SSL, then ``overrides``."""
        db = self.database
        config: dict[str, Any] = {
            "host": db.host,
            "port": db.port,
            "database": db.database,
            "username": db.user,
            "ssl_mode": {"mode": "disable"},
        }
        if db.password:
            config["password"] = db.password
        return {**config, **overrides}

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit psycopg connection to the fresh database, closed after the test."""
        conn = psycopg.connect(**self.database.connection_params(), autocommit=True)
        self.request.addfinalizer(conn.close)
        return conn

    def role(self) -> str:
        """A new login role with no grant (no superuser, no BYPASSRLS), dropped after the test
        with everything it owns: for tests of privileges and row-level security."""
        name = f"dbkit_role_{secrets.token_hex(4)}"
        self.connect().execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))

        def drop() -> None:
            with psycopg.connect(**self.database.connection_params(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

        self.request.addfinalizer(drop)
        return name

    def as_role(self, role: str, **overrides: Any) -> dict[str, Any]:
        """The connector's config, logging in as ``role`` (which has no password)."""
        config = self.config(**overrides)
        config["username"] = role
        config.pop("password", None)
        return config


class MysqlDatabase(ServerDatabase):
    server_fixture: ClassVar[str] = "mysql_server"
    server_kind: ClassVar[ServerKind] = "mysql"

    def setup(self, **fixtures: Any) -> None:
        super().setup(**fixtures)
        self.namespace = self.database.database

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The config of a connector with the usual MySQL connection fields (``host``, ``port``,
        ``database``, ``username``, ``password``, as Airbyte's MySQL connectors spell them): the
        fresh database, then ``overrides``."""
        db = self.database
        config: dict[str, Any] = {
            "host": db.host,
            "port": db.port,
            "database": db.database,
            "username": db.user,
        }
        if db.password:
            config["password"] = db.password
        return {**config, **overrides}


class PostgresSourceHarness(PostgresDatabase, SourceHarness):
    """Subclass with ``command`` (and ``config`` when the connector's config is not
    :class:`~dbkit.db.postgres.PostgresConnection`'s)."""


class PostgresDestinationHarness(PostgresDatabase, DestinationHarness):
    """Subclass with ``command`` and ``connector_class`` (and ``config`` when the connector's
    config is not :class:`~dbkit.db.postgres.PostgresConnection`'s)."""


class MysqlSourceHarness(MysqlDatabase, SourceHarness):
    """Subclass with ``command`` (and ``config`` when the connector's config spells its
    connection fields otherwise)."""


class MysqlDestinationHarness(MysqlDatabase, DestinationHarness):
    """Subclass with ``command``, ``connector_class`` and a ``config`` mapping :attr:`database`."""


SuiteT = TypeVar("SuiteT")


def suite_on(
    suite: type[SuiteT], harness: type[ServerDatabase], provider: str, *, slow: bool = True
) -> type[SuiteT]:
    """``suite`` (``SourceSuite``, ``DestinationSuite``) run on ``harness`` with its server taken
    from exactly one provider, marked with the server's kind (``postgres``, ``mysql``) and
    ``slow``; assign it to a ``Test...`` name in a test module::

        TestPostgresThrowaway = suite_on(SourceSuite, MyPostgres, "local-binaries")
        TestPostgresService = suite_on(SourceSuite, MyPostgres, "local-service")
    """
    title = "".join(part.capitalize() for part in provider.replace("_", "-").split("-"))
    pinned = type(f"{harness.__name__}{title}", (harness,), {"providers": (provider,)})
    pinned.__module__ = harness.__module__
    marks = [getattr(pytest.mark, harness.server_kind)] + ([pytest.mark.slow] if slow else [])
    made = type(f"Test{harness.__name__}{title}", (suite,), {"harness": pinned, "pytestmark": marks})
    made.__module__ = harness.__module__
    return made
