"""Records rendered by the server: one SQL expression per row gives its JSON (or the whole line).

``data_sql`` concatenates each column's JSON text (:attr:`PgReadHandler.render`) into the record's
``data`` object; ``changes_sql`` lists the columns whose value was nulled (their ``problem``
predicate) as the record's ``meta.changes``; ``line_sql`` wraps both in the RECORD envelope, so
that a ``COPY (SELECT line ...) TO STDOUT`` already writes protocol lines and Python only
forwards bytes. The pieces are joined by ``||`` as a balanced tree, not a chain: each ``||``
copies both sides, so a chain of n pieces copies the line about n/2 times and a tree about
log2(n) times (and a wide table's chain would nest as deep as it has columns). The Python
path (the handlers' ``convert``, for values in their text form) gives the same bytes:
``tests/test_acceptance.py`` checks it on every type case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.string import TextLoader

from dbkit.protocol import SEPARATOR, StreamDescriptor, change, record_envelope, record_suffix_with_changes
from dbkit.source import Changes, ColumnInfo
from source_postgres.types import OTHER, PgReadHandler, Sql, compose, json_string, text_literal

CHANGE_REASON = "SOURCE_SERIALIZATION_ERROR"


def handler(column: ColumnInfo) -> PgReadHandler:
    h = column.handler
    return h if isinstance(h, PgReadHandler) else OTHER


def value_sql(column: ColumnInfo) -> Sql:
    """The column's JSON text, never NULL (``null`` for NULL and for values without a JSON form)."""
    return compose("coalesce({}, 'null')", handler(column).render(sql.Identifier(column.name)))


def concatenation(parts: Sequence[Sql | str]) -> Sql:
    """``parts`` (SQL text expressions, or ``str`` for literal text) joined by ``||`` as a
    balanced tree, adjacent literals merged into one."""
    merged: list[Sql | str] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    nodes = [text_literal(p) if isinstance(p, str) else p for p in merged]
    if not nodes:
        return text_literal("")

    def tree(lo: int, hi: int) -> Sql:
        if hi - lo == 1:
            return nodes[lo]
        mid = (lo + hi) // 2
        return compose("({} || {})", tree(lo, mid), tree(mid, hi))

    return tree(0, len(nodes))


def _data_parts(columns: Sequence[ColumnInfo], members: bytes = b"") -> list[Sql | str]:
    """``members``: JSON object members (``"k":v,...``) every object ends with (CDC meta columns)."""
    extra = members.decode()
    if not columns:
        return ["{" + extra + "}"]
    parts: list[Sql | str] = []
    for i, c in enumerate(columns):
        parts.append(("{" if i == 0 else ",") + json_string(c.name) + ":")
        parts.append(value_sql(c))
    parts.append(("," + extra if extra else "") + "}")
    return parts


def data_sql(columns: Sequence[ColumnInfo]) -> Sql:
    """The record's ``data`` object as JSON text, keys in column order (as orjson writes a dict)."""
    return concatenation(_data_parts(columns))


def _problems(columns: Sequence[ColumnInfo]) -> list[tuple[ColumnInfo, Sql]]:
    out = []
    for c in columns:
        problem = handler(c).problem
        if problem is not None:
            out.append((c, problem(sql.Identifier(c.name))))
    return out


def changes_sql(columns: Sequence[ColumnInfo]) -> Sql | None:
    """The record's ``meta.changes`` array as JSON text, NULL when no value was nulled; None when
    no column can have a value without a JSON form."""
    problems = _problems(columns)
    if not problems:
        return None
    any_problem = sql.SQL(" OR ").join(p for _, p in problems)
    entries = sql.SQL(", ").join(
        compose(
            "CASE WHEN {} THEN {} END",
            p,
            text_literal(orjson.dumps(change(c.name, CHANGE_REASON)).decode()),
        )
        for c, p in problems
    )
    return compose(
        "CASE WHEN {} THEN '[' || array_to_string(ARRAY[{}], ',') || ']' END", any_problem, entries
    )


def line_sql(
    descriptor: StreamDescriptor, emitted_at: int, columns: Sequence[ColumnInfo], members: bytes = b""
) -> Sql:
    """The whole RECORD line (without its newline) as text; ``members`` end its ``data``."""
    prefix, suffix = record_envelope(descriptor, emitted_at)
    tail = suffix.rstrip(b"\n").decode()
    changes = changes_sql(columns)
    if changes is None:
        return concatenation([prefix.decode(), *_data_parts(columns, members), tail])
    meta_head = record_suffix_with_changes([]).decode()
    meta_head = meta_head[: meta_head.index("[")]  # ',"meta":{"changes":'
    ending = compose(
        "coalesce({} || {} || '}}}}}}', {})", text_literal(meta_head), changes, text_literal(tail)
    )
    return concatenation([prefix.decode(), *_data_parts(columns, members), ending])


def frame_row_sql(columns: Sequence[ColumnInfo], members: bytes = b"") -> Sql:
    """A record as a row of an Arrow frame (:func:`dbkit.protocol.arrow.batch_from_lines`): its
    ``meta`` object (empty when it has none), the separator, its ``data`` object; the same JSON
    texts :func:`line_sql` puts in the RECORD line."""
    data = _data_parts(columns, members)
    changes = changes_sql(columns)
    separator = SEPARATOR.decode()
    if changes is None:
        return concatenation([separator, *data])
    meta = compose("coalesce({} || {} || '}}', '')", text_literal('{"changes":'), changes)
    return concatenation([meta, separator, *data])


def as_text(composed: Sql) -> str:
    return composed.as_string(None)


class ServerRecordEncoder:
    """The reader's encoder for plan-driven reads (cursor incremental, views): the select list is
    the server-rendered ``data`` JSON and the ``meta.changes`` JSON (NULL when there are none)."""

    def __init__(self, columns: Sequence[ColumnInfo]) -> None:
        self._columns = list(columns)
        changes = changes_sql(self._columns)
        self._select: list[sa.ColumnElement[Any]] = [
            sa.literal_column(as_text(data_sql(self._columns))).label("_dbkit_data"),
            sa.literal_column(as_text(changes) if changes is not None else "NULL::text").label(
                "_dbkit_changes"
            ),
        ]

    def select_list(self) -> list[sa.ColumnElement[Any]]:
        return list(self._select)

    def encode(self, rows: Sequence[Sequence[Any]]) -> tuple[list[bytes], dict[int, Changes]]:
        datas = [row[0].encode() for row in rows]
        changes = {i: orjson.loads(row[1]) for i, row in enumerate(rows) if row[1] is not None}
        return datas, changes


def use_text_forms(conn: psycopg.Connection[Any]) -> None:
    """Make ``conn`` return every value in its text output form (the handlers' Python input)."""
    for info in psycopg.postgres.types:
        for oid in (info.oid, info.array_oid):
            if oid:
                conn.adapters.register_loader(oid, TextLoader)
