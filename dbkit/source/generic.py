"""A source dialect for any database SQLAlchemy reaches, through the framework's defaults.

:class:`GenericSqlDialect` is what source-sql reads every database with, and what a declarative
manifest (:mod:`dbkit.manifest`) configures; a subclass gives the URL
(:meth:`~dbkit.db.Dialect.sqlalchemy_url`) and the schemas to read (:meth:`configured_schemas`).

Discovery is SQLAlchemy's batch reflection (one namespace per configured schema, else the
connection's default schema, named: ``public``, the MySQL database, SQLite's ``main``), type
names are what SQLAlchemy compiles the reflected types to, and values are converted in Python
(:mod:`dbkit.db.generic_types`). Three things are added on top:

- **State that binds back exactly.** A key or cursor value is kept in STATE tagged with the
  Python type the driver returned (``{"datetime": "2024-01-02T03:04:05.123456"}``,
  ``{"decimal": "1.10"}``, ...) and bound again as that same Python value, without a SQL type,
  so the driver adapts it exactly as it reads it (psycopg sends a timestamp, PyMySQL a datetime
  literal, SQLite the text it stored). Plain JSON values (integers, text) stay plain.
- **Errors a person can act on**, classified by driver error class, SQLSTATE, MySQL error code
  or SQLite result code (never by database name): a failure while connecting (bad credentials,
  unknown host or database, closed port) is a ``config_error`` naming host and port; a dropped
  connection, a deadlock or a server shutting down is a ``transient_error``.
- **JSON kept exact.** psycopg is told to hand JSON over as its text (it would parse numbers into
  floats), and MariaDB's JSON columns — LONGTEXT checked by ``json_valid`` — are found through the
  standard ``information_schema`` constraint views and read as JSON.
- **Custom SQL streams** (:mod:`dbkit.source.queries`): :meth:`query_streams` names SELECTs
  read like tables (resumable by their key, incremental by their cursor).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext

from dbkit.db.generic_types import JSON, TYPES
from dbkit.db.mysql import mysql_code
from dbkit.db.types import TypeRegistry
from dbkit.errors import ConfigError, DbkitError, TransientError
from dbkit.source.dialect import SourceDialect
from dbkit.source.model import ColumnInfo, TableInfo
from dbkit.source.queries import QUERY_KIND, KeyGuard, QueryClause, QueryStream, describe_query
from dbkit.source.records import RecordEncoder

ConfigT = TypeVar("ConfigT", bound=BaseModel)

# SQLSTATEs (PostgreSQL, and any driver reporting them), by prefix
_SQLSTATE_LOGIN = ("28",)  # invalid authorization
# no such database, schema, table or column; a missing grant
_SQLSTATE_CONFIG = ("3D000", "3F000", "42P01", "42703", "42501")
_SQLSTATE_LOST = ("08", "57P01", "57P02", "57P03", "53300")  # connection lost / refused for now
_SQLSTATE_BUSY = ("40001", "40P01")  # serialization failure, deadlock
# MySQL / MariaDB error codes (server and client)
_MYSQL_LOGIN = frozenset({1044, 1045, 1698})
_MYSQL_NO_DATABASE = 1049
_MYSQL_UNREACHABLE = frozenset({2002, 2003, 2005})
_MYSQL_CONFIG = frozenset({1054, 1142, 1143, 1146})
_MYSQL_LOST = frozenset({1040, 1053, 1927, 2006, 2013, 2055})
_MYSQL_BUSY = frozenset({1205, 1213})  # lock wait timeout, deadlock
# SQLite result codes (sqlite3.Error.sqlite_errorcode; primary code in the low byte)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN, _SQLITE_NOTADB, _SQLITE_ERROR = 5, 6, 14, 26, 1
_SQLITE_MISSING = re.compile(r"^no such (?:table|column)")

# MariaDB's JSON is LONGTEXT with CHECK (json_valid(column)); SQLAlchemy reflects only the LONGTEXT
_LONGTEXT = re.compile(r"^longtext\b", re.IGNORECASE)
_JSON_VALID = re.compile(r"^\s*json_valid\(\s*`?([^`()]+?)`?\s*\)\s*$", re.IGNORECASE)
_TABLE_CONSTRAINTS = sa.table(
    "table_constraints",
    *(sa.column(c) for c in ("constraint_schema", "constraint_name", "table_schema", "table_name")),
    sa.column("constraint_type"),
    schema="information_schema",
)
_CHECK_CONSTRAINTS = sa.table(
    "check_constraints",
    *(sa.column(c) for c in ("constraint_schema", "constraint_name", "check_clause")),
    schema="information_schema",
)


def reason(exc: BaseException) -> str:
    """The driver's own words, on one line, without libpq's connection preamble and 'FATAL:'."""
    text = str(exc.args[1]) if mysql_code(exc) is not None and len(exc.args) > 1 else str(exc)
    text = " ".join(re.sub(r"\b(?:FATAL|ERROR):\s+", "", text).split())
    return text.rsplit(" failed: ", 1)[-1] or type(exc).__name__


# ------------------------------------------------------------------------------ the dialect


class GenericSqlDialect(SourceDialect[ConfigT]):
    """Any SQLAlchemy database (see the module doc). Subclasses implement ``sqlalchemy_url`` and
    :meth:`configured_schemas`."""

    name = "sql"
    types: ClassVar[TypeRegistry] = TYPES

    def __init__(self, config: ConfigT) -> None:
        super().__init__(config)
        self._default_schema: str | None = None

    def configured_schemas(self) -> list[str]:
        """The schemas the config names (empty: the connection's default schema)."""
        raise NotImplementedError

    def describe_target(self) -> str:
        url = self.sqlalchemy_url()
        where = f" at {self.where()}" if url.host else ""
        return f"{url.get_backend_name()} database {url.database or '(default)'}{where}"

    def where(self) -> str:
        """Host and port, or the database file: what a connection error names (no secrets)."""
        url = self.sqlalchemy_url()
        if url.host:
            return f"{url.host}:{url.port}" if url.port else url.host
        return f"database {url.database}" if url.database else "the database"

    def on_connect(self, dbapi_connection: Any) -> None:
        adapters = getattr(dbapi_connection, "adapters", None)
        if adapters is not None:  # psycopg 3: JSON as its text (parsed, numbers would lose digits)
            from psycopg.types.string import TextLoader

            for name in ("json", "jsonb"):
                adapters.register_loader(name, TextLoader)

    def engine_events(self, engine: sa.Engine) -> None:
        event.listen(engine, "handle_error", self._connect_error)

    def _connect_error(self, context: ExceptionContext) -> BaseException | None:
        """A driver error raised while connecting (no connection yet) is the config's fault:
        wrong credentials, host, port or database; unless the driver says it is transient."""
        if context.connection is not None or not isinstance(context.sqlalchemy_exception, sa.exc.DBAPIError):
            return None
        original = context.original_exception
        known = self.classify_error(original)
        if known is not None:
            return known
        return ConfigError(
            f"could not connect to {self.where()}: {reason(original)}", internal=repr(original)
        )

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        code = mysql_code(exc)
        sqlstate = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
        sqlite = getattr(exc, "sqlite_errorcode", None)
        sqlite = sqlite & 0xFF if isinstance(sqlite, int) else None
        text, where, internal = reason(exc), self.where(), repr(exc)
        if code in _MYSQL_LOGIN or (code is None and sqlstate.startswith(_SQLSTATE_LOGIN)):
            return ConfigError(
                f"{where} refused the login: {text}; check the user name and password in the URL",
                internal=internal,
            )
        if code == _MYSQL_NO_DATABASE or sqlstate == "3D000":
            database = self.sqlalchemy_url().database
            return ConfigError(f"database {database!r} does not exist on {where} ({text})", internal=internal)
        if code in _MYSQL_UNREACHABLE or sqlite == _SQLITE_CANTOPEN:
            return ConfigError(f"could not connect to {where}: {text}", internal=internal)
        if sqlite == _SQLITE_NOTADB:
            return ConfigError(f"{where} is not a SQLite database: {text}", internal=internal)
        if code in _MYSQL_LOST or (code is None and sqlstate.startswith(_SQLSTATE_LOST)):
            return TransientError(f"lost the connection to {where}: {text}", internal=internal)
        if code in _MYSQL_BUSY or sqlite in (_SQLITE_BUSY, _SQLITE_LOCKED) or sqlstate in _SQLSTATE_BUSY:
            return TransientError(f"{where} is busy (locks held by others): {text}", internal=internal)
        if (
            code in _MYSQL_CONFIG
            or (code is None and sqlstate.startswith(_SQLSTATE_CONFIG))
            or (sqlite == _SQLITE_ERROR and _SQLITE_MISSING.match(text))
        ):
            return ConfigError(
                f"{text}; refresh the source schema (discover) or grant access", internal=internal
            )
        return None  # dropped connections without a code: SQLAlchemy's disconnect check decides

    # ------------------------------------------------------------------ discovery
    def schemas(self) -> Sequence[str | None]:
        return list(self.configured_schemas()) or [self._default_schema]

    def query_streams(self) -> Sequence[QueryStream]:
        """The custom SQL streams to offer beside the tables (:mod:`dbkit.source.queries`);
        default none."""
        return ()

    def reads_tables(self) -> bool:
        """Whether the schemas' tables and views are offered as streams (default yes); a source
        of custom SQL streams only says no."""
        return True

    def check_readable(self, conn: sa.Connection) -> None:
        inspector = sa.inspect(conn)
        missing = [s for s in self.configured_schemas() if not inspector.has_schema(s)]
        if missing:
            raise ConfigError(
                f"schema(s) {', '.join(map(repr, missing))} do not exist in {self.describe_target()}"
            )
        super().check_readable(conn)

    def list_tables(self, conn: sa.Connection) -> list[TableInfo]:
        tables = self._reflected_tables(conn) if self.reads_tables() else []
        taken = {t.descriptor for t in tables}
        for query in self.query_streams():
            if query.descriptor in taken:
                raise ConfigError(
                    f"{query.label()}: a table is discovered as stream {query.descriptor} too; give the "
                    "custom SQL stream another name or namespace, or exclude the table",
                    stream=query.descriptor,
                )
        return tables + [self._query_table(conn, query) for query in self.query_streams()]

    def _query_table(self, conn: sa.Connection, query: QueryStream) -> TableInfo:
        """A custom SQL stream as a table: its result columns described by the driver, their
        declared types applied, its key columns not NULL. A failing SELECT is a config_error
        naming the stream (a lost connection stays transient)."""
        try:
            described = describe_query(conn, query.sql)
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            original = exc.orig if exc.orig is not None else exc
            known = self.classify_error(original)
            if isinstance(known, TransientError):
                raise known from exc
            if exc.connection_invalidated:
                raise TransientError(
                    f"lost the connection to {self.where()}: {reason(original)}", internal=repr(original)
                ) from exc
            raise ConfigError(
                f"{query.label()}: the SELECT failed: {reason(original)}; fix its SQL",
                internal=repr(original),
                stream=query.descriptor,
            ) from None
        names = [c.name for c in described]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"{query.label()}: the SELECT returns several columns named "
                f"{', '.join(map(repr, duplicates))}; give each column a name of its own (AS ...)",
                stream=query.descriptor,
            )
        for what, wanted in (
            ("primary key column", query.primary_key),
            ("cursor", (query.cursor,) if query.cursor else ()),
            ("declared column", tuple(query.column_types)),
        ):
            unknown = [n for n in wanted if n not in names]
            if unknown:
                raise ConfigError(
                    f"{query.label()}: {what} {', '.join(map(repr, unknown))} is not a column of its "
                    f"SELECT (columns: {', '.join(names)})",
                    stream=query.descriptor,
                )
        columns = []
        for c in described:
            type_name = query.column_types.get(c.name, c.type_name)
            nullable = c.nullable and c.name not in query.primary_key
            columns.append(self.column_info(c.name, type_name, nullable))
        if query.cursor:
            cursor = next(c for c in columns if c.name == query.cursor)
            if not cursor.handler.can_be_cursor:
                raise ConfigError(
                    f"{query.label()}: cursor {query.cursor!r} has type {cursor.type_name or '(unknown)'}, "
                    "which cannot be a cursor; declare its type (columns: ...) or choose another column",
                    stream=query.descriptor,
                )
        return TableInfo(
            name=query.name,
            namespace=query.namespace,
            columns=tuple(columns),
            primary_key=query.primary_key,
            kind=QUERY_KIND,
            extra={"query": query, "default_cursor": query.cursor},
        )

    def table_clause(self, table: TableInfo) -> sa.TableClause:
        query = table.extra.get("query")
        if table.kind == QUERY_KIND and isinstance(query, QueryStream):
            return QueryClause(table.name, query.sql, [c.name for c in table.columns])
        return super().table_clause(table)

    def record_encoder(
        self, table: TableInfo, t: sa.TableClause, columns: Sequence[ColumnInfo]
    ) -> RecordEncoder:
        encoder = super().record_encoder(table, t, columns)
        query = table.extra.get("query")
        if table.kind == QUERY_KIND and isinstance(query, QueryStream):
            return KeyGuard(encoder, query)
        return encoder

    def _reflected_tables(self, conn: sa.Connection) -> list[TableInfo]:
        if not self.configured_schemas():
            self._default_schema = sa.inspect(conn).default_schema_name
        tables = super().list_tables(conn)
        checked = self._json_checked_columns(conn, tables)
        declared = self._declared_type_names(conn, tables)
        if not checked and not declared:
            return tables

        def column(t: TableInfo, c: ColumnInfo) -> ColumnInfo:
            where = (t.namespace, t.name, c.name)
            if where in checked:
                return ColumnInfo(c.name, "json", JSON, c.nullable)
            if where in declared:
                return self.column_info(c.name, declared[where], c.nullable)
            return c

        return [dataclasses.replace(t, columns=tuple(column(t, c) for c in t.columns)) for t in tables]

    def _declared_type_names(
        self, conn: sa.Connection, tables: list[TableInfo]
    ) -> dict[tuple[Any, str, str], str]:
        """The declared type names of columns whose type SQLAlchemy does not know (reflected as
        NULL: MariaDB's ``inet6``, an extension's ``ltree``), from the standard
        ``information_schema.columns`` (PostgreSQL: ``udt_name``), so that type rules and
        handlers can name them; a database without that view answers nothing."""
        unknown = {(t.namespace, t.name, c.name) for t in tables for c in t.columns if c.type_name == "NULL"}
        if not unknown:
            return {}
        names = ("table_schema", "table_name", "column_name", "data_type", "udt_name")
        columns = sa.table("columns", *(sa.column(n) for n in names), schema="information_schema")
        declared = columns.c.udt_name if conn.dialect.name == "postgresql" else columns.c.data_type
        schemas = sorted({str(schema) for schema, _, _ in unknown if schema is not None})
        query = sa.select(
            columns.c.table_schema, columns.c.table_name, columns.c.column_name, declared
        ).where(columns.c.table_schema.in_(schemas))
        try:
            rows = conn.execute(query).all()
        except sa.exc.DBAPIError:
            conn.rollback()
            return {}
        found = {(schema, table, column): str(name) for schema, table, column, name in rows if name}
        return {where: found[where] for where in unknown if where in found}

    def _json_checked_columns(
        self, conn: sa.Connection, tables: list[TableInfo]
    ) -> set[tuple[Any, str, str]]:
        """(schema, table, column) of the LONGTEXT columns constrained by ``CHECK (json_valid(column))``.

        Asked only where such columns exist, through the standard constraint views; a database
        without them answers nothing.
        """
        schemas = {
            t.namespace
            for t in tables
            if t.namespace and any(_LONGTEXT.match(c.type_name) for c in t.columns)
        }
        if not schemas:
            return set()
        tc, cc = _TABLE_CONSTRAINTS.c, _CHECK_CONSTRAINTS.c
        query = (
            sa.select(tc.table_schema, tc.table_name, cc.check_clause)
            .select_from(
                _TABLE_CONSTRAINTS.join(
                    _CHECK_CONSTRAINTS,
                    sa.and_(
                        cc.constraint_schema == tc.constraint_schema, cc.constraint_name == tc.constraint_name
                    ),
                )
            )
            .where(tc.constraint_type == "CHECK", tc.table_schema.in_(sorted(schemas)))
        )
        try:
            rows = conn.execute(query).all()
        except sa.exc.DBAPIError:
            conn.rollback()
            return set()
        found = set()
        for schema, table, clause in rows:
            match = _JSON_VALID.match(str(clause or ""))
            if match:
                found.add((schema, table, match.group(1)))
        longtext = {
            (t.namespace, t.name, c.name) for t in tables for c in t.columns if _LONGTEXT.match(c.type_name)
        }
        return found & longtext
