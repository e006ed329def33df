"""Typed frames of native values (``native`` kind, :mod:`dbkit.protocol.arrow`) read with ADBC.

A chunked full refresh whose output is Arrow reads each chunk through the ADBC PostgreSQL driver
(``adbc-driver-postgresql``: the server sends the chunk as a binary ``COPY``, which the driver
turns into Arrow arrays in C++), so no value is rendered as text by the server, parsed by Python
or quoted for CSV on the way. Each column is selected by the kind of its type
(:func:`native_columns`):

- natively, where the driver's Arrow form is the typed frame's: ``smallint``/``integer``/
  ``bigint`` (int64), ``boolean``, ``text`` and ``varchar`` (their text), ``numeric`` (the
  driver writes its text exactly as ``numeric::text`` does, the JSON path's token; NaN and the
  infinities are null, as on the JSON path), ``json`` (its text with line breaks and tabs as
  spaces, as the JSON path's ``translate``) and ``jsonb`` (``jsonb::text``), ``bytea`` (the
  bytes), ``date``, ``timestamp``, ``timestamptz`` and ``time`` (native Arrow values);
- every other column (floats, whose text PostgreSQL and Arrow write differently; uuid; arrays,
  money, composites, domains...) as the text a ``columns`` frame holds (:func:`column_text`,
  rendered by the server).

The driver adds the Unix epoch offset to PostgreSQL's dates and timestamps without checking for
overflow (ADBC 1.13): ``infinity`` becomes a date 5.8 million years BC, and ``infinity``,
``-infinity`` and timestamps after 294247-01-10 wrap to timestamps near the start of Arrow's
range. So the server hands the driver only the finite dates and the timestamps Arrow holds
(``CASE WHEN ... THEN x END``); the infinities are null, as on the JSON path (the record's
``meta`` says so: the JSON path's ``changes_sql``), and a timestamp past Arrow's years also comes
as its canonical text, which makes its column a string column for that chunk. A time
``24:00:00`` (no Arrow time) makes its column strings for that chunk too.

The connections use the libpq parameters of the psycopg path (:meth:`replication_params`: host
and port, through the SSH tunnel when there is one, user, password, SSL mode and files,
``application_name``, ``options``) and its session settings, and read under the read's exported
snapshot in a ``REPEATABLE READ, READ ONLY`` transaction (:class:`~.parallel.SnapshotGroup`). A
secret never appears in an error: the driver's messages may quote the connection string, and
every secret of it is masked (:meth:`NativeReader.error`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dbkit import ConfigError, DbkitError, SystemFailure, TransientError
from dbkit.protocol import COLUMN_TYPES, NATIVE_TYPES, TOKEN_TYPES
from dbkit.source import ColumnInfo
from source_postgres.columns import _CLIENT, column_text
from source_postgres.encoder import changes_sql, handler
from source_postgres.types import NUMERIC, NUMERIC_BOUNDED, SESSION_SETTINGS, Sql, compose, scalar

if TYPE_CHECKING:
    import pyarrow as pa

_LAST_ARROW_TIMESTAMP = "294247-01-10 04:00:54.775807"
"""The last instant of Arrow's ``timestamp[us]`` (int64 microseconds from 1970)."""
_DAY_MICROS = 86_400_000_000

# kinds by the column's type as ``format_type`` writes it (a domain's is its own name)
_KINDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"smallint|integer|bigint"), "integer"),
    (re.compile(r"boolean"), "boolean"),
    (re.compile(r"text|character varying(\(\d+\))?"), "text"),
    (re.compile(r"numeric(\(\d+(,-?\d+)?\))?"), "numeric"),
    (re.compile(r"json"), "json"),
    (re.compile(r"jsonb"), "jsonb"),
    (re.compile(r"bytea"), "bytea"),
    (re.compile(r"date"), "date"),
    (re.compile(r"timestamp(\(\d\))? without time zone"), "timestamp"),
    (re.compile(r"timestamp(\(\d\))? with time zone"), "timestamptz"),
    (re.compile(r"time(\(\d\))? without time zone"), "time"),
]
KINDS = frozenset(kind for _, kind in _KINDS)
"""The kinds of column read natively (the others: ``server``, their text)."""


def adbc_available() -> bool:
    """Whether the ADBC PostgreSQL driver is installed."""
    return importlib.util.find_spec("adbc_driver_postgresql") is not None


