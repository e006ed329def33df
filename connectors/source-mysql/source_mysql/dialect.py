"""MySQL and MariaDB as a source: catalog discovery, server-rendered records, exact state values.

The connection part (URL, SSL, SSH tunnel, error classification) is
:class:`source_mysql.connection.MySqlSourceConnection`; this dialect adds what a source needs:

- discovery by a few catalog queries for the whole database (:mod:`.catalog`);
- records rendered by the server (:mod:`.encoder`), read by the toolkit's plans: full refreshes
  in primary-key order, resumable from the last key; cursor reads ordered by ``(cursor, key)``
  under an upper bound fixed at the start; the rows streamed (an unbuffered cursor);
- key and cursor values kept in STATE as their text (binary ones base64) and bound back by kind
  (:attr:`~source_mysql.types.MySqlReadHandler.bind`): integers and decimals as exact literals,
  doubles as doubles, dates, times and strings as string literals the server converts to the
  column's own type;
- ``check`` that names what is wrong: no table, or the tables without a SELECT grant.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.types import NullType

from dbkit import ConfigError
from dbkit.db import Capabilities, Database, TypeRegistry
from dbkit.source import (
    CdcOptions,
    CdcReader,
    ColumnInfo,
    ReadContext,
    ReadJob,
    RecordEncoder,
    SourceDialect,
    TableInfo,
)
from source_mysql.blocks import block_job
from source_mysql.catalog import list_relations
from source_mysql.cdc import MySqlCdcReader
from source_mysql.config import CdcMethod, MySqlSourceConfig
from source_mysql.connection import MySqlSourceConnection
from source_mysql.encoder import ServerRecordEncoder, handler_of
from source_mysql.types import TYPES, quote_identifier

_INTEGER = re.compile(r"^-?\d+$")
_PROBE_TABLES = 200  # tables per probe statement in check


class MySqlSourceDialect(MySqlSourceConnection, SourceDialect[MySqlSourceConfig]):
    name = "mysql"
    capabilities = Capabilities(concurrent_reads=True, max_identifier_bytes=64)
    types: ClassVar[TypeRegistry] = TYPES

    # ------------------------------------------------------------------ discovery
    def schemas(self) -> Sequence[str | None]:
        return [self.config.database]

    def list_tables(self, conn: sa.Connection) -> list[TableInfo]:
        tiny_bit = self.config.jdbc_params().get("tinyInt1isBit", "true").lower() != "false"
        tables = list_relations(conn, self.config.database, tinyint1_is_bit=tiny_bit)
        return [t for t in tables if self.include(t.namespace, t.name)]

    def check_readable(self, conn: sa.Connection) -> None:
        tables = self.list_tables(conn)
        if not tables:
            patterns = self.config.include_tables or self.config.exclude_tables
            raise ConfigError(
                f"database {self.config.database!r} has no table or view that user "
                f"{self.config.username!r} can see"
                + (" and that matches the include/exclude patterns" if patterns else "")
                + f" in {self.describe_target()}"
            )
        # one statement per group of tables proves SELECT on each of them (the error names the first
        # one without it), without reading a row
        for start in range(0, len(tables), _PROBE_TABLES):
            group = tables[start : start + _PROBE_TABLES]
            probe = " UNION ALL ".join(
                f"(SELECT 1 FROM {quote_identifier(t.namespace or '')}.{quote_identifier(t.name)} LIMIT 0)"
                for t in group
            )
            conn.execute(sa.text(probe)).all()

    # ------------------------------------------------------------------ reading
    def record_encoder(
        self, table: TableInfo, t: sa.TableClause, columns: Sequence[ColumnInfo]
    ) -> RecordEncoder:
        return ServerRecordEncoder(columns)

    def read_job(self, context: ReadContext) -> ReadJob | None:
        """Full refreshes of tables with a primary key: key-range blocks (:mod:`.blocks`)."""
        return block_job(self, context, self.parallel_chunks())

    def parallel_chunks(self) -> int:
        requested: int = self.config.max_parallel_chunks
        return max(1, min(requested, os.cpu_count() or 1))

    def connections_per_stream(self) -> int:
        return self.parallel_chunks() + 1

    def key_expression(self, table: sa.TableClause, column: ColumnInfo) -> sa.ColumnElement[Any]:
        select = handler_of(column).select
        expression = select(quote_identifier(column.name))
        if expression == quote_identifier(column.name):
            return table.c[column.name]
        return sa.literal_column(expression)

    def key_state_value(self, column: ColumnInfo, raw: Any) -> Any:
        if raw is None:
            return None
        if handler_of(column).bind == "binary":
            return base64.b64encode(bytes(raw)).decode("ascii")
        return raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)

    def bind_state_value(self, column: ColumnInfo, value: Any) -> sa.ColumnElement[Any]:
        kind = handler_of(column).bind
        try:
            if not isinstance(value, str):
                raise ValueError
            if kind == "int":
                if not _INTEGER.match(value):
                    raise ValueError
                return sa.literal(int(value), NullType())
            if kind == "decimal":
                number = Decimal(value)
                if not number.is_finite():
                    raise ValueError
                return sa.literal(number, NullType())
            if kind == "float":
                return sa.literal(float(value), NullType())
            if kind == "binary":
                return sa.literal(base64.b64decode(value, validate=True), NullType())
            return sa.literal(value, NullType())
        except (ValueError, InvalidOperation, binascii.Error):
            raise ConfigError(
                f"state value {value!r} for column {column.name!r} is not in source-mysql's form "
                f"(the value's text{', base64' if kind == 'binary' else ''}); reset the stream"
            ) from None

    # ------------------------------------------------------------------ change data capture
    def cdc_reader(self, database: Database) -> CdcReader[Any] | None:
        """The binlog (:mod:`source_mysql.cdc`) when ``replication_method`` is CDC."""
        method = self.config.replication_method
        if not isinstance(method, CdcMethod):
            return None
        return MySqlCdcReader(database, _options(method), self.binlog_connection, self.describe_target())

    def binlog_connection(self) -> Any:
        """A plain PyMySQL connection with the dialect's arguments (SSL, tunnel, timeouts): the
        binlog dump and the reader's own queries."""
        host, port = self.endpoint()
        c = self.config
        params: dict[str, Any] = {
            **self.connect_args(),
            "host": host,
            "port": port,
            "user": c.username,
            "password": c.password.get_secret_value(),
            "autocommit": True,
        }
        params.pop("conv", None)
        params.setdefault("read_timeout", 120)
        connection = self._connect(None, None, (), params)
        return connection if connection is not None else pymysql.connect(**params)


def _options(method: CdcMethod) -> CdcOptions:
    return CdcOptions(
        initial_waiting_seconds=float(method.initial_waiting_seconds),
        invalid_cdc_cursor_position_behavior=method.invalid_cdc_cursor_position_behavior,
    )
