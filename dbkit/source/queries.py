"""Custom SQL streams: a named SELECT read like a table.

A :class:`QueryStream` is a SELECT with a name, a primary key and (optionally) a default cursor.
Discovery describes its result columns with the driver (``LIMIT 0``: nothing is read), and the
read plans run on it exactly as on a table, through :class:`QueryClause`, which renders as
``(<the SELECT>) AS "<name>"`` in a FROM: full refresh ordered by the key and resumable after
the last key; cursor incremental ordered by ``(cursor, key)`` under a fixed upper bound, with
the same tie-safe positions (:mod:`dbkit.source.plans`). The database must be able to filter
and order the derived table (every SQL database can), and it should push the filters down into
the SELECT (PostgreSQL, MySQL 8 / MariaDB and SQLite do for simple queries) for resumed and
incremental reads to be cheap.

The key must be unique and never NULL, like a table's primary key: it orders resumable reads.
A NULL in it stops the read with a ``config_error`` (:class:`KeyGuard`); uniqueness cannot be
checked cheaply and is the query's author's promise (a duplicated key may lose the duplicate
rows that fall after a checkpoint).

The SQL is sent as written; a colon never starts a bind parameter (``'12:30'``, ``::int`` are
safe) and ``%`` needs no doubling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from dbkit.errors import ConfigError
from dbkit.protocol import StreamDescriptor
from dbkit.source.records import Changes, RecordEncoder

QUERY_KIND = "query"
"""``TableInfo.kind`` of a custom SQL stream."""


@dataclass(frozen=True)
class QueryStream:
    """A custom SQL stream: ``name`` (and ``namespace``, None for none), the SELECT, its key
    columns, its suggested cursor, and declared type names of some result columns (for drivers
    that report none, or to read a column as another type). ``where`` says where it was
    defined (``manifest.yaml:12``), for messages."""

    name: str
    sql: str
    primary_key: tuple[str, ...]
    cursor: str | None = None
    namespace: str | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)
    where: str = ""

    @property
    def descriptor(self) -> StreamDescriptor:
        return StreamDescriptor(self.name, self.namespace)

    def label(self) -> str:
        return f"custom SQL stream {self.name!r}" + (f" ({self.where})" if self.where else "")


class QueryClause(sa.TableClause):
    """A SELECT used as a table: ``(<sql>) AS "<name>"`` in a FROM, its columns ``"<name>".col``."""

    inherit_cache = False  # the SQL text is not part of TableClause's cache key

    def __init__(self, name: str, sql: str, columns: Sequence[str]) -> None:
        super().__init__(name, *(sa.column(c) for c in columns))
        self.sql = sql


@compiles(QueryClause)
def _compile_query_clause(element: QueryClause, compiler: SQLCompiler, **kw: Any) -> str:
    name = compiler.preparer.quote(element.name)
    if not kw.get("asfrom"):
        return name
    # escaped colons: no bind parameters; the compiler doubles '%' for pyformat drivers
    text = compiler.process(sa.text(element.sql.replace(":", "\\:")), **kw)
    return f"(\n{text}\n) AS {name}"  # on lines of its own: a trailing -- comment ends there


@dataclass(frozen=True)
class ResultColumn:
    """A result column as the driver describes it."""

    name: str
    type_name: str
    nullable: bool


def describe_query(conn: sa.Connection, sql: str) -> list[ResultColumn]:
    """The result columns of ``sql`` (``LIMIT 0``: the database plans it, reads nothing), with the
    type names the driver reports (PostgreSQL's ``format_type``; MySQL's field types; SQLite
    reports none: ``""``). Raises the driver's error when the SQL fails."""
    probe: sa.Select[Any] = (
        sa.select(sa.literal_column("*")).select_from(QueryClause("dbkit_query", sql, [])).limit(0)
    )
    result = conn.execute(probe)
    description = list(result.cursor.description or []) if result.cursor is not None else []
    fields = _mysql_fields(result)
    result.close()
    names = [str(d[0]) for d in description]
    codes = [d[1] for d in description]
    nullable = [d[6] is not False if len(d) > 6 else True for d in description]
    backend = conn.dialect.name
    if backend == "postgresql":
        types = _postgres_type_names(conn, codes)
    elif backend in ("mysql", "mariadb"):
        types = [
            _mysql_type_name(code, fields[i] if i < len(fields) else None) for i, code in enumerate(codes)
        ]
    else:
        types = [code if isinstance(code, str) else "" for code in codes]  # SQLite: none
    return [ResultColumn(n, t, null) for n, t, null in zip(names, types, nullable, strict=True)]


