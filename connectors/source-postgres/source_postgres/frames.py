"""Chunks read as columns into Arrow frames (the Arrow transport, :mod:`dbkit.protocol.arrow`).

On the JSON path the server renders every RECORD line (:mod:`.encoder`). On the Arrow path a
chunk is read with ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``, one CSV column per table
column, parsed by Arrow's CSV reader in C, and each record's ``data`` object is assembled with
Arrow's string kernels. The server still renders the columns whose JSON form needs its type
knowledge (numbers, timestamps, dates, bytea, arrays, json, composites, domains: their
``render``), but a column whose JSON form follows from its text output form alone travels as
that text, and the JSON token is made here:

- integers (``render_text``): the text is the token;
- booleans and jsonb (``render_text``): ``x::text`` is the token;
- text, varchar, char, name, citext, inet (``render_to_json``): the JSON string of the output
  text, escaped as PostgreSQL's ``to_json`` escapes (``"`` and ``\\`` and control characters;
  orjson writes the same, see :func:`source_postgres.types.json_string`), in C for the values
  that need no escape and by orjson for the others;
- uuid, cidr, macaddr, interval, bit strings (``render_quoted``): the text in quotes.

The ``data`` objects are byte for byte the ones :func:`.encoder.line_sql` renders (the Arrow
path's tests compare both on every type case), and ``meta`` is the same ``changes`` JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from dbkit.protocol import StreamDescriptor, now_ms
from dbkit.protocol.arrow import SCHEMA, encode_frame
from dbkit.source import ColumnInfo
from source_postgres.encoder import changes_sql, handler
from source_postgres.types import Sql, compose, json_string
from source_postgres.types.base import render_quoted, render_text, render_to_json

_TOKEN, _JSON_STRING, _QUOTED = "token", "json", "quoted"
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_QUOTE = pa.scalar(b'"', pa.binary())
_EMPTY = pa.scalar(b"", pa.binary())
_NULL = pa.scalar(b"null", pa.binary())


def _kind(column: ColumnInfo) -> tuple[str, Sql]:
    """How a column travels: (kind, select expression)."""
    h = handler(column)
    name = sql.Identifier(column.name)
    if h.problem is None:
        if h.render is render_to_json:
            return _JSON_STRING, name  # the output text, as to_json quotes it
        if h.render is render_text:
            return _TOKEN, compose("{}::text", name)
        if h.render is render_quoted:
            return _QUOTED, compose("{}::text", name)
    return _TOKEN, h.render(name)


class FrameReader:
    """The select list of a chunk on the Arrow path, and its CSV output -> one frame."""

    def __init__(
        self, descriptor: StreamDescriptor, columns: Sequence[ColumnInfo], members: bytes = b""
    ) -> None:
        self.descriptor = descriptor
        kinds = [_kind(c) for c in columns]
        self.kinds = [k for k, _ in kinds]
        changes = changes_sql(columns)
        self.select: Sql = sql.SQL(", ").join(
            [expr for _, expr in kinds] + [changes if changes is not None else sql.SQL("NULL::text")]
        )
        self.names = [f"c{i}" for i in range(len(columns))] + ["meta"]
        extra = members.decode()
        pieces: list[bytes] = []
        for i, c in enumerate(columns):
            pieces.append((("{" if i == 0 else ",") + json_string(c.name) + ":").encode())
        self.pieces = pieces
        self.end = (
            (("," + extra if extra else "") + "}").encode() if columns else ("{" + extra + "}").encode()
        )

    def frame(self, data: bytes) -> tuple[bytes, int]:
        """The frame of a chunk's CSV output, and its number of records."""
        table = self.parse(data)
        rows = table.num_rows
        if rows == 0:
            return b"", 0
        batch = pa.RecordBatch.from_arrays([self.data(table), self.meta(table)], schema=SCHEMA)
        return encode_frame(self.descriptor.name, self.descriptor.namespace, now_ms(), batch), rows

    def parse(self, data: bytes) -> pa.Table:
        if not data:
            return pa.table({n: pa.array([], pa.binary()) for n in self.names})
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=self.names, use_threads=False, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, double_quote=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(self.names, pa.binary()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        ).combine_chunks()

    def data(self, table: pa.Table) -> pa.Array:
        parts: list[Any] = []
        for i, kind in enumerate(self.kinds):
            parts.append(pa.scalar(self.pieces[i], pa.binary()))
            parts.append(self._token(kind, table.column(i).combine_chunks()))
        if not parts:
            return pa.repeat(pa.scalar(self.end, pa.binary()), table.num_rows)
        parts.append(pa.scalar(self.end, pa.binary()))
        return pc.binary_join_element_wise(*parts, _EMPTY)

    def meta(self, table: pa.Table) -> pa.Array:
        changes = table.column(len(self.kinds)).combine_chunks()
        if changes.null_count == len(changes):
            return pa.nulls(len(changes), pa.binary())
        head = pa.scalar(b'{"changes":', pa.binary())
        return pc.binary_join_element_wise(head, changes, pa.scalar(b"}", pa.binary()), _EMPTY)

    @staticmethod
    def _token(kind: str, values: pa.Array) -> pa.Array:
        if kind == _TOKEN:
            return pc.fill_null(values, _NULL)
        quoted = pc.binary_join_element_wise(_QUOTE, values, _QUOTE, _EMPTY)
        if kind == _JSON_STRING:
            escape = pc.fill_null(pc.match_substring_regex(values, _NEEDS_ESCAPE), False)
            rows = pc.indices_nonzero(escape).to_pylist()
            if rows:
                texts = values.take(pa.array(rows, pa.int64())).to_pylist()
                escaped = pa.array([orjson.dumps(t.decode("utf-8")) for t in texts], pa.binary())
                quoted = pc.replace_with_mask(quoted, escape, escaped)
        return pc.fill_null(quoted, _NULL)
