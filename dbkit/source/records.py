"""Rows -> record ``data`` JSON bytes.

The reader hands an encoder whole fetched batches; the encoder returns one JSON object (bytes)
per row plus the ``meta.changes`` of the rows that had a value it could not represent. Keeping
this a per-batch call lets a dialect replace per-value Python work with server-side formatting
(PostgreSQL renders JSON itself) without touching the reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from dbkit.db.types import Unrepresentable
from dbkit.protocol.messages import change, dumps_exact
from dbkit.source.model import ColumnInfo

Changes = list[dict[str, str]]


class RecordEncoder(Protocol):
    """Called once per fetched batch; must be stateless across batches (threads may share it)."""

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        """The expressions to select, in order; the reader appends key columns after them."""
        ...

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        """One ``data`` JSON object per row, and the changes of rows (by index) that have any."""
        ...


def _unexpected(value: Any) -> Any:
    raise TypeError(f"no JSON form for {type(value).__name__}")


class PythonRecordEncoder:
    """Default encoder: driver values, converted per column by the type handlers, dumped by orjson."""

    def __init__(self, table: sa.TableClause, columns: Sequence[ColumnInfo]) -> None:
        self._table = table
        self._columns = list(columns)
        self._names = [c.name for c in columns]
        self._converters = [
            (i, c.name, c.handler.convert) for i, c in enumerate(columns) if c.handler.convert is not None
        ]

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return [self._table.c[name] for name in self._names]

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        names = self._names
        converters = self._converters
        dumps = orjson.dumps
        out: list[bytes] = []
        changes: dict[int, Changes] = {}
        n = len(names)
        for index, row in enumerate(rows):
            data = dict(zip(names, row[:n], strict=True))
            try:
                for i, name, convert in converters:
                    value = row[i]
                    if value is not None:
                        data[name] = convert(value)
                out.append(dumps(data, default=_unexpected))
            except (Unrepresentable, TypeError, ValueError, OverflowError):
                data, row_changes = self._encode_slowly(row)
                changes[index] = row_changes
                out.append(dumps(data))
        return out, changes

    def _encode_slowly(self, row: Sequence[Any]) -> tuple[dict[str, Any], Changes]:
        """Value by value, so that one bad value becomes NULL + a change instead of failing the row."""
        data: dict[str, Any] = {}
        row_changes: Changes = []
        for column, value in zip(self._columns, row, strict=False):
            if value is None:
                data[column.name] = None
                continue
            try:
                converted = column.handler.convert(value) if column.handler.convert else value
                orjson.dumps(converted)
            except Unrepresentable as exc:
                data[column.name] = exc.replacement
                row_changes.append(change(column.name, exc.reason))
            except (TypeError, ValueError, OverflowError):
                data[column.name] = None
                row_changes.append(change(column.name, "SOURCE_SERIALIZATION_ERROR"))
            else:
                data[column.name] = converted
        return data, row_changes


def json_members(values: Mapping[str, Any]) -> bytes:
    """``values`` as JSON object members without the braces (``"a":1,"b":null``), to be added to
    record data with :func:`append_members`."""
    return dumps_exact(dict(values))[1:-1]


def append_members(data: bytes, members: bytes) -> bytes:
    """A ``data`` JSON object (bytes, ending in ``}``) with ``members`` added at its end."""
    if not members:
        return data
    if data == b"{}":
        return b"{" + members + b"}"
    return data[:-1] + b"," + members + b"}"


class AppendingEncoder:
    """A record encoder whose every ``data`` object ends with the same extra members (the CDC
    meta columns of a snapshot's rows: :attr:`dbkit.source.jobs.ReadContext.record_members`)."""

    def __init__(self, inner: RecordEncoder, members: bytes) -> None:
        self._inner = inner
        self._members = members

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return self._inner.select_list()

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        datas, changes = self._inner.encode(rows)
        members = self._members
        return [append_members(d, members) for d in datas], changes
