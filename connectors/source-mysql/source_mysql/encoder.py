"""Records rendered by the server: each row's ``data`` JSON object is one binary string the
server builds from the type handlers' ``render`` SQL (:mod:`source_mysql.types`), with a second
column naming the columns emitted as null for want of a JSON form (their changes). Python only
frames the bytes into RECORD lines: no per-value work on the client.

:class:`TextRecordEncoder` is the Python path over the same columns (the handlers' ``convert``
on the values' text forms): the tests hold both to the same bytes, and change data capture will
use it for values that do not come from a SELECT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dbkit.protocol import change
from dbkit.source import Changes, ColumnInfo, PythonRecordEncoder
from source_mysql.types import OTHER, MySqlReadHandler, quote_identifier, sql_string
from source_mysql.types.base import json_string

NULLED = "SOURCE_SERIALIZATION_ERROR"


def handler_of(column: ColumnInfo) -> MySqlReadHandler:
    handler = column.handler
    return handler if isinstance(handler, MySqlReadHandler) else OTHER


def data_sql(columns: Sequence[ColumnInfo]) -> str:
    """SQL of the binary string holding a row's ``data`` JSON object."""
    parts: list[str] = []
    for i, column in enumerate(columns):
        key = ("{" if i == 0 else ",") + json_string(column.name) + ":"
        value = handler_of(column).render(quote_identifier(column.name))
        parts.append(sql_string(key))
        parts.append(f"COALESCE(CAST({value} AS BINARY), 'null')")
    if not parts:
        return "CAST('{}' AS BINARY)"
    return "CONCAT(" + ", ".join(parts) + ", '}')"


def problems_sql(columns: Sequence[ColumnInfo]) -> str | None:
    """SQL of the comma-separated indexes of the columns emitted as null (None: none can be)."""
    terms = []
    for i, column in enumerate(columns):
        problem = handler_of(column).problem
        if problem is not None:
            x = quote_identifier(column.name)
            terms.append(f"IF({x} IS NOT NULL AND {problem(x)}, '{i}', NULL)")
    if not terms:
        return None
    return "CONCAT_WS(','" + "".join(", " + t for t in terms) + ")"


class ServerRecordEncoder:
    """The record encoder of every read (see the module doc)."""

    def __init__(self, columns: Sequence[ColumnInfo]) -> None:
        self._names = [c.name for c in columns]
        self._data: sa.ColumnElement[Any] = sa.literal_column(data_sql(columns))
        problems = problems_sql(columns)
        self._problems: sa.ColumnElement[Any] | None = (
            sa.literal_column(problems) if problems is not None else None
        )

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return [self._data] if self._problems is None else [self._data, self._problems]

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        datas = [bytes(row[0]) if not isinstance(row[0], str) else row[0].encode() for row in rows]
        changes: dict[int, Changes] = {}
        if self._problems is not None:
            names = self._names
            for index, row in enumerate(rows):
                flagged = row[1]
                if flagged:
                    text = flagged.decode() if isinstance(flagged, bytes | bytearray) else str(flagged)
                    changes[index] = [change(names[int(i)], NULLED) for i in text.split(",")]
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
