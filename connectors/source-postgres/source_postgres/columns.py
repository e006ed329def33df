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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dbkit.db import Unrepresentable
from dbkit.protocol import COLUMN_TYPES, TOKEN_TYPES
from dbkit.source import ColumnInfo
from source_postgres.encoder import changes_sql, handler
from source_postgres.types import TIMESTAMP, TIMESTAMPTZ, Sql, compose

if TYPE_CHECKING:  # pyarrow is imported only by a read that writes frames
    import pyarrow as pa


@dataclass(frozen=True)
class FrameColumns:
    """The typed-frame columns of a read: their names, their Arrow types and their SQL."""

    names: list[str]
    types: list[str]  # Arrow type names (dbkit.protocol.COLUMN_TYPES)
    finish: list[Callable[[pa.Array], pa.Array] | None]  # the rendering done here (see _CLIENT)
    select: Sql  # a row's line: the text of the record (NULL, columns' texts, meta's text, NULL)

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field(n, _arrow_type(t)) for n, t in zip(self.names, self.types, strict=True)]
        return pa.schema([*fields, pa.field("meta", pa.binary())])


def column_text(column: ColumnInfo) -> Sql:
    """The column's value as a typed frame's column holds it, as text (NULL for JSON null); for
    the types :data:`_CLIENT` renders, their text output form."""
    h = handler(column)
    x = sql.Identifier(column.name)
    if h.convert in _CLIENT:
        return compose("{}::text", x)
    return h.column(x) if h.column is not None else h.render(x)


def _timestamps(pattern: str, zone: str, convert: Callable[[Any], Any]) -> Callable[[pa.Array], pa.Array]:
    """The JSON path's text of timestamps from their text output form (ISO, UTC), with Arrow: the
    usual ones (years 1-9999, ``+00`` when zoned) by slicing and padding (``2024-01-02
    03:04:05.5+00`` -> ``2024-01-02T03:04:05.500000+00:00``), the others (BC, far years,
    infinities) by the handler's Python path (``convert``, the same text as the server's)."""

    def finish(text: pa.Array) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        usual = pc.match_substring_regex(text, pattern)
        out = text if not zone else pc.utf8_slice_codeunits(text, 0, -len(zone))
        out = pc.utf8_replace_slice(out, 10, 11, "T")
        out = pc.if_else(pc.equal(pc.utf8_length(out), 19), pc.binary_join_element_wise(out, ".", ""), out)
        out = pc.utf8_rpad(out, 26, "0")
        if zone:
            out = pc.binary_join_element_wise(out, "+00:00", "")
        odd = pc.and_(pc.invert(usual), pc.is_valid(text))
        if not pc.any(odd).as_py():
            return out
        values = []
        for value in text.filter(odd).to_pylist():
            try:
                values.append(convert(value))
            except Unrepresentable:
                values.append(None)
        return pc.replace_with_mask(out, odd, pa.array(values, pa.string()))

    return finish


def _python_path(h: Any) -> Callable[[Any], Any]:
    assert h.convert is not None
    return h.convert  # type: ignore[no-any-return]


_CLIENT: dict[Any, Callable[[pa.Array], pa.Array]] = {
    TIMESTAMP.convert: _timestamps(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$", "", _python_path(TIMESTAMP)
    ),
    TIMESTAMPTZ.convert: _timestamps(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+00$", "+00", _python_path(TIMESTAMPTZ)
    ),
}
"""Types whose text for a typed frame is made here from their output form (the server's
``to_char`` costs it about 0.9 s per million values; see bench/README.md, issue 14)."""


def frame_columns(columns: Sequence[ColumnInfo], members: bytes = b"") -> FrameColumns | None:
    """The typed-frame columns of ``columns``, None when a read must keep ``records`` frames."""
    if members or not columns:
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
    finish = [_CLIENT.get(handler(c).convert) for c in columns]
    return FrameColumns([c.name for c in columns], types, finish, select)


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
    data = b"".join(blocks)
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(  # one block: a row never straddles two
            column_names=names, use_threads=False, block_size=max(1 << 26, len(data) + 1)
        ),
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
    arrays = list(batches[0].columns)
    for k, finish in enumerate(spec.finish):
        if finish is not None:
            arrays[k] = finish(arrays[k])
    return pa.RecordBatch.from_arrays(arrays, schema=spec.schema())
