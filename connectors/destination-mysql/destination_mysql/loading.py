"""The bulk-loading role of destination-mysql: every part of a load through one
``LOAD DATA LOCAL INFILE``, fed from a stream (no file on disk).

Each typed Arrow part becomes CSV in Arrow's C++ writer, in the form LOAD DATA reads exactly as
meant: ``\\N`` (unquoted) for NULL, backslashes doubled (``ESCAPED BY '\\\\'``), every text
value quoted (a doubled quote inside; so a string ``NULL`` is not read as NULL), integers, dates
and timestamps as the writer renders them (timestamps with a zone as naive UTC: the session's
time zone is UTC), booleans as 0/1, binary as hex (``UNHEX`` on the server). The parts are sent
as they are built, so memory stays at one part plus the batch. Where the loader builds parts
ahead (on its builder's thread) and will load them as they are, each part's CSV is rendered
there too (:meth:`MySqlBulkLoader.encode`), and the load only sends bytes: the server does not
wait for the connector in the middle of a ``LOAD DATA``. Then the parts built ahead also hold
their CSV until sent (about the size of their Arrow data again); a part's CSV is dropped once
sent (a reload after a refused value renders it again).

LOAD DATA LOCAL cannot stop the client mid-stream, so MySQL reports a value that does not fit
its column as a warning (and stores it cut or converted) instead of failing. The loader reads
the warnings: one that names a row and a column becomes a
:class:`~dbkit.destination.ValueRefused` (the transaction is rolled back; the framework stores
NULL there with a change and loads again); a duplicate key of a user's unique index is a
config_error; any other warning fails the load, so nothing is stored changed without a record.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import sqlalchemy as sa

from dbkit import ConfigError, SystemFailure
from dbkit.destination import SIZE, TYPECAST, Batch, BulkLoader, ValueRefused, WriteContext
from destination_mysql.connection import load_stream
from destination_mysql.tables import quote, table_sql

_WRITE_OPTIONS = pcsv.WriteOptions(
    include_header=False, quoting_style="needed", batch_size=1 << 16, null_string="\\N"
)
"""``needed`` quotes every value of a string column (whether it needs it or not) and no other."""
_NATIVE_TIMESTAMP = pa.timestamp("us")
_WHERE = re.compile(r"column [`'](?:[^`']*[`']\.[`'])*([^`']+)[`'] at row (\d+)", re.IGNORECASE)
_SIZE_CODES = frozenset({1264, 1406, 1690})
_DUPLICATE = 1062
_TRUNCATED = 1265


def driver_cursor(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


class MySqlBulkLoader(BulkLoader):
    """The bulk-loading role of destination-mysql (see the module doc)."""

    def load_batches(
        self, conn: sa.Connection, table: sa.Table, batches: Iterable[Batch], write: WriteContext
    ) -> None:
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        names = [c for c in first.table.column_names if c in table.c]
        binary = {n for n in names if _is_binary(first.table.schema.field(n).type)}
        targets = [f"@{_var(i)}" if n in binary else quote(conn, n) for i, n in enumerate(names)]
        sets = [f"{quote(conn, n)} = UNHEX(@{_var(i)})" for i, n in enumerate(names) if n in binary]
        statement = (
            f"LOAD DATA LOCAL INFILE {{file}} INTO TABLE {table_sql(conn, table)} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
            f"LINES TERMINATED BY '\\n' ({', '.join(targets)})" + (f" SET {', '.join(sets)}" if sets else "")
        )
        offsets: list[tuple[int, int]] = []  # (part index, first line of the part)
        chunks = _csv_chunks(_chain(first, batches), names, offsets)
        cursor = driver_cursor(conn)
        try:
            warnings = load_stream(cursor, statement, chunks)
            if warnings:
                text = {n for n in names if _is_text(first.table.schema.field(n).type)}
                self._check_warnings(cursor, names, offsets, text)
        finally:
            cursor.close()

    def encode(self, batch: Batch) -> Any:
        """The part's CSV, rendered on the builder's thread (see :meth:`BulkLoader.encode`):
        ``(column names, bytes)``; the load sends it when it loads those columns."""
        table = batch.table
        return (tuple(table.column_names), to_csv(table)) if table.num_rows else None

    def _check_warnings(
        self, cursor: Any, names: Sequence[str], offsets: list[tuple[int, int]], text: set[str]
    ) -> None:
        """Raise for the first warning (see the module doc); ``text``: the names of the text and
        binary columns, whose "data truncated" (1265) means a value longer than the column."""
        cursor.execute("SHOW WARNINGS")
        rows = [(str(level), int(code), str(message)) for level, code, message in cursor.fetchall()]
        for level, code, message in rows:
            if level.lower() == "note":
                continue
            if code == _DUPLICATE:
                raise ConfigError(f"a unique index of a destination table refuses the rows: {message}")
            found = _WHERE.search(message)
            if found is not None:
                column, line = found.group(1), int(found.group(2))
                located = _locate(offsets, line)
                if located is not None and column.casefold() in {n.casefold() for n in names}:
                    column = next(n for n in names if n.casefold() == column.casefold())
                    part, row = located
                    size = code in _SIZE_CODES or (code == _TRUNCATED and column in text)
                    raise ValueRefused(part, row, column, SIZE if size else TYPECAST, message)
            raise SystemFailure(f"MySQL changed loaded data: {message} (warning {code})")

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        """TRUNCATE: the first statement of the batch's transaction, so its implicit commit
        commits nothing (a DELETE of the last batch's rows costs as much as loading them)."""
        conn.exec_driver_sql(f"TRUNCATE TABLE {table_sql(conn, staging)}")


def _var(i: int) -> str:
    return f"v{i}"


def _is_binary(kind: pa.DataType) -> bool:
    return bool(pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_binary(kind))


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest


def _locate(offsets: list[tuple[int, int]], line: int) -> tuple[int, int] | None:
    for part, first in reversed(offsets):
        if line >= first:
            return part, line - first
    return None


def _csv_chunks(
    batches: Iterable[Batch], names: Sequence[str], offsets: list[tuple[int, int]]
) -> Iterator[bytes]:
    line = 1
    for k, batch in enumerate(batches):
        table = batch.table
        if not table.num_rows:
            continue
        offsets.append((k, line))
        line += table.num_rows
        encoded, batch.encoded = batch.encoded, None  # sent once; a reload renders it again
        if isinstance(encoded, tuple) and encoded[0] == tuple(names):
            yield encoded[1]  # rendered ahead, on the builder's thread
        else:
            yield to_csv(table.select(list(names)))


def to_csv(table: pa.Table) -> bytes:
    """CSV that LOAD DATA (``ESCAPED BY '\\\\'``) reads as the table's typed values."""
    columns = [_mysql_text(table.column(i).combine_chunks()) for i in range(table.num_columns)]
    buffer = io.BytesIO()
    pcsv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), buffer, _WRITE_OPTIONS)
    return buffer.getvalue()


def _mysql_text(array: pa.Array) -> pa.Array:
    """``array`` as the writer must render it: text with backslashes doubled; timestamps naive
    with microseconds (``2024-01-02 03:04:05.000006``); booleans as 0/1; binary as hex text;
    integers, decimals (already text), dates and NULLs as they are (the writer renders a date as
    ``2024-01-02`` and NULL as ``\\N``)."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # one pass; checking for a backslash first costs about as much as the replacement
        return pc.replace_substring(array, "\\", "\\\\")
    if pa.types.is_timestamp(kind):
        return array if kind == _NATIVE_TIMESTAMP else array.cast(_NATIVE_TIMESTAMP)
    if pa.types.is_boolean(kind):
        return array.cast(pa.int8())
    if _is_binary(kind):
        return pa.array([None if v is None else v.hex() for v in array.to_pylist()], pa.string())
    if pa.types.is_integer(kind) or pa.types.is_date32(kind) or pa.types.is_null(kind):
        return array
    return array.cast(pa.string())
