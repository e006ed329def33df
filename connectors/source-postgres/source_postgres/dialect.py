"""PostgreSQL as a source: catalog discovery, server-rendered records, exact state values.

The connection part (URL, SSL, SSH tunnel, error classification) is
:class:`dbkit.db.postgres.PostgresConnectionMixin`; this dialect adds what a source needs:

- discovery by catalog queries (:mod:`.catalog`), only what the user may SELECT;
- records rendered by the server (:mod:`.encoder`), full refreshes by read jobs (:mod:`.jobs`);
- key and cursor values kept in STATE as their text (``col::text``) and bound back as
  ``CAST(text AS <column type>)``: exact for every type, whatever JSON does to numbers;
- ``check`` that names what is wrong: a missing schema, a schema without USAGE, a schema with
  nothing to read, tables without a SELECT grant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from dbkit import ConfigError
from dbkit.db import Capabilities, Database, PostgresConnectionMixin, TypeRegistry
from dbkit.source import (
    CdcReader,
    ColumnInfo,
    ReadContext,
    ReadJob,
    RecordEncoder,
    SourceDialect,
    TableInfo,
)
from source_postgres.catalog import list_relations
from source_postgres.cdc.reader import PostgresCdcReader
from source_postgres.cdc.settings import PostgresCdcReplication
from source_postgres.config import PostgresSourceConfig
from source_postgres.encoder import ServerRecordEncoder
from source_postgres.jobs import parallel_workers, read_job
from source_postgres.types import SESSION_SETTINGS, TYPES

SCHEMAS = sa.text(
    """
    SELECT s.name, n.oid IS NOT NULL AS present,
           coalesce(has_schema_privilege(n.oid, 'USAGE'), false) AS usable,
           (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class AS c
             WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
               AND NOT c.relispartition) AS relations
    FROM unnest(CAST(:schemas AS text[])) AS s(name)
    LEFT JOIN pg_namespace AS n ON n.nspname = s.name
    """
)


# base types with values above every real one (see cursor_beyond)
_INFINITE_TIME = frozenset(
    {"date", "timestamp", "timestamp without time zone", "timestamptz", "timestamp with time zone"}
)
_INFINITE_FLOAT = frozenset({"float4", "float8", "real", "double precision"})
_INFINITE_NUMERIC = frozenset({"numeric", "decimal"})


class _CatalogTypeName(sa.types.UserDefinedType[Any]):
    """A type known only by its catalog name (``numeric(40,10)``, ``public.mood``): for CAST."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name