def _postgres_type_names(conn: sa.Connection, oids: Sequence[Any]) -> list[str]:
    wanted = sorted({oid for oid in oids if isinstance(oid, int)})
    if not wanted:
        return ["" for _ in oids]
    rows = conn.execute(
        sa.text(
            "SELECT oid::int8 AS oid, format_type(oid, NULL) AS name "
            "FROM pg_catalog.pg_type WHERE oid::int8 IN :oids"
        )
        .bindparams(sa.bindparam("oids", expanding=True))
        .columns(oid=sa.Integer, name=sa.Text),
        {"oids": wanted},
    ).all()
    names = {int(oid): str(name) for oid, name in rows}
    return [names.get(oid, "") if isinstance(oid, int) else "" for oid in oids]


# MySQL protocol field types (pymysql.constants.FIELD_TYPE); BLOB-like types and strings are
# binary when their character set is 63 ("binary")
_MYSQL_TYPES = {
    0: "decimal",
    1: "tinyint",
    2: "smallint",
    3: "int",
    4: "float",
    5: "double",
    7: "timestamp",
    8: "bigint",
    9: "mediumint",
    10: "date",
    11: "time",
    12: "datetime",
    13: "year",
    14: "date",
    16: "bit",
    245: "json",
    246: "decimal",
    247: "enum",
    248: "set",
    255: "geometry",
}
_MYSQL_TEXTS = {15: ("varchar", "varbinary"), 253: ("varchar", "varbinary"), 254: ("char", "binary")}
_MYSQL_BLOBS = frozenset({249, 250, 251, 252})
_MYSQL_BINARY_CHARSET = 63
_MYSQL_UNSIGNED = 32


def _mysql_fields(result: sa.CursorResult[Any]) -> list[Any]:
    """PyMySQL's field packets of the result (character sets, flags), when it is PyMySQL."""
    inner = getattr(result.cursor, "_result", None)
    return list(getattr(inner, "fields", None) or [])


def _mysql_type_name(code: Any, packet: Any) -> str:
    binary = getattr(packet, "charsetnr", None) == _MYSQL_BINARY_CHARSET
    if code in _MYSQL_BLOBS:
        return "blob" if binary else "text"
    if code in _MYSQL_TEXTS:
        return _MYSQL_TEXTS[code][1 if binary else 0]
    name = _MYSQL_TYPES.get(code, "")
    flags = getattr(packet, "flags", 0) or 0
    if name.endswith("int") and flags & _MYSQL_UNSIGNED:
        name += " unsigned"
    return name


class KeyGuard:
    """Wraps a custom SQL stream's record encoder: a row whose key (captured for a checkpoint)
    is NULL stops the read with a config_error (keyset positions cannot hold a NULL, and the
    rows after it would be lost on a resume)."""

    def __init__(self, inner: RecordEncoder, stream: QueryStream) -> None:
        self._inner = inner
        self._stream = stream
        self._n = len(inner.select_list())

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return self._inner.select_list()

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        n = self._n
        for row in rows:
            # captured after the data: the key, or (cursor, key) where the cursor is not NULL
            if len(row) > n and None in row[n:]:
                stream = self._stream
                raise ConfigError(
                    f"{stream.label()}: the query returned a row whose primary key "
                    f"({', '.join(stream.primary_key)}) is NULL; the key of a custom SQL stream must "
                    "be unique and never NULL (it orders resumable reads): fix the query or its key",
                    stream=stream.descriptor,
                )
        return self._inner.encode(rows)
