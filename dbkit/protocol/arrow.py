"""The Arrow transport between two dbkit connectors: RECORD messages in Arrow record batches.

Only ``dbkit sync`` turns it on, and only when both connectors declare they can
(``arrow_transport = True`` on the connector object): it starts them with
``--transport arrow``. Any other client (the Airbyte platform, PyAirbyte) sees the plain
protocol, and so does a connector started without the flag: a frame is never written to it.

A **frame** stands for a run of RECORD messages of one stream, in order, where JSON lines would
have them; STATE, TRACE and LOG messages stay JSON lines between frames, so the order of records
and states, and everything built on it (checkpoints, echoes, resume), is unchanged. A frame is
one header line and a body::

    #ARROW {"stream":"t","namespace":"public","records":50000,"emitted_at":1733500000000,"bytes":N}\\n
    <N bytes: an Arrow IPC stream of one record batch>

The batch has one row per record and the columns ``data`` (binary: the record's ``data``
object, the JSON text the line would hold) and ``meta`` (binary, NULL when the record has no
``meta``: the record's ``meta`` object as JSON text). Every record of a frame has the frame's
``emitted_at``. A line cannot start with ``#`` in the JSON protocol, so frames and lines never
mix up.

**Frame kinds.** The header's ``kind`` says what the batch holds; a header without one is a
``"records"`` frame (above), so frames written before kinds existed are still read.

- ``"records"``: the columns ``data`` and ``meta`` described above.
- ``"columns"`` (typed frames): one column per field of the record's ``data``, named by the field,
  then ``meta`` (binary, as above). A field absent from the batch is absent from every record
  (read as null); a NULL is a JSON ``null``. Each column has the canonical Arrow type of its
  field's Airbyte type (:data:`COLUMN_TYPES`), which carries exactly what the JSON value carried:

  =========================================  ==============================================
  Airbyte type                               column
  =========================================  ==============================================
  integer                                    int64
  boolean                                    bool
  string, date, time(s), timestamp(s), binary  utf8: the JSON string's value (unquoted,
                                             unescaped: what the JSON path's string decodes
                                             to; dates as the JSON path renders them, e.g.
                                             ``+10000-01-01``, ``0044-03-15 BC``; binary as
                                             base64)
  number, object, array, unknown             utf8: the exact JSON token (``1.50``, ``{"a": 1}``)
  =========================================  ==============================================

  A reader checks the columns against the stream of its catalog (:func:`check_columns`): a column
  that is not a field of the stream, or whose type is not its field's, is an error, not data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pyarrow as pa

FRAME_PREFIX = b"#ARROW "
"""The first bytes of a frame's header line."""
TRANSPORTS = ("json", "arrow")
RECORDS = "records"
COLUMNS = "columns"
KINDS = (RECORDS, COLUMNS)
"""The frame kinds (the header's ``kind``; absent: ``records``)."""
META = "meta"

COLUMN_TYPES: dict[str, str] = {
    "integer": "int64",
    "boolean": "bool",
    "string": "string",
    "date": "string",
    "time_without_timezone": "string",
    "time_with_timezone": "string",
    "timestamp_without_timezone": "string",
    "timestamp_with_timezone": "string",
    "binary": "string",
    "number": "string",
    "object": "string",
    "array": "string",
    "unknown": "string",
}
"""The Arrow type (by ``str(pa type)``) of a typed frame's column, by the field's Airbyte type."""
TOKEN_TYPES = frozenset({"number", "object", "array", "unknown"})
"""The Airbyte types whose typed-frame column holds the exact JSON token (the others: the value)."""
SEPARATOR = b"\x1f"
"""Between a record's ``meta`` and ``data`` in a block of :func:`batch_from_lines` (a control
character: JSON text never holds it unescaped)."""


@cache
def frame_schema() -> pa.Schema:
    """The columns of a frame's batch (pyarrow is imported only by a command that uses frames)."""
    import pyarrow as pa

    return pa.schema([pa.field("data", pa.binary(), nullable=False), pa.field("meta", pa.binary())])


TRANSPORT: ContextVar[str] = ContextVar("dbkit_transport", default="json")
"""The transport of the running connector command (set by the entrypoint from ``--transport``)."""


def frame_kind() -> str:
    """The frame kind a source writes when it can write both: ``columns`` unless the environment
    variable ``DBKIT_FRAME_KIND`` says ``records`` (to compare the two, in tests and benchmarks)."""
    return RECORDS if os.environ.get("DBKIT_FRAME_KIND") == RECORDS else COLUMNS


def arrow_transport() -> bool:
    """True when the running command may write (source) or must read (destination) frames."""
    return TRANSPORT.get() == "arrow"


class FrameError(ValueError):
    """A frame header or body that cannot be read."""


@dataclass(frozen=True)
class FrameHeader:
    stream: str
    namespace: str | None
    records: int
    emitted_at: int
    bytes: int
    kind: str = RECORDS


