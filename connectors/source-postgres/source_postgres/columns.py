"""Typed frames (``columns`` kind, :mod:`dbkit.protocol.arrow`) of a chunked read, built without
rendering JSON per row.

Each column of the stream is selected as text (its handler's ``column`` form: a string's value
unquoted, an integer's or a boolean's text, the exact JSON token of a number or JSON value; the
same per-type rules as the JSON path's ``render``: NaN, infinities, BC dates, money, bytea, arrays),
and the record's ``meta`` as the JSON path gives it. A row travels as the text of a record of
those texts (``ROW(NULL, ..., NULL)::text``: quoted where needed, in C), in place of the RECORD
line the JSON path's chunk query gives, so the chunks are read as they are for lines (the server
joins a chunk's lines into one value, :mod:`.parallel`), and Arrow parses them as CSV
(:func:`parse_rows`). A read whose columns cannot all be given this way (a CDC snapshot, which
adds members to every record) keeps the ``records`` frames.

Measured (bench/README.md, issue 14), per 100,000 rows of the bench table: ``COPY ... (FORMAT
csv)`` of the columns costs the server 10-20% less than this, but psycopg delivers it as one
message per row (about 1.9 s of client CPU per million rows); having the server aggregate each
column (``string_agg`` of the values, ``array_agg`` of their lengths) cost it about 0.5 s more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dbkit.protocol import COLUMN_TYPES, TOKEN_TYPES
from dbkit.source import ColumnInfo
from source_postgres.encoder import changes_sql, handler
from source_postgres.types import Sql, compose

if TYPE_CHECKING:  # pyarrow is imported only by a read that writes frames
    import pyarrow as pa


@dataclass(frozen=True)
class FrameColumns:
    """The typed-frame columns of a read: their names, their Arrow types and their SQL."""

    names: list[str]
    types: list[str]  # Arrow type names (dbkit.protocol.COLUMN_TYPES)
    select: Sql  # a row's line: the text of the record (NULL, columns' texts, meta's text, NULL)

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field(n, _arrow_type(t)) for n, t in zip(self.names, self.types, strict=True)]
        return pa.schema([*fields, pa.field("meta", pa.binary())])


def column_text(column: ColumnInfo) -> Sql:
    """The column's value as a typed frame's column holds it, as text (NULL for JSON null)."""
    h = handler(column)
    x = sql.Identifier(column.name)
    return h.column(x) if h.column is not None else h.render(x)


def frame_columns(columns: Sequence[ColumnInfo], members: bytes = b"") -> FrameColumns | None:
    """The typed-frame columns of ``columns``, None when a read must keep ``records`` frames."""
    if members:
        return None  # a CDC snapshot's records carry members no column holds
    texts: list[Sql] = []
    for c in columns:
        h = handler(c)
        if h.column is None and h.airbyte_type.value not in TOKEN_TYPES:
            return None
        texts.append(column_text(c))
    meta = changes_sql(columns)
    meta_text = (
        compose("{} || {} || '}}'", sql.Literal('{"changes":'), meta)
        if meta is not None
        else sql.SQL("NULL::text")
    )
    select = compose("ROW(NULL, {}, {}, NULL)::text", sql.SQL(", ").join(texts), meta_text)
    types = [COLUMN_TYPES[handler(c).airbyte_type.value] for c in columns]
    return FrameColumns([c.name for c in columns], types, select)


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {"int64": pa.int64(), "bool": pa.bool_(), "string": pa.string()}[name]


def parse_rows(blocks: Sequence[Any], spec: FrameColumns) -> pa.RecordBatch:
    """The batch of a chunk's lines, each a row's :attr:`FrameColumns.select` (``record_out``'s
    text of ``(NULL, <columns>, meta, NULL)``: a value with a quote, backslash, parenthesis, comma
    or white space is quoted, with its quotes and backslashes doubled; NULL is nothing, the empty
    string ``""``), parsed as CSV by Arrow in C."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    width = len(spec.names) + 1
    names = [f"c{i}" for i in range(width + 2)]
    kept = names[1:-1]  # the first and last fields are the parentheses
    table = pacsv.read_csv(
        pa.py_buffer(b"".join(blocks)),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 26),
        parse_options=pacsv.ParseOptions(escape_char="\\", double_quote=True, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=kept,
            column_types=dict(zip(kept, [*map(_arrow_type, spec.types), pa.binary()], strict=True)),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
        ),
    )
    batches = table.combine_chunks().to_batches()
    if not batches:
        return spec.schema().empty_table().to_batches()[0]
    return pa.RecordBatch.from_arrays(batches[0].columns, schema=spec.schema())