def column_kind(column: ColumnInfo) -> str:
    """How a column is read: one of :data:`KINDS`, or ``server`` (its text, by the server)."""
    h = handler(column)
    kind = next((k for pattern, k in _KINDS if pattern.fullmatch(column.type_name)), "server")
    if kind == "server":
        return kind
    if kind == "numeric":
        same = h.render in (NUMERIC.render, NUMERIC_BOUNDED.render) and h.type_name in ("", "numeric")
    else:
        same = bool(h.type_name) and h.render is scalar(h.type_name).render
    return kind if same else "server"  # a domain renders through its base type: its text


@dataclass(frozen=True)
class NativeColumns:
    """The columns of a native read: each one's kind, and the select list of a chunk's query."""

    names: list[str]
    kinds: list[str]
    airbyte: list[str]  # Airbyte types
    finish: list[Callable[[pa.Array], pa.Array] | None]  # a server column's finishing (columns._CLIENT)
    select: Sql
    """``<column k> AS _c<k>`` (and ``_o<k>``: the text of a timestamp past Arrow's years), ``meta``."""

    def batch(self, table: pa.Table) -> pa.RecordBatch:
        """The typed frame's batch of a chunk's result (see the module doc)."""
        import pyarrow as pa

        table = table.combine_chunks()
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []
        for k, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
            column = _whole(table.column(f"_c{k}"))
            odd = _whole(table.column(f"_o{k}")) if kind in ("timestamp", "timestamptz") else None
            array = _finish(kind, column, odd, self.finish[k])
            wanted = self.airbyte[k]
            if kind == "server" and COLUMN_TYPES[wanted] != "string":  # an integer's or boolean's text
                array = array.cast(_arrow(COLUMN_TYPES[wanted]))
            if str(array.type) not in (COLUMN_TYPES[wanted], NATIVE_TYPES.get(wanted)):
                raise SystemFailure(
                    f"ADBC read column {name!r} ({kind}) as {array.type}, not as a {wanted} column"
                )
            arrays.append(array)
            fields.append(pa.field(name, array.type))
        meta = _whole(table.column("_meta"))
        arrays.append(_plain(meta).cast(pa.binary()))
        fields.append(pa.field("meta", pa.binary()))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _arrow(name: str) -> pa.DataType:
    import pyarrow as pa

    return {"int64": pa.int64(), "bool": pa.bool_()}[name]


def native_columns(columns: Sequence[ColumnInfo], members: bytes = b"") -> NativeColumns | None:
    """The native read of ``columns``, None when a read must keep other frames (a CDC snapshot's
    records carry members no column holds)."""
    if members or not columns:
        return None
    parts: list[Sql] = []
    kinds: list[str] = []
    finish: list[Callable[[pa.Array], pa.Array] | None] = []
    for k, c in enumerate(columns):
        h = handler(c)
        kind = column_kind(c)
        if kind == "server" and h.column is None and h.airbyte_type.value not in TOKEN_TYPES:
            return None  # as for a ``columns`` frame (source_postgres.columns.frame_columns)
        x = sql.Identifier(c.name)
        alias = sql.Identifier(f"_c{k}")
        if kind == "date":
            parts.append(compose("CASE WHEN isfinite({0}) THEN {0} END AS {1}", x, alias))
        elif kind in ("timestamp", "timestamptz"):
            zone = "+00" if kind == "timestamptz" else ""
            last = sql.Literal(_LAST_ARROW_TIMESTAMP + zone)
            assert h.column is not None
            parts.append(
                compose("CASE WHEN {0} > '-infinity' AND {0} <= {1} THEN {0} END AS {2}", x, last, alias)
            )
            parts.append(
                compose(
                    "CASE WHEN {0} > {1} AND {0} < 'infinity' THEN {2} END AS {3}",
                    x,
                    last,
                    h.column(x),
                    sql.Identifier(f"_o{k}"),
                )
            )
        elif kind == "server":
            parts.append(compose("{} AS {}", column_text(c), alias))
        else:
            parts.append(compose("{} AS {}", x, alias))
        kinds.append(kind)
        finish.append(_CLIENT.get(h.convert) if kind == "server" else None)
    meta = changes_sql(columns)
    meta_text = (
        compose("{} || {} || '}}'", sql.Literal('{"changes":'), meta)
        if meta is not None
        else sql.SQL("NULL::text")
    )
    parts.append(compose("{} AS _meta", meta_text))
    airbyte = [handler(c).airbyte_type.value for c in columns]
    return NativeColumns([c.name for c in columns], kinds, airbyte, finish, sql.SQL(", ").join(parts))


def _whole(column: Any) -> pa.Array:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            return column.chunk(0)
        return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
    return column


def _plain(array: pa.Array) -> pa.Array:
    """An extension array's storage (``numeric``, ``json``, ``jsonb`` come as extensions of
    strings), any other array as it is."""
    import pyarrow as pa

    return array.storage if isinstance(array, pa.ExtensionArray) else array