def encode_frame(
    stream: str, namespace: str | None, emitted_at: int, batch: pa.RecordBatch, kind: str = RECORDS
) -> bytes:
    """The frame (header line and body) of ``batch`` (columns as :func:`frame_schema`, or for a
    ``columns`` frame as :func:`check_schema` requires)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as ipc:
        ipc.write_batch(batch)
    body = sink.getvalue()
    header: dict[str, Any] = {"stream": stream}
    if namespace is not None:
        header["namespace"] = namespace
    if kind != RECORDS:
        header["kind"] = kind
    header.update(records=batch.num_rows, emitted_at=emitted_at, bytes=body.size)
    return b"".join((FRAME_PREFIX, orjson.dumps(header), b"\n", body.to_pybytes()))


def parse_header(line: bytes | memoryview) -> FrameHeader:
    """The header of a frame from its header line (with or without the newline)."""
    raw = bytes(line[len(FRAME_PREFIX) :]).rstrip(b"\n")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"a frame header that is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FrameError("a frame header must be a JSON object")
    stream, namespace = doc.get("stream"), doc.get("namespace")
    records, emitted_at, size = doc.get("records"), doc.get("emitted_at"), doc.get("bytes")
    if not isinstance(stream, str) or not (namespace is None or isinstance(namespace, str)):
        raise FrameError("a frame header without a stream name (and namespace) as strings")
    numbers: list[int] = []
    for name, value in (("records", records), ("emitted_at", emitted_at), ("bytes", size)):
        if type(value) is not int or value < 0:
            raise FrameError(f"a frame header whose {name} is not a non-negative integer")
        numbers.append(value)
    kind = doc.get("kind", RECORDS)
    if kind not in KINDS:
        raise FrameError(f"a frame of kind {str(kind)[:40]!r}; this reader knows {', '.join(KINDS)}")
    return FrameHeader(stream, namespace, numbers[0], numbers[1], numbers[2], kind)


def decode_body(header: FrameHeader, body: bytes | memoryview) -> pa.RecordBatch:
    """The record batch of a frame's body, checked against its header."""
    import pyarrow as pa

    if len(body) != header.bytes:
        raise FrameError(f"a frame of {header.bytes} bytes ended after {len(body)}")
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        batches = list(reader)
    except pa.ArrowException as exc:
        raise FrameError(f"a frame body that is not an Arrow IPC stream ({exc})") from None
    schema = reader.schema
    if header.kind == RECORDS and not schema.equals(frame_schema()):
        raise FrameError(f"a frame with columns {schema.names}, not data and meta")
    if header.kind == COLUMNS:
        check_schema(schema)
    if len(batches) != 1:
        batch = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()
        batches = batch or [pa.RecordBatch.from_pylist([], schema)]
    if batches[0].num_rows != header.records:
        raise FrameError(f"a frame of {header.records} records holds {batches[0].num_rows}")
    if header.kind == COLUMNS:
        try:
            batches[0].validate(full=True)  # e.g. text that is not UTF-8
        except pa.ArrowException as exc:
            raise FrameError(f"a typed frame whose columns are not valid ({exc})") from None
    return batches[0]


def check_schema(schema: pa.Schema) -> None:
    """A ``columns`` frame's schema: field columns of the canonical types, then ``meta``."""
    import pyarrow as pa

    names = schema.names
    if not names or names[-1] != META or schema.field(len(names) - 1).type != pa.binary():
        raise FrameError(f"a typed frame whose last column is not meta (binary): {names}")
    if len(set(names[:-1])) != len(names) - 1:  # a field may be named meta: the last column is
        raise FrameError(f"a typed frame with a column named twice: {names}")
    allowed = set(COLUMN_TYPES.values())
    for f in schema:
        if f.name != META and str(f.type) not in allowed:
            raise FrameError(f"a typed frame whose column {f.name!r} has type {f.type}")


def check_columns(schema: pa.Schema, fields: Sequence[tuple[str, str]], stream: str) -> list[int | None]:
    """Where each of ``fields`` ((name, Airbyte type) of the stream's in the catalog) is in a
    typed frame's batch (None: absent, every value null); a column that is not one of ``fields``,
    or whose type is not its field's canonical type, raises :class:`FrameError`. (An int64 or
    bool column is taken for a field whose column holds JSON tokens, a number or JSON field: its
    values' text is their token; a destination may type a source's integers as numbers.)"""
    types = dict(fields)
    positions: dict[str, int] = {}
    for i, f in enumerate(schema):
        if i == len(schema) - 1:
            break  # meta
        wanted = types.get(f.name)
        if wanted is None:
            raise FrameError(f"a typed frame of {stream} with a column {f.name!r} the stream does not have")
        if str(f.type) != COLUMN_TYPES[wanted] and not (
            wanted in TOKEN_TYPES and str(f.type) in ("int64", "bool")
        ):
            raise FrameError(
                f"a typed frame of {stream} whose column {f.name!r} has type {f.type}, "
                f"not {COLUMN_TYPES[wanted]} (the type of a {wanted} field)"
            )
        positions[f.name] = i
    return [positions.get(name) for name, _ in fields]


def batch_from_lines(blocks: Sequence[bytes | memoryview]) -> pa.RecordBatch:
    """A record batch (:func:`frame_schema`) from blocks of newline-terminated lines ``meta<US>data``
    (``meta`` empty when the record has none), parsed in C."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    schema = frame_schema()
    data = b"".join(blocks)
    if not data:
        return pa.RecordBatch.from_pylist([], schema)
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(
            column_names=["meta", "data"],
            use_threads=False,
            block_size=max(1 << 20, len(data) + 1),  # a row never straddles two blocks
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=SEPARATOR.decode(), quote_char=False, escape_char=False, ignore_empty_lines=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"meta": pa.binary(), "data": pa.binary()},
            null_values=[""],
            strings_can_be_null=True,
            check_utf8=False,
        ),
    )
    table = table.select(["data", "meta"]).cast(schema).combine_chunks()
    return table.to_batches()[0]
