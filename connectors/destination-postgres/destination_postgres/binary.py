"""Typed Arrow batches as rows of PostgreSQL's binary ``COPY`` format, built in C
(``_pgbinary.c``, compiled when the package is installed; without it every load is CSV).

Binary input costs the server much less than CSV: no text to split, unquote and parse per value
(measured: bench/README.md, issue 14). A column goes in binary only for a pair of Arrow type and
target column type listed in :data:`KINDS`, where the binary value is exactly what PostgreSQL's
text input makes of the CSV this loader would send otherwise (the server checks the rest: a
``varchar(n)``'s length, a ``numeric(p, s)``'s scale, UTF-8, JSON, the ranges of dates and times).
Numbers travel as their JSON tokens in Arrow and are encoded with the scale ``numeric_in`` gives
them (``1.50`` keeps two digits). A table with any other column type, or a part holding a value the
encoder does not take (a number token of more than 1,000 digits or an exponent past 1,000, a date
at the sentinel values PostgreSQL reads as infinity), is sent as CSV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

try:
    import destination_postgres._pgbinary as _pgbinary
except ImportError:  # built without a C compiler
    _pgbinary = None  # type: ignore[assignment]

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
TRAILER = b"\xff\xff"


def available() -> bool:
    """True when the C encoder was built."""
    return _pgbinary is not None


def wanted() -> bool:
    """True when loads may use binary COPY: the encoder was built, and the environment variable
    ``DBKIT_COPY_FORMAT`` does not say ``csv`` (to compare the two, in tests and benchmarks)."""
    return available() and os.environ.get("DBKIT_COPY_FORMAT") != "csv"


def _kinds() -> dict[tuple[str, str], int]:
    m: Any = _pgbinary
    if m is None:
        return {}
    return {
        ("int64", "int8"): m.INT8,
        ("bool", "bool"): m.BOOL,
        ("string", "numeric"): m.NUMERIC,
        ("string", "text"): m.TEXT,
        ("string", "varchar"): m.TEXT,
        ("string", "json"): m.TEXT,
        ("string", "jsonb"): m.JSONB,
        ("binary", "bytea"): m.TEXT,
        ("timestamp[us, tz=UTC]", "timestamptz"): m.TIMESTAMP,
        ("timestamp[us]", "timestamp"): m.TIMESTAMP,
        ("date32[day]", "date"): m.DATE,
        ("time64[us]", "time"): m.TIME,
        ("string", "timetz"): m.TIMETZ,
        ("double", "float8"): m.FLOAT8,
    }


KINDS = _kinds()
"""The binary encoding of each (Arrow type, target column's type name) pair it is used for."""


def plan(schema: pa.Schema, names: Sequence[str], target_types: dict[str, str]) -> list[int] | None:
    """The encoding of each of ``names`` (columns of ``schema``) into the target's columns of the
    types ``target_types`` (column name -> ``pg_type.typname``); None when one has none."""
    kinds: list[int] = []
    for name in names:
        kind = KINDS.get((str(schema.field(name).type), target_types.get(name, "")))
        if kind is None:
            return None
        kinds.append(kind)
    return kinds


class Unsupported(ValueError):
    """A value the binary encoder does not take: the part goes as CSV."""


def encode(table: pa.Table, kinds: Sequence[int]) -> bytes:
    """The rows of ``table`` (its columns in order, encoded as ``kinds``) in binary COPY format,
    without the header and trailer; :class:`Unsupported` for a value it does not take."""
    assert _pgbinary is not None
    specs: list[tuple[int, Any, Any, Any, int]] = []
    for i, kind in enumerate(kinds):
        array = table.column(i).combine_chunks()
        buffers = array.buffers()
        if len(buffers) == 3:
            validity, offsets, data = buffers
        else:
            (validity, data), offsets = buffers, None
        if array.null_count == 0:
            validity = None
        specs.append((kind, validity, offsets, data, array.offset))
    try:
        return _pgbinary.encode_rows(table.num_rows, specs)
    except _pgbinary.Unsupported as exc:
        column, row = exc.args
        raise Unsupported(f"column {table.column_names[column]!r}, row {row}") from None
