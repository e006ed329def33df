"""Typed Arrow batches -> ``COPY ... FROM STDIN``, streamed, in binary where it can be.

All parts of one load go through one open COPY, and psycopg's ``QueuedLibpqWriter`` sends each
part from a thread while the next one is built. A part goes in PostgreSQL's binary format, its
rows built in C (:mod:`.binary`), when the target's column types and its values allow it: the
server then parses nothing (measured: bench/README.md, issue 14). Otherwise (a column type the
encoder does not write, a value it does not take, no C compiler at install time, or
``DBKIT_COPY_FORMAT=csv``) the part goes as CSV, written by ``pyarrow.csv`` in C++; a part of the
other format ends the running COPY and starts one of its own, in the same transaction.

In CSV, values are made what PostgreSQL's CSV input reads exactly as meant (the session's
TimeZone is UTC, see ``PostgresConnectionMixin.on_connect``): timestamps with a time zone go as
naive UTC (which Arrow formats in C++), dates and timestamps before year 1 as
``YYYY-MM-DD ... BC``, binary as ``\\x`` hex. In binary, each value is what that text reads as.
``_airbyte_meta`` is sent only for the rows that have changes (in a second, small COPY) when the
table's column default already holds the batch's empty ``_airbyte_meta``.

Should PostgreSQL still refuse a value (the CONTEXT of its error names the line and column), the
value is reported as :class:`~dbkit.destination.dialect.ValueRefused`, and the loader stores NULL
there with a change and loads the batch again.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from psycopg import sql
from psycopg.copy import Copy, QueuedLibpqWriter
from psycopg.pq import TransactionStatus

from dbkit.db import DAY_MICROS, civil_from_days, days_from_civil, format_time_micros
from dbkit.destination import META, SIZE, TYPECAST, Batch, ValueRefused
from destination_postgres import binary

_WRITE_OPTIONS = pcsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=1 << 16)
_FIRST_DAY_AD = days_from_civil(1, 1, 1)
_FIRST_DAY_10000 = days_from_civil(10000, 1, 1)
_SIZE_STATES = frozenset({"22001", "22003", "22008", "22015", "54000", "54001"})
# SQLSTATE class 22; 54000; 54001, a value nested deeper than the server's stack takes (jsonb)
_REFUSALS = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded, psycopg.errors.StatementTooComplex)
_LINE = re.compile(r"^COPY .*?, line (\d+), column (.*)\Z", re.DOTALL | re.MULTILINE)
"""The CONTEXT line of COPY's error callback (possibly after others: jsonb's ``JSON data, line 1:
...``), with the rest of the context."""


@dataclass
class _Sent:
    """Which rows of which part each line of one COPY holds (to map an error back)."""

    parts: list[tuple[int, int]] = field(default_factory=list)  # (part index, first line)
    rows: list[Sequence[int] | None] = field(default_factory=list)  # row indices (None: all)
    lines: int = 0

    def add(self, part: int, rows: Sequence[int] | None, count: int) -> None:
        if count:
            self.parts.append((part, self.lines + 1))
            self.rows.append(rows)
            self.lines += count

    def locate(self, line: int) -> tuple[int, int] | None:
        for (part, first), rows in zip(reversed(self.parts), reversed(self.rows), strict=True):
            if line >= first:
                offset = line - first
                return part, offset if rows is None else rows[offset]
        return None


def copy_batches(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    batches: Iterable[Batch],
    columns: Sequence[str],
    meta_default: str | None,
) -> None:
    """COPY every batch's rows into ``table`` (its ``columns`` among the batch's); when
    ``meta_default`` is the batches' empty ``_airbyte_meta``, that column is sent only for the
    rows with changes. Raises :class:`ValueRefused` for a value PostgreSQL refused."""
    names = list(columns)
    plain_names = [n for n in names if n != META] if meta_default is not None else names
    targets = _target_types(cursor, table) if binary.wanted() else {}
    changed: list[tuple[int, Batch, list[int]]] = []
    with _Copy(cursor, table, plain_names, targets) as main:
        for k, batch in enumerate(batches):
            rows: list[int] | None = None
            if meta_default is not None and batch.empty_meta != meta_default:
                changed.append((k, batch, list(range(batch.table.num_rows))))
                continue
            if meta_default is not None and batch.changed:
                changed.append((k, batch, batch.changed))
                rows = _unchanged_rows(batch)
            plain = batch.table if rows is None else batch.table.take(pa.array(rows, pa.int64()))
            main.write(k, rows, plain.select(plain_names))
    if not changed:
        return
    with _Copy(cursor, table, names, targets) as side:
        for k, batch, rows in changed:
            side.write(k, rows, batch.table.take(pa.array(rows, pa.int64())).select(names))


class _Copy:
    """The parts of one load into one column list, through ``COPY ... FROM STDIN``: in binary
    (:mod:`.binary`) while the target's column types and every part allow it, else as CSV; a part
    of the other format ends the running COPY and starts one of its own (one transaction)."""

    def __init__(
        self, cursor: psycopg.Cursor[Any], table: sql.Composable, names: list[str], targets: dict[str, str]
    ) -> None:
        self.cursor = cursor
        self.table = table
        self.names = names
        self.targets = targets
        self.kinds: list[int] | bool | None = False  # not planned yet (planned from the first part)
        self.stack = contextlib.ExitStack()
        self.copy: Copy | None = None
        self.binary = False
        self.sent = _Sent()

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if kind is None:
                self._end()
            else:  # the running COPY is aborted with the error, as a plain `with` would
                self.copy = None
                self.stack.__exit__(kind, exc, tb)
        except _REFUSALS as error:
            raise _refused(error, self.sent, self.names) or error from None
        if isinstance(exc, _REFUSALS):
            raise _refused(exc, self.sent, self.names) or exc from None

    def write(self, part: int, rows: Sequence[int] | None, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.kinds is False:
            self.kinds = binary.plan(table.schema, self.names, self.targets) if self.targets else None
        data: bytes | None = None
        if isinstance(self.kinds, list):
            try:
                data = binary.encode(table, self.kinds)
            except binary.Unsupported:
                data = None
        if self.copy is None or self.binary != (data is not None):
            self._end()
            self._begin(data is not None)
        assert self.copy is not None
        self.sent.add(part, rows, table.num_rows)
        self.copy.write(data if data is not None else to_csv(table))

    def _begin(self, binary_format: bool) -> None:
        statement = _copy_sql(self.table, self.names, "binary" if binary_format else "csv")
        self.copy = self.stack.enter_context(
            self.cursor.copy(statement, writer=QueuedLibpqWriter(self.cursor))
        )
        self.binary = binary_format
        self.sent = _Sent()
        if binary_format:
            self.copy.write(binary.HEADER)

    def _end(self) -> None:
        if self.copy is not None and self.binary:
            self.copy.write(binary.TRAILER)
        self.copy = None
        self.stack.close()


def _target_types(cursor: psycopg.Cursor[Any], table: sql.Composable) -> dict[str, str]:
    """The type name (``pg_type.typname``) of each column of ``table`` whose type is one of
    PostgreSQL's own (``pg_catalog``: a type of another schema may be named like one, a domain
    ``public.int8 AS text`` is text to the server), held until the transaction ends: the table is
    locked first (ROW EXCLUSIVE, which the COPY takes anyway), so no other session (a concurrent
    writer widening a column) changes a type before the COPY reads binary values as these types
    (at READ COMMITTED, where the types are read after the lock is granted). Empty, and the load
    goes as CSV, where nothing holds them: outside a transaction block (autocommit), and for a
    relation LOCK TABLE does not take (a foreign table)."""
    connection = cursor.connection
    if connection.autocommit and connection.info.transaction_status == TransactionStatus.IDLE:
        return {}
    oid = sql.SQL("{}::regclass").format(sql.Literal(table.as_string(cursor)))
    kind = cursor.execute(sql.SQL("SELECT relkind FROM pg_class WHERE oid = {}").format(oid)).fetchone()
    if kind is None or kind[0] not in ("r", "p"):  # a table, a partitioned table
        return {}
    cursor.execute(sql.SQL("LOCK TABLE ONLY {} IN ROW EXCLUSIVE MODE").format(table))
    query = sql.SQL(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped"
        " AND t.typnamespace = 'pg_catalog'::regnamespace"
    ).format(oid)
    return dict(cursor.execute(query).fetchall())


def _copy_sql(table: sql.Composable, names: Sequence[str], copy_format: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
        table, sql.SQL(", ").join(sql.Identifier(n) for n in names), sql.SQL(copy_format)
    )


def _unchanged_rows(batch: Batch) -> list[int]:
    changed = set(batch.changed)
    return [i for i in range(batch.table.num_rows) if i not in changed]


def _refused(exc: psycopg.Error, sent: _Sent, names: Sequence[str]) -> ValueRefused | None:
    """The refused value an error's CONTEXT names (``COPY t, line 3, column c: "..."``; in
    binary, ``COPY t, line 3, column c``). A value PostgreSQL calls malformed binary (22P03), or
    a field the COPY format cannot frame (22P04: a length past 2 GB), is this loader's fault, never
    the data's: not a refusal."""
    if exc.sqlstate in ("22P03", "22P04"):
        return None
    match = _LINE.search(exc.diag.context or "")
    if match is None:
        return None
    where = sent.locate(int(match.group(1)))
    rest = match.group(2)
    column = max((n for n in names if rest == n or rest.startswith(n + ":")), key=len, default=None)
    if where is None or column is None:
        return None
    reason = SIZE if exc.sqlstate in _SIZE_STATES else TYPECAST
    part, row = where
    return ValueRefused(part, row, column, reason, exc.diag.message_primary or str(exc))


