"""Records rendered by the server: each row's ``data`` JSON object is one binary string the
server builds from the type handlers' ``render`` SQL (:mod:`source_mysql.types`). A value emitted
as null for want of a JSON form (a zero date) is rendered ``null`` followed by a *marker*,
``\x01<column index>\x01``, which no rendered value can contain (strings escape their control
characters, JSON documents cannot hold them raw): Python finds the markers with one byte search
per row (or per block of rows), removes them and records the columns' changes. Otherwise Python
only frames the bytes into RECORD lines: no per-value work on the client.

:class:`TextRecordEncoder` is the Python path over the same columns (the handlers' ``convert``
on the values' text forms): the tests hold both to the same bytes, and change data capture will
use it for values that do not come from a SELECT.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dbkit.protocol import change
from dbkit.source import Changes, ColumnInfo, PythonRecordEncoder
from source_mysql.types import OTHER, MySqlReadHandler, quote_identifier, sql_string
from source_mysql.types.base import json_string

NULLED = "SOURCE_SERIALIZATION_ERROR"
MARK = b"\x01"
_MARKED = re.compile(rb"null\x01(\d+)\x01")


def handler_of(column: ColumnInfo) -> MySqlReadHandler:
    handler = column.handler
    return handler if isinstance(handler, MySqlReadHandler) else OTHER


def data_sql(columns: Sequence[ColumnInfo]) -> str:
    """SQL of the binary string holding a row's ``data`` JSON object (a value without a JSON
    form: ``null`` and its marker, see the module doc)."""
    parts: list[str] = []
    for i, column in enumerate(columns):
        key = ("{" if i == 0 else ",") + json_string(column.name) + ":"
        handler = handler_of(column)
        x = quote_identifier(column.name)
        value = handler.render(x)
        parts.append(sql_string(key))
        if handler.problem is None:
            parts.append(f"COALESCE(CAST({value} AS BINARY), 'null')")
        else:
            marked = f"CONCAT('null', CHAR(1), '{i}', CHAR(1))"
            parts.append(f"COALESCE(CAST({value} AS BINARY), IF({x} IS NULL, 'null', {marked}))")
    if not parts:
        return "CAST('{}' AS BINARY)"
    return "CONCAT(" + ", ".join(parts) + ", '}')"


def unmark(data: bytes, names: Sequence[str]) -> tuple[bytes, Changes]:
    """A rendered ``data`` object without its markers, and the changes they stand for."""
    changes = [change(names[int(m.group(1))], NULLED) for m in _MARKED.finditer(data)]
    return _MARKED.sub(b"null", data), changes


class ServerRecordEncoder:
    """The record encoder of the generic reads (see the module doc)."""

    def __init__(self, columns: Sequence[ColumnInfo]) -> None:
        self._names = [c.name for c in columns]
        self._data: sa.ColumnElement[Any] = sa.literal_column(data_sql(columns))
        self._marks = any(handler_of(c).problem is not None for c in columns)

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return [self._data]

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        datas = [bytes(row[0]) if not isinstance(row[0], str) else row[0].encode() for row in rows]
        changes: dict[int, Changes] = {}
        if self._marks:
            for index, data in enumerate(datas):
                if MARK in data:
                    datas[index], changes[index] = unmark(data, self._names)
        return datas, changes


class TextRecordEncoder(PythonRecordEncoder):
    """The Python path: each column's ``select`` expression as text, through ``convert``."""

    def __init__(self, table: sa.TableClause, columns: Sequence[ColumnInfo]) -> None:
        super().__init__(table, columns)
        self._selects: list[sa.ColumnElement[Any]] = [
            sa.literal_column(handler_of(c).select(quote_identifier(c.name))).label(f"c{i}")
            for i, c in enumerate(columns)
        ]

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return list(self._selects)
