"""Harnesses: how a suite reaches a fresh database of a connector's kind.

A connector author writes (or reuses) one harness per connector. It knows three things the
suites cannot guess: the connector's command, the config that points it at a fresh database,
and how to reach that database with SQLAlchemy to create tables and read results. Everything
else — what to create, what to check — is the suite's.

Ready-made harnesses for SQLite, PostgreSQL and MySQL/MariaDB live in
:mod:`dbkit.testing.suites.harnesses`; a connector's harness usually only maps a
:class:`~dbkit.testing.servers.TestDatabase` to its config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit.db.dialect import Capabilities
from dbkit.testing.runner import ConnectorRunner


@dataclass(frozen=True)
class TypeCase:
    """One row of a source's type table: a column of ``sql_type`` holding ``literal``.

    ``expected`` is the JSON value the record must carry (compared exactly: numbers by their
    decimal value, so ``1.10`` equals ``1.1`` but not ``1.1000000001``); ``schema`` is the
    column's expected JSON schema (``None`` to skip that check); ``change`` the reason of the
    ``meta.changes`` entry expected when the value is emitted as NULL.
    """

    sql_type: str
    literal: str
    expected: Any
    schema: Mapping[str, Any] | None = None
    change: str | None = None
    id: str | None = None
    setup: Sequence[str] = ()  # SQL run first (CREATE TYPE ..., CREATE EXTENSION ...)

    @property
    def name(self) -> str:
        return self.id or f"{self.sql_type}:{self.literal}"


@dataclass(frozen=True)
class BadConfig:
    """A config ``check`` must refuse, and words its message must contain (case-insensitive)."""

    config: Mapping[str, Any]
    words: Sequence[str]


def check_refuses_nul_in_every_string(runner: ConnectorRunner, config: Mapping[str, Any]) -> int:
    """``check`` with a NUL character put into each top-level string of a working ``config``, one
    at a time: each must answer FAILED naming the field and "NUL", print no secret, and exit 0.
    (Drivers cut a C string at NUL: a setting after it, such as ``sslmode``, would be dropped in
    silence.) Returns how many fields were tried."""
    tried = 0
    for key, value in config.items():
        if not isinstance(value, str) or not value:
            continue
        tried += 1
        bad = {**config, key: value[:1] + "\x00" + value[1:] + "\x00tail"}
        result = runner.check(bad)
        assert result.exit_code == 0, f"{key}: check must answer, not crash ({result.errors()})"
        status = result.connection_status
        assert status["status"] == "FAILED", f"{key} with a NUL: check succeeded"
        message = status.get("message", "")
        assert "NUL" in message, f"{key}: {message!r} does not say what is wrong"
        assert key in message, f"{key}: {message!r} does not name the field"
        assert value[1:] not in result.output_text() or len(value) < 4, f"{key}: its value was printed"
    return tried


class Harness:
    """Base of source and destination harnesses; made once per test by the suite's fixture.

    ``fixtures`` names pytest fixtures the harness needs (e.g. ``postgres_db``); they are
    resolved with ``request.getfixturevalue`` and passed to :meth:`setup`.
    """

    command: ClassVar[str | Sequence[str]]
    """The console script, or a full argv (e.g. ``[sys.executable, "my_connector.py"]``)."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    fixtures: ClassVar[Sequence[str]] = ()
    namespace: str | None = None
    """Where test tables are created and where streams are discovered (None: the default)."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path
        self._engine: sa.Engine | None = None
        self.setup(**{name: request.getfixturevalue(name) for name in self.required_fixtures()})

    def required_fixtures(self) -> Sequence[str]:
        return self.fixtures

    def setup(self, **fixtures: Any) -> None:
        """Receive the fixtures named in ``fixtures``."""

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The connector's config for the fresh database, with ``overrides`` applied."""
        raise NotImplementedError

    def url(self) -> sa.URL | str:
        """A SQLAlchemy URL of the fresh database (for creating tables and reading results)."""
        raise NotImplementedError

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.url())
            self.request.addfinalizer(self._engine.dispose)
        return self._engine

    def runner(self, **options: Any) -> ConnectorRunner:
        workdir = self.tmp_path / "runs"
        workdir.mkdir(exist_ok=True)
        return ConnectorRunner(self.command, workdir=workdir, **options)

    def execute(self, *statements: str | sa.Executable, params: Mapping[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement) if isinstance(statement, str) else statement, params or {})


class SourceHarness(Harness):
    """What the source suite needs from a source connector."""

    type_cases: ClassVar[Sequence[TypeCase]] = ()

    def bad_configs(self) -> Mapping[str, BadConfig]:
        """Configs ``check`` must refuse with a clear message, by case name
        (e.g. ``wrong_password``, ``unknown_host``, ``missing_database``)."""
        return {}

    def literal_table_sql(self, table: str, case: TypeCase) -> list[str]:
        """SQL creating a table ``(id <int> primary key, v <case.sql_type>)`` holding the literal."""
        q = self.engine.dialect.identifier_preparer
        name = q.quote(table) if self.namespace is None else f"{q.quote(self.namespace)}.{q.quote(table)}"
        return [
            *case.setup,
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v {case.sql_type})",
            f"INSERT INTO {name} (id, v) VALUES (1, {case.literal})",
        ]


class DestinationHarness(Harness):
    """What the destination suite needs from a destination connector."""

    connector_class: ClassVar[type[Any]]
    """The connector (an ``SqlDestination``): its config model, naming rules and capabilities."""
    soft_delete_config: Mapping[str, Any] | None = {"cdc_deletion_mode": "soft_delete"}
    """Config overrides that switch CDC deletions to soft deletes, or None when there is no such mode."""

    def read_table(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every row of a table the destination wrote, as dicts (values as the driver gives them)."""
        columns = [c["name"] for c in sa.inspect(self.engine).get_columns(name, schema=namespace)]
        table = sa.table(name, *(sa.column(c) for c in columns), schema=namespace)  # untyped: raw values
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.select(table))]

    def tables(self, namespace: str | None = None) -> set[str]:
        return set(sa.inspect(self.engine).get_table_names(schema=namespace))

    def namespaces(self) -> set[str]:
        return set(sa.inspect(self.engine).get_schema_names())


@dataclass
class Table:
    """A test table, created with SQLAlchemy Core (portable across databases)."""

    name: str
    columns: list[sa.Column[Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def create(self, harness: Harness) -> sa.Table:
        table = sa.Table(self.name, sa.MetaData(), *self.columns, schema=harness.namespace)
        with harness.engine.begin() as conn:
            table.create(conn)
            if self.rows:
                conn.execute(table.insert(), self.rows)
        return table