class PostgresSourceDialect(PostgresConnectionMixin, SourceDialect[PostgresSourceConfig]):
    name = "postgres"
    capabilities = Capabilities(concurrent_reads=True)
    types: ClassVar[TypeRegistry] = TYPES

    # ------------------------------------------------------------------ connection
    def on_connect(self, dbapi_connection: Any) -> None:
        """Session settings the text forms depend on (see :data:`SESSION_SETTINGS`); also no idle
        timeout: a chunked read's coordinator waits, idle in its transaction, for its workers."""
        with dbapi_connection.cursor() as cursor:
            for name, value in (*SESSION_SETTINGS, ("idle_in_transaction_session_timeout", "0")):
                cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        dbapi_connection.commit()

    def connections_per_stream(self) -> int:
        return parallel_workers(self.config.max_parallel_chunks) + 1

    # ------------------------------------------------------------------ discovery
    def schemas(self) -> Sequence[str | None]:
        return list(self.config.schemas)

    def list_tables(self, conn: sa.Connection) -> list[TableInfo]:
        tables = list_relations(conn, self.config.schemas)
        return [t for t in tables if self.include(t.namespace, t.name)]

    def is_resumable(self, table: TableInfo) -> bool:
        extra = table.extra
        return bool(table.primary_key) or (
            extra.get("relkind") in ("r", "m", "p")
            and bool(extra.get("table_select", True))
            and bool(extra.get("leaves_by_ctid", True))
        )

    def check_readable(self, conn: sa.Connection) -> None:
        user = self.connection.username
        rows = conn.execute(SCHEMAS, {"schemas": list(self.config.schemas)}).mappings().all()
        missing = [r["name"] for r in rows if not r["present"]]
        if missing:
            raise ConfigError(
                f"schema(s) {', '.join(map(repr, missing))} do not exist in {self.describe_target()}"
            )
        unusable = [r["name"] for r in rows if not r["usable"]]
        if unusable:
            names = ", ".join(map(repr, unusable))
            raise ConfigError(
                f"user {user!r} may not use schema(s) {names} (GRANT USAGE ON SCHEMA ... TO {user})"
            )
        readable: dict[str | None, list[TableInfo]] = defaultdict(list)
        for table in self.list_tables(conn):
            readable[table.namespace].append(table)
        for r in rows:
            schema = r["name"]
            if readable.get(schema):
                continue
            relations = [n for n in (r["relations"] or []) if self.include(schema, n)]
            if not relations:
                raise ConfigError(
                    f"schema {schema!r} has no table or view to read"
                    + (" that matches the include/exclude patterns" if r["relations"] else "")
                )
            shown = ", ".join(relations[:5]) + (", ..." if len(relations) > 5 else "")
            raise ConfigError(
                f"user {user!r} may not read any of the {len(relations)} table(s) of schema {schema!r} "
                f"({shown}): permission denied; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {user}"
            )
        for tables in readable.values():
            first = tables[0]
            conn.execute(sa.select(sa.literal(1)).select_from(self.table_clause(first)).limit(1)).all()

    # ------------------------------------------------------------------ reading
    def record_encoder(
        self, table: TableInfo, t: sa.TableClause, columns: Sequence[ColumnInfo]
    ) -> RecordEncoder:
        return ServerRecordEncoder(columns)

    def key_expression(self, table: sa.TableClause, column: ColumnInfo) -> sa.ColumnElement[Any]:
        return sa.cast(table.c[column.name], sa.Text())

    def key_state_value(self, column: ColumnInfo, raw: Any) -> Any:
        return None if raw is None else str(raw)

    def bind_state_value(self, column: ColumnInfo, value: Any) -> sa.ColumnElement[Any]:
        if not isinstance(value, str):
            raise ConfigError(
                f"state value {value!r} for column {column.name!r} is not in source-postgres's form "
                "(the value's text); reset the stream"
            )
        return sa.cast(sa.literal(value, sa.Text()), _CatalogTypeName(column.type_name))

    def cursor_beyond(
        self, column: ColumnInfo, value: sa.ColumnElement[Any]
    ) -> sa.ColumnElement[bool] | None:
        """``'infinity'`` dates and timestamps; ``Infinity`` and ``NaN`` numbers (NaN sorts above
        every number in PostgreSQL). Domains are judged by their base type."""
        base = getattr(column.handler, "type_name", "")
        if base in _INFINITE_TIME:
            kind = _CatalogTypeName(base)
            return sa.cast(value, kind) == sa.cast(sa.literal("infinity", sa.Text()), kind)
        if base in _INFINITE_FLOAT:
            kind = _CatalogTypeName(base)
            return sa.cast(value, kind) >= sa.cast(sa.literal("Infinity", sa.Text()), kind)
        if base in _INFINITE_NUMERIC:  # as text: 'Infinity' is no numeric before PostgreSQL 14
            return sa.cast(value, sa.Text()).in_(["Infinity", "NaN"])
        return None

    def read_job(self, context: ReadContext) -> ReadJob | None:
        return read_job(context, parallel_workers(self.config.max_parallel_chunks))

    # ------------------------------------------------------------------ change data capture
    def replication_params(self) -> dict[str, Any]:
        """libpq parameters of a replication connection to the configured server (through the
        SSH tunnel when there is one): the snapshot path's connection arguments."""
        c = self.connection
        host, port = self._endpoint()
        params: dict[str, Any] = {
            "host": host,
            "port": port,
            "dbname": c.database,
            "user": c.username,
            **self.connect_args(),
        }
        password = c.password.get_secret_value()
        if password:
            params["password"] = password
        return params

    def cdc_reader(self, database: Database) -> CdcReader[Any] | None:
        """Logical replication (:mod:`source_postgres.cdc.reader`) when ``replication_method`` is CDC."""
        method = self.config.replication_method
        if not isinstance(method, PostgresCdcReplication):
            return None
        return PostgresCdcReader(database, method, self.replication_params, self.describe_target())