# ------------------------------------------------------------------------- CSV


def to_csv(table: pa.Table) -> bytes:
    """CSV that PostgreSQL's COPY reads as the table's typed values (see the module doc)."""
    columns = [_pg_text(table.column(i).combine_chunks()) for i in range(table.num_columns)]
    buffer = io.BytesIO()
    pcsv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), buffer, _WRITE_OPTIONS)
    return buffer.getvalue()


def _pg_text(array: pa.Array) -> pa.Array:
    kind = array.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            array = array.cast(pa.timestamp("us"))  # naive UTC: the session's time zone is UTC
        first = array.cast(pa.int64())
        bounds = pc.min_max(first)
        smallest, largest = bounds["min"].as_py(), bounds["max"].as_py()
        if smallest is not None and (
            smallest < _FIRST_DAY_AD * DAY_MICROS or largest >= _FIRST_DAY_10000 * DAY_MICROS
        ):  # Arrow writes only years 1..9999
            return _bc_aware(array, first.to_pylist(), _timestamp_text)
        return array
    if pa.types.is_date32(kind):
        days = array.cast(pa.int32())
        bounds = pc.min_max(days)
        smallest, largest = bounds["min"].as_py(), bounds["max"].as_py()
        if smallest is not None and (smallest < _FIRST_DAY_AD or largest >= _FIRST_DAY_10000):
            return _bc_aware(array, days.to_pylist(), _date_text)
        return array
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string())
    return array


def _bc_aware(array: pa.Array, numbers: list[int | None], text: Any) -> pa.Array:
    return pa.array([None if n is None else text(n) for n in numbers], pa.string())


def _date_text(days: int) -> str:
    year, month, day = civil_from_days(days)
    era = " BC" if year <= 0 else ""
    return f"{year if year > 0 else 1 - year:04d}-{month:02d}-{day:02d}{era}"


def _timestamp_text(micros: int) -> str:
    days, rest = divmod(micros, DAY_MICROS)
    year, month, day = civil_from_days(days)
    era = " BC" if year <= 0 else ""
    return f"{year if year > 0 else 1 - year:04d}-{month:02d}-{day:02d} {format_time_micros(rest)}{era}"
