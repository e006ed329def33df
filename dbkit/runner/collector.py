"""The destination of :func:`dbkit.read`: an in-process connector that hands the records to the
caller as typed Arrow record batches instead of loading them into a database.

``dbkit.read`` runs an ordinary sync (:func:`dbkit.runner.run_sync`: check, discover, the
configured catalog, the state file, the pump, the acknowledger) whose destination is
:class:`ArrowCollector`, run in a thread with ``--transport arrow``. Its ``write`` reads the
source's frames and lines like any dbkit destination (:mod:`dbkit.destination.input`), types each
stream's records with the destinations' batch builder (:mod:`dbkit.destination.batch`: the same
Arrow types and casting rules, a value that cannot be typed set NULL with a
``_airbyte_meta.changes`` entry) and hands the batches to a :class:`Sink`. "Committed" here means
taken by the caller, so a STATE is echoed (and saved to the state file by the runner) only then:

- :class:`StreamingSink` (``dbkit.read_batches``): a batch is taken when the caller asks for the
  next one; each STATE is echoed once the caller has taken every batch before it (at-least-once,
  as a destination: after a failure only the batches after the last echoed STATE come again);
- :class:`CollectingSink` (``dbkit.read``): every batch is kept, and the states are echoed at the
  end only when every stream is COMPLETE (the whole table, or no state change at all).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

import msgspec
import pyarrow as pa
from pydantic import BaseModel

from dbkit.destination.batch import GENERATION_ID, BatchBuilder, BatchColumn, Limits
from dbkit.destination.casting import ARROW_TYPES
from dbkit.destination.frames import Frame, NeedsRecords, frame_lines
from dbkit.destination.input import BadLine, InputReader, parse_message
from dbkit.destination.records import DECODE_ERRORS, NO_META, RawRecord, as_raw_record, decode_envelope
from dbkit.destination.type_mapping import int64_airbyte_type
from dbkit.errors import ConfigError, SystemFailure
from dbkit.protocol import ConfiguredCatalog, ConfiguredStream, MessageWriter, StreamDescriptor
from dbkit.protocol import messages as msg
from dbkit.protocol.arrow import (
    FRAME_PREFIX,
    NATIVE,
    TYPED_KINDS,
    arrow_transport,
    decode_body,
    parse_header,
)

NAME = "dbkit-read"
BATCH_ROWS = 50_000
"""Records of a stream handed over as one batch at most (also without a STATE)."""
STREAM_KEY = b"dbkit.stream"
"""Schema metadata key of every batch: the stream's ``namespace.name`` (or ``name``)."""
_END = object()


class ReadCancelled(SystemFailure):
    """The caller stopped taking batches."""


# ------------------------------------------------------------------------------------ the columns


def stream_columns(stream: ConfiguredStream) -> list[BatchColumn]:
    """One column per property of the stream's JSON schema, named as the property, typed as a
    destination types it (integers past int64 as exact decimal text)."""
    properties = stream.stream.properties
    return [BatchColumn(name, name, int64_airbyte_type(schema)) for name, schema in properties.items()]


def stream_schema(stream: ConfiguredStream) -> pa.Schema:
    """The Arrow schema of the stream's batches: its columns, then ``_airbyte_extracted_at``
    (timestamp) and ``_airbyte_meta`` (JSON text: ``changes`` made to the row's values)."""
    fields = [pa.field(c.name, ARROW_TYPES[c.airbyte_type]) for c in stream_columns(stream)]
    fields += [
        pa.field("_airbyte_extracted_at", pa.timestamp("us", tz="UTC")),
        pa.field("_airbyte_meta", pa.string()),
    ]
    return pa.schema(fields, metadata={STREAM_KEY: str(stream.descriptor).encode()})


# ------------------------------------------------------------------------------------ the sinks