def _finish(
    kind: str, column: pa.Array, odd: pa.Array | None, finish: Callable[[pa.Array], pa.Array] | None
) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    from dbkit.protocol import canonical_strings

    column = _plain(column)
    if kind == "integer":
        return column.cast(pa.int64())
    if kind == "numeric":  # NaN and the infinities (the driver's "nan", "inf", "-inf") are null
        number = pc.match_substring_regex(column, r"^-?[0-9]")
        if pc.all(pc.fill_null(number, True)).as_py():
            return column
        return pc.if_else(number, column, pa.scalar(None, pa.string()))
    if kind == "json":  # line breaks and tabs as spaces (JSON allows them only between tokens)
        for ch in ("\n", "\r", "\t"):
            if _may_contain(column, ch.encode()):
                column = pc.replace_substring(column, ch, " ")
        return column
    if kind == "time":
        day = pa.scalar(_DAY_MICROS, pa.int64())
        micros = column.cast(pa.int64())
        late = pc.fill_null(pc.greater_equal(micros, day), False)
        if not pc.any(late).as_py():
            return column
        # 24:00:00, which no Arrow time holds: the column as the canonical strings
        usual = canonical_strings(pc.if_else(late, pa.scalar(None, column.type), column))
        return pc.if_else(late, pa.scalar("24:00:00.000000", pa.string()), usual)
    if odd is not None and odd.null_count < len(odd):
        # a timestamp past Arrow's years: the column as the canonical strings
        return pc.coalesce(odd, canonical_strings(column))
    if finish is not None:
        return finish(column)
    return column


def _may_contain(array: pa.Array, needle: bytes) -> bool:
    buffers = array.buffers()
    data = buffers[2] if len(buffers) > 2 else None
    return data is not None and needle in data.to_pybytes()


class NativeReader:
    """ADBC connections to the source (libpq parameters ``params``, the psycopg path's) and the
    reading of a chunk's query into a typed frame's batch."""

    def __init__(self, params: dict[str, Any], columns: NativeColumns, target: str) -> None:
        from psycopg.conninfo import make_conninfo

        self.columns = columns
        self.target = target
        self._conninfo = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
        secrets = [str(params[k]) for k in ("password", "sslpassword") if params.get(k)]
        # as they are, and as the connection string quotes them (backslashes and quotes escaped)
        quoted = [s.replace("\\", "\\\\").replace("'", "\\'") for s in secrets]
        self._secrets = sorted({*secrets, *quoted}, key=len, reverse=True)

    def connect(self, snapshot: str) -> Any:
        """A connection in a ``REPEATABLE READ, READ ONLY`` transaction under ``snapshot``, with
        the session settings of the psycopg path."""
        import adbc_driver_postgresql.dbapi as adbc

        try:
            conn = adbc.connect(self._conninfo, autocommit=True)
        except Exception as exc:
            raise self.error(exc) from None
        try:
            with conn.cursor() as cur:
                for name, value in (*SESSION_SETTINGS, ("idle_in_transaction_session_timeout", "0")):
                    cur.execute(f"SELECT set_config('{name}', '{value}', false)")
                    cur.fetchall()
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        except Exception as exc:
            self.close(conn)
            raise self.error(exc) from None
        return conn

    def read(self, conn: Any, query: str) -> tuple[pa.RecordBatch, int]:
        """A chunk's rows as a typed frame's batch, and their number."""
        try:
            with conn.cursor() as cur:
                # one Arrow batch per chunk (the driver's default cuts one every 16 MB, and
                # joining them copies the chunk again: 0.4 s per million rows of the bench table)
                cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(1 << 30)})
                cur.execute(query)
                table = cur.fetch_arrow_table()
        except Exception as exc:
            raise self.error(exc) from None
        return self.columns.batch(table), table.num_rows

    @staticmethod
    def cancel(conn: Any) -> None:
        conn.adbc_connection.cancel()

    @staticmethod
    def close(conn: Any) -> None:
        with contextlib.suppress(Exception):  # a broken connection: nothing left to release
            conn.close()

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def error(self, exc: BaseException) -> DbkitError:
        """The driver's error as a dbkit error, every secret masked (the message may quote the
        connection string); raise it ``from None``: the driver's own would show them."""
        message = self.mask(str(exc))
        state = str(getattr(exc, "sqlstate", "") or "")
        if state.startswith("28") or state == "3D000":
            return ConfigError(f"{self.target}: {message}")
        if state.startswith("08") or type(exc).__name__ == "OperationalError":
            return TransientError(f"reading {self.target} with ADBC: {message}")
        return SystemFailure(f"reading {self.target} with ADBC: {message}")
