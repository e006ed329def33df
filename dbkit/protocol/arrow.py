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
"""

from __future__ import annotations

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


def encode_frame(stream: str, namespace: str | None, emitted_at: int, batch: pa.RecordBatch) -> bytes:
    """The frame (header line and body) of ``batch`` (columns as :func:`frame_schema`)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as ipc:
        ipc.write_batch(batch)
    body = sink.getvalue()
    header: dict[str, Any] = {"stream": stream}
    if namespace is not None:
        header["namespace"] = namespace
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
    return FrameHeader(stream, namespace, *numbers)


def decode_body(header: FrameHeader, body: bytes | memoryview) -> pa.RecordBatch:
    """The record batch of a frame's body, checked against its header."""
    import pyarrow as pa

    schema = frame_schema()
    if len(body) != header.bytes:
        raise FrameError(f"a frame of {header.bytes} bytes ended after {len(body)}")
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        batches = list(reader)
    except pa.ArrowException as exc:
        raise FrameError(f"a frame body that is not an Arrow IPC stream ({exc})") from None
    if not reader.schema.equals(schema):
        raise FrameError(f"a frame with columns {reader.schema.names}, not data and meta")
    if len(batches) != 1:
        batch = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()
        batches = batch or [pa.RecordBatch.from_pylist([], schema)]
    if batches[0].num_rows != header.records:
        raise FrameError(f"a frame of {header.records} records holds {batches[0].num_rows}")
    return batches[0]


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
        read_options=pacsv.ReadOptions(column_names=["meta", "data"], use_threads=False, block_size=1 << 20),
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
