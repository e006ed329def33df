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
- ``"native"`` (typed frames, second version): a ``columns`` frame in which the column of a date,
  time or binary field may instead have the **native** Arrow type of its value
  (:data:`NATIVE_TYPES`): date -> date32, timestamp_with_timezone -> timestamp[us, tz=UTC],
  timestamp_without_timezone -> timestamp[us], time_without_timezone -> time64[us], binary ->
  binary (the bytes, not base64). A native value is exactly the one the canonical string
  denotes (BC and far years too, as far as Arrow holds them: a timestamp after 294246 or a time
  ``24:00:00`` travels as the string); :func:`canonical_strings` gives the string back, so the
  RECORD lines the frame stands for are those of the JSON path. Each column is one or the other
  for the whole frame. A reader that knows only ``records`` and ``columns`` refuses the kind
  (it never reads a native column as text).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from dbkit.protocol.civil import civil_from_days, format_time_micros

if TYPE_CHECKING:
    import pyarrow as pa

FRAME_PREFIX = b"#ARROW "
"""The first bytes of a frame's header line."""
TRANSPORTS = ("json", "arrow")
RECORDS = "records"
COLUMNS = "columns"
NATIVE = "native"
KINDS = (RECORDS, COLUMNS, NATIVE)
"""The frame kinds (the header's ``kind``; absent: ``records``)."""
TYPED_KINDS = (COLUMNS, NATIVE)
"""The kinds whose batch is one column per field (typed frames)."""
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
NATIVE_TYPES: dict[str, str] = {
    "date": "date32[day]",
    "timestamp_with_timezone": "timestamp[us, tz=UTC]",
    "timestamp_without_timezone": "timestamp[us]",
    "time_without_timezone": "time64[us]",
    "binary": "binary",
}
"""The native Arrow type (by ``str(pa type)``) a ``native`` frame's column may have instead, by
the field's Airbyte type."""
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
    """The frame kind a source writes when it can write several: ``native`` unless the environment
    variable ``DBKIT_FRAME_KIND`` says ``columns`` or ``records`` (to compare them, in tests and
    benchmarks); a source that cannot write ``native`` frames writes ``columns`` for it."""
    kind = os.environ.get("DBKIT_FRAME_KIND")
    return kind if kind in (RECORDS, COLUMNS) else NATIVE


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
    return b"".join((FRAME_PREFIX, orjson.dumps(header), b"\n", body))  # body: Arrow's buffer, copied once


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
    if header.kind in TYPED_KINDS:
        check_schema(schema, native=header.kind == NATIVE)
    if len(batches) != 1:
        batch = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()
        batches = batch or [pa.RecordBatch.from_pylist([], schema)]
    if batches[0].num_rows != header.records:
        raise FrameError(f"a frame of {header.records} records holds {batches[0].num_rows}")
    if header.kind in TYPED_KINDS:
        try:
            batches[0].validate(full=True)  # e.g. text that is not UTF-8
        except pa.ArrowException as exc:
            raise FrameError(f"a typed frame whose columns are not valid ({exc})") from None
    return batches[0]


def check_schema(schema: pa.Schema, native: bool = False) -> None:
    """A ``columns`` frame's schema: field columns of the canonical types, then ``meta``; a
    ``native`` frame's (``native``) may have columns of the native types too."""
    import pyarrow as pa

    names = schema.names
    if not names or names[-1] != META or schema.field(len(names) - 1).type != pa.binary():
        raise FrameError(f"a typed frame whose last column is not meta (binary): {names}")
    if len(set(names[:-1])) != len(names) - 1:  # a field may be named meta: the last column is
        raise FrameError(f"a typed frame with a column named twice: {names}")
    allowed = set(COLUMN_TYPES.values()) | (set(NATIVE_TYPES.values()) if native else set())
    for f in schema:
        if f.name != META and str(f.type) not in allowed:
            raise FrameError(f"a typed frame whose column {f.name!r} has type {f.type}")