class Sink:
    """Where the collector's batches go; the collector calls :meth:`begin` once with each
    stream's schema, :meth:`put` per batch, :meth:`state` per STATE (with the function that
    echoes it) and :meth:`end` once."""

    schemas: dict[str, pa.Schema]

    def begin(self, schemas: dict[str, pa.Schema]) -> None:
        """Raise (a DbkitError) to refuse the catalog; the write then fails with it."""
        self.schemas = schemas

    def put(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def state(self, echo: Callable[[], None]) -> None:
        raise NotImplementedError

    def end(self, complete: bool) -> None:
        raise NotImplementedError


@dataclass
class CollectingSink(Sink):
    """Keeps every batch; echoes the states at the end, only when every stream completed."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    pending: list[Callable[[], None]] = field(default_factory=list)
    single: bool = False
    """Refuse a catalog of more than one stream (``dbkit.read`` returns one table)."""

    def begin(self, schemas: dict[str, pa.Schema]) -> None:
        if self.single and len(schemas) != 1:
            raise ConfigError(
                f"dbkit.read returns one table, but {len(schemas)} streams were selected "
                f"({', '.join(schemas)}): name one with streams=..., or use dbkit.read_batches"
            )
        self.schemas = schemas

    def put(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)

    def state(self, echo: Callable[[], None]) -> None:
        self.pending.append(echo)

    def end(self, complete: bool) -> None:
        if complete:
            for echo in self.pending:
                echo()
        self.pending.clear()


class StreamingSink(Sink):
    """Hands batches to one reader through a small queue (the collector waits while it is full);
    a STATE is echoed when the reader has taken everything before it and asks for more."""

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._cancelled = threading.Event()
        self._drained = threading.Event()

    def _put(self, item: Any) -> None:
        while True:
            if self._cancelled.is_set():
                raise ReadCancelled("the caller stopped reading the batches")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def put(self, batch: pa.RecordBatch) -> None:
        self._put(batch)

    def state(self, echo: Callable[[], None]) -> None:
        self._put(echo)

    def end(self, complete: bool) -> None:
        """Wait until the reader took everything (it echoes states into our output meanwhile)."""
        self._put(_END)
        while not self._drained.wait(0.1):
            if self._cancelled.is_set():
                raise ReadCancelled("the caller stopped reading the batches")

    def batches(self, alive: Callable[[], bool]) -> Iterator[pa.RecordBatch]:
        """The batches as they come (for the reader's thread); ends at the collector's end, or
        when ``alive()`` turns False (the sync ended without reaching the collector's end)."""
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not alive():
                    return
                continue
            if item is _END:
                self._drained.set()
                return
            if isinstance(item, pa.RecordBatch):
                yield item
            else:
                item()  # a STATE whose batches were all taken: echo it now

    def cancel(self) -> None:
        """The reader stops: the collector's next hand-over fails (and the sync stops)."""
        self._cancelled.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()


SINKS: dict[str, Sink] = {}
"""Sinks by the id a collector's config names (registered by :mod:`dbkit.api` for one read)."""


# ------------------------------------------------------------------------------------ the connector


class CollectorConfig(BaseModel):
    sink: str


@dataclass(eq=False)
class _Stream:
    descriptor: StreamDescriptor
    builder: BatchBuilder
    schema: pa.Schema
    records: list[RawRecord] = field(default_factory=list)
    added: int = 0
    status: str | None = None


class ArrowCollector:
    """The in-process destination of ``dbkit.read`` (never installed as a command)."""

    kind: ClassVar[str] = "destination"
    name: ClassVar[str] = NAME
    config_model: ClassVar[type[BaseModel]] = CollectorConfig
    arrow_transport: ClassVar[bool] = True

    def spec(self) -> dict[str, Any]:
        return {"connectionSpecification": CollectorConfig.model_json_schema()}

    def check(self, config: Any) -> None:
        if config.sink not in SINKS:
            raise ConfigError(f"no Arrow sink {config.sink!r} in this process")

    def write(
        self,
        config: Any,
        catalog: ConfiguredCatalog,
        source: BinaryIO,
        writer: MessageWriter,
        log: Callable[[str, str], None],
    ) -> None:
        """Type the records of ``source`` into batches for the sink; echo each STATE when the sink
        says its batches were taken."""
        sink = SINKS.get(config.sink)
        if sink is None:
            raise ConfigError(f"no Arrow sink {config.sink!r} in this process")
        _Collection(catalog, sink, writer).run(source)


class _Collection:
    """One ``write`` of the collector."""

    def __init__(self, catalog: ConfiguredCatalog, sink: Sink, writer: MessageWriter) -> None:
        self.sink = sink
        self.writer = writer
        self.streams: dict[tuple[str, str | None], _Stream] = {}
        for stream in catalog:
            builder = BatchBuilder(
                stream_columns(stream), Limits(), sync_id=stream.sync_id, generation_id=None, raw_ids=False
            )
            d = stream.descriptor
            self.streams[(d.name, d.namespace)] = _Stream(d, builder, stream_schema(stream))
        self.counted: dict[StreamDescriptor, int] = {}
        self.counted_global = 0
        sink.begin({str(s.descriptor): s.schema for s in self.streams.values()})

    def run(self, source: BinaryIO) -> None:
        for chunk in InputReader(source, arrow_transport()).chunks(lambda: None):
            for item in chunk or ():
                if item.startswith(FRAME_PREFIX):
                    self._frame(item)
                else:
                    self._line(item)
        for stream in self.streams.values():
            self._flush(stream)
        self.sink.end(all(s.status == "COMPLETE" for s in self.streams.values()))

    # ------------------------------------------------------------------ input
    def _stream(self, name: Any, namespace: Any) -> _Stream:
        found = self.streams.get((name, namespace))
        if found is None:
            named = [s for (n, _), s in self.streams.items() if n == name] if namespace is None else []
            if len(named) != 1:
                raise SystemFailure(
                    f"a message of stream {name!r} (namespace {namespace!r}), not in the catalog"
                )
            found = named[0]
        return found

    def _frame(self, item: bytes) -> None:
        newline = item.find(b"\n")
        header = parse_header(item[:newline])
        batch = decode_body(header, memoryview(item)[newline + 1 :])
        stream = self._stream(header.stream, header.namespace)
        if header.kind in TYPED_KINDS:  # typed frame: its rows as records (the batch builder's input here)
            fields = stream.builder.catalog_fields
            try:
                frame = Frame(
                    header.stream,
                    header.namespace,
                    header.emitted_at,
                    batch,
                    fields,
                    header.stream,
                    header.kind == NATIVE,
                )
            except NeedsRecords:
                for line in frame_lines(header.stream, header.namespace, header.emitted_at, batch, fields):
                    self._line(line)  # exactly as the lines would have been
                return
            rows = frame.records(0, batch.num_rows)
            stream.records.extend(rows)
            stream.added += len(rows)
            if len(stream.records) >= BATCH_ROWS:
                self._flush(stream)
            return
        datas = batch.column(0).to_pylist()
        metas = batch.column(1).to_pylist()
        raw = msgspec.Raw
        for data, meta in zip(datas, metas, strict=True):
            stream.records.append(
                RawRecord(
                    header.stream,
                    raw(data),
                    header.namespace,
                    header.emitted_at,
                    NO_META if meta is None else raw(meta),
                )
            )
        stream.added += len(datas)
        if len(stream.records) >= BATCH_ROWS:
            self._flush(stream)

    def _line(self, line: bytes) -> None:
        try:
            envelope = decode_envelope(line)
        except DECODE_ERRORS:
            envelope = None
        if envelope is not None and envelope.type == "RECORD" and envelope.record is not None:
            self._record(envelope.record)
            return
        try:
            message = parse_message(line)
        except BadLine as exc:
            raise SystemFailure(f"the source wrote a line that is not a protocol message: {exc}") from None
        if message is None:
            return
        kind = message.get("type")
        if kind == "RECORD" and isinstance(message.get("record"), dict):
            self._record(as_raw_record(message["record"]))
        elif kind == "STATE" and isinstance(message.get("state"), dict):
            self._state(message["state"])
        elif kind == "TRACE" and isinstance(message.get("trace"), dict):
            trace = message["trace"]
            body = trace.get("stream_status")
            if trace.get("type") == "STREAM_STATUS" and isinstance(body, dict):
                d = body.get("stream_descriptor") or {}
                stream = self._stream(d.get("name"), d.get("namespace"))
                if body.get("status") in ("COMPLETE", "INCOMPLETE"):
                    self._flush(stream)
                    stream.status = body["status"]

    def _record(self, record: RawRecord) -> None:
        stream = self._stream(record.stream, record.namespace)
        stream.records.append(record)
        stream.added += 1
        if len(stream.records) >= BATCH_ROWS:
            self._flush(stream)

    def _state(self, state: dict[str, Any]) -> None:
        """Every record before the STATE is handed over first; then the state, with its count."""
        for stream in self.streams.values():
            self._flush(stream)
        if state.get("type") == "GLOBAL":
            total = sum(s.added for s in self.streams.values())
            count, self.counted_global = total - self.counted_global, total
        else:
            part = state.get("stream") or {}
            d = part.get("stream_descriptor") or {}
            stream = self._stream(d.get("name"), d.get("namespace"))
            count = stream.added - self.counted.get(stream.descriptor, 0)
            self.counted[stream.descriptor] = stream.added
        line = msg.echo_state(state, count)

        def echo() -> None:
            self.writer.write(line)
            self.writer.flush()

        self.sink.state(echo)

    # ------------------------------------------------------------------ output
    def _flush(self, stream: _Stream) -> None:
        if not stream.records:
            return
        records, stream.records = stream.records, []
        table = stream.builder.build(records).table.drop_columns([GENERATION_ID])
        for batch in table.combine_chunks().to_batches():
            self.sink.put(batch.replace_schema_metadata(stream.schema.metadata))