def check_columns(
    schema: pa.Schema, fields: Sequence[tuple[str, str]], stream: str, native: bool = False
) -> list[int | None]:
    """Where each of ``fields`` ((name, Airbyte type) of the stream's in the catalog) is in a
    typed frame's batch (None: absent, every value null); a column that is not one of ``fields``,
    or whose type is not its field's canonical type (or, in a ``native`` frame, its native type),
    raises :class:`FrameError`. (An int64 or bool column is taken for a field whose column holds
    JSON tokens, a number or JSON field: its values' text is their token; a destination may type
    a source's integers as numbers.)"""
    types = dict(fields)
    positions: dict[str, int] = {}
    for i, f in enumerate(schema):
        if i == len(schema) - 1:
            break  # meta
        wanted = types.get(f.name)
        if wanted is None:
            raise FrameError(f"a typed frame of {stream} with a column {f.name!r} the stream does not have")
        if (
            str(f.type) != COLUMN_TYPES[wanted]
            and not (wanted in TOKEN_TYPES and str(f.type) in ("int64", "bool"))
            and not (native and str(f.type) == NATIVE_TYPES.get(wanted))
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


_DAY_MICROS = 86_400_000_000
_FIRST_DAY = -719_162  # 0001-01-01
_LAST_DAY = 2_932_896  # 9999-12-31


def _ymd(days: int) -> tuple[str, str]:
    """The canonical date of ``days`` (years before 1 with `` BC``, after 9999 with ``+``):
    (``YYYY-MM-DD``, era suffix)."""
    year, month, day = civil_from_days(days)
    shown, era = (1 - year, " BC") if year <= 0 else (year, "")
    text = f"+{shown}" if shown > 9999 else f"{shown:04d}"
    return f"{text}-{month:02d}-{day:02d}", era


def canonical_text(value: int, type_name: str) -> str:
    """The canonical string of one native value given as its Arrow integer (days, microseconds)."""
    if type_name == "date32[day]":
        date, era = _ymd(value)
        return date + era
    if type_name == "time64[us]":
        return format_time_micros(value)
    days, rest = divmod(value, _DAY_MICROS)
    date, era = _ymd(days)
    zone = "+00:00" if type_name == "timestamp[us, tz=UTC]" else ""
    return f"{date}T{format_time_micros(rest)}{zone}{era}"


def canonical_strings(array: pa.Array) -> pa.Array:
    """A native column (:data:`NATIVE_TYPES`) as the canonical strings of a ``columns`` frame
    (the JSON path's string values: ``0044-03-15 BC``, ``+10000-01-01``,
    ``2024-01-02T03:04:05.000000+00:00``, base64); any other column as it is."""
    import base64

    import pyarrow as pa
    import pyarrow.compute as pc

    kind = str(array.type)
    if kind not in NATIVE_TYPES.values():
        return array
    if kind == "binary":  # base64 (value by value: no Arrow kernel writes it)
        values = array.to_pylist()
        return pa.array(
            [None if v is None else base64.b64encode(v).decode("ascii") for v in values], pa.string()
        )
    if kind == "time64[us]":
        return array.cast(pa.string())  # HH:MM:SS.ffffff: Arrow holds times of one day only
    date = kind == "date32[day]"
    days = array.cast(pa.int32() if date else pa.int64())
    low, high = (
        (_FIRST_DAY, _LAST_DAY) if date else (_FIRST_DAY * _DAY_MICROS, (_LAST_DAY + 1) * _DAY_MICROS - 1)
    )
    odd = pc.fill_null(pc.or_(pc.less(days, low), pc.greater(days, high)), False)
    some = bool(pc.any(odd).as_py())
    usual = pc.if_else(odd, pa.scalar(None, array.type), array) if some else array  # years 1-9999
    if date:
        out = usual.cast(pa.string())  # YYYY-MM-DD
    else:
        out = pc.strftime(usual, "%Y-%m-%dT%H:%M:%S")  # six fraction digits for microseconds
        if kind == "timestamp[us, tz=UTC]":
            out = pc.binary_join_element_wise(out, "+00:00", "")
    if not some:
        return out
    texts = [canonical_text(v, kind) for v in days.filter(odd).to_pylist()]
    return pc.replace_with_mask(out, odd, pa.array(texts, pa.string()))
