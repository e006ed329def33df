"""stdin -> per-stream buffers -> flushes -> STATE echoes: the consumer orchestrates the input
reader (:mod:`dbkit.destination.input`), the stream loaders, the load executor
(:mod:`dbkit.destination.executor`) and the state ledger (:mod:`dbkit.destination.ledger`).

Flush policy: a stream's buffer is loaded when it holds ``batch_records`` records or
``batch_megabytes`` of input; when all buffers together exceed ``memory_megabytes`` the largest
is loaded; every buffer is loaded when the oldest buffered record or unechoed state is older than
``flush_seconds`` (also while the input is idle: a reader thread hands lines over, so a stalled
source does not hold back states), when the source reports the stream COMPLETE, and at the end
of the input.

State rule: a STATE is echoed (unchanged, plus ``destinationStats.recordCount``) only when every
record that arrived before it, in every stream it covers, is committed; states are echoed in the
order they arrived.

Loads run one after another, in the order they were asked for. When the dialect allows it
(``background_loading``), they run on a worker thread while this thread reads on: the next batch
is decoded and buffered while the previous one is typed, sent and committed (at most one load
waits behind the running one, which bounds memory), and the typed parts of the next load are
built (:mod:`dbkit.destination.prefetch`) while the database finishes the running one. With
``lanes`` > 1 (the config's ``parallel_loads``), the loads of streams whose loader declares them
shared (plain appends) run side by side, each on a connection of its own, and commit in order
(:mod:`dbkit.destination.executor`). A state is echoed once the loads of every record before it
have committed; a failed load stops the write, and nothing after it is echoed.

Streams that replace their data (overwrite, truncate refresh) load only records that a STATE
already covers, except when the source reports the stream COMPLETE: records after the last STATE
stay buffered. If the input ends (or the stream is reported INCOMPLETE) before COMPLETE, that tail
is dropped — the resumed source sends it again from the last STATE, and loading it now would put
those rows twice into the table the refresh loads (temporary or final). Should the tail outgrow
twice the batch size without a STATE, it is loaded anyway (at-least-once, logged).

A malformed line (not JSON, or a message whose type, stream name or namespace is not a string,
whose record, data or state is not an object), a RECORD for a stream not in the catalog, or one
after its stream's COMPLETE stops the write with an error naming the line: what came before it
is loaded and its states echoed, nothing after it is. Lines of any length and nesting depth are
read (see :mod:`dbkit.protocol.deepjson`); an input value is quoted in a message only cut short.

RECORD lines are read by msgspec (:mod:`dbkit.destination.records`) without building a Python
object per value, straight into the stream's buffer as :class:`RawRecord`; the general path
(:func:`~dbkit.destination.input.parse_message`) reads every other line, decides what is an
error, and hands a RECORD it read on as a :class:`RawRecord` too. With ``--transport arrow``, a
frame (:mod:`dbkit.protocol.arrow`) stands for its run of RECORD lines: a ``records`` frame's
rows become :class:`RawRecord` s, a typed (``columns``) frame's rows are buffered as references
to runs of the frame (:mod:`dbkit.destination.frames`), typed from its columns when loaded.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import msgspec

from dbkit.destination.executor import POLL_SECONDS, Job, LoadExecutor, Slot
from dbkit.destination.frames import Frame, FrameRun, NeedsRecords, frame_lines, lines_are_json, rebase
from dbkit.destination.input import BadLine, InputError, InputReader, parse_message, shown
from dbkit.destination.ledger import StateLedger
from dbkit.destination.loader import StreamLoader
from dbkit.destination.prefetch import Prefetcher
from dbkit.destination.records import (
    DECODE_ERRORS,
    NO_META,
    Envelope,
    RawRecord,
    as_raw_record,
    decode_envelope,
)
from dbkit.errors import DbkitError, TransientError
from dbkit.protocol import MessageWriter, StreamDescriptor
from dbkit.protocol.arrow import (
    FRAME_PREFIX,
    NATIVE,
    TYPED_KINDS,
    FrameError,
    arrow_transport,
    check_columns,
    decode_body,
    parse_header,
)

__all__ = ["Consumer", "FlushPolicy", "InputError"]

IGNORED_TYPES = frozenset({"LOG", "SPEC", "CATALOG", "CONNECTION_STATUS", "CONTROL"})
TIME_CHECK_EVERY = 1000
SWITCH_SECONDS = 0.0005  # the GIL's switch interval while loads run in the background
_OPEN_BRACE = ord("{")
_ENVELOPE_BYTES = 100  # what a RECORD line holds around its data, about (for the buffer's size)


@dataclass(frozen=True)
class FlushPolicy:
    """When buffered records are loaded (see the module doc); from the config's flush fields."""

    batch_records: int = 50_000
    batch_bytes: int = 64 * 1024 * 1024
    memory_bytes: int = 256 * 1024 * 1024
    flush_seconds: float = 60.0


@dataclass(eq=False)
class _Buffer:
    descriptor: StreamDescriptor
    loader: StreamLoader
    records: list[RawRecord] = field(default_factory=list)
    bytes: int = 0
    first_line: int | None = None
    first_time: float = 0.0
    added: int = 0  # records received, ever
    status: str | None = None
    covered: int = 0  # records at the front of ``records`` that a STATE covers
    covered_bytes: int = 0
    tail_line: int | None = None  # line and arrival time of the first record after them
    tail_time: float = 0.0
    loading: deque[tuple[int, int]] = field(default_factory=deque)  # (job, first line) not committed


class Consumer:
    """Runs one write's input: :meth:`run` once, with the loaders already set up."""

    def __init__(
        self,
        loaders: dict[StreamDescriptor, StreamLoader],
        writer: MessageWriter,
        policy: FlushPolicy,
        log: Callable[[str, str], None] | None = None,
        translate: Callable[[BaseException], DbkitError] | None = None,
        background: bool = False,
        lanes: int = 1,
    ) -> None:
        self.buffers: dict[tuple[Any, Any], _Buffer] = {
            (d.name, d.namespace): _Buffer(d, loader) for d, loader in loaders.items()
        }
        self._unnamespaced: dict[Any, _Buffer] = {}  # stream name -> the buffer it resolved to
        self.writer = writer
        self.policy = policy
        self.log = log or (lambda level, text: None)
        self.translate = translate
        self.ledger = StateLedger(writer, list(self.buffers.values()))
        self.line_no = 0
        self.buffered_bytes = 0
        self.loads = LoadExecutor(background, lanes)
        self.prefetch = Prefetcher() if background else None
        self.frames = arrow_transport()  # the input may hold Arrow frames (dbkit.protocol.arrow)

    # ------------------------------------------------------------------ main loop
    def run(self, source: BinaryIO) -> None:
        switch = sys.getswitchinterval()
        if self.loads.background:
            # several threads take turns holding the GIL (reading, building parts, sending them):
            # a thread that only hands bytes to the database must not wait 5 ms for its turn
            # while the database sits idle (bench/README.md has the measurement)
            sys.setswitchinterval(min(switch, SWITCH_SECONDS))
        try:
            try:
                for chunk in InputReader(source, self.frames).chunks(self._wait_seconds):
                    if chunk is not None:
                        self._consume(chunk)
                    self._collect()
                    self._flush_if_old()
            except InputError:
                self._flush_all()
                self._settle()
                raise
            self.finish()
        except BaseException:
            self._stop_loads()
            raise
        finally:
            self.loads.close()
            if self.prefetch is not None:
                self.prefetch.close()
            sys.setswitchinterval(switch)

    def _consume(self, chunk: list[bytes]) -> None:
        """The lines of one chunk; RECORD lines of the stream of the previous line in a tight loop."""
        decode = decode_envelope
        policy = self.policy
        batch_records, batch_bytes, memory_bytes = (
            policy.batch_records,
            policy.batch_bytes,
            policy.memory_bytes,
        )
        key: tuple[Any, Any] | None = None
        buffer: _Buffer | None = None
        records: list[Any] = []
        envelope: Envelope | None
        for line in chunk:
            self.line_no += 1
            try:
                envelope = decode(line)
                record = envelope.record
            except DECODE_ERRORS:
                envelope = record = None
            if (
                record is not None
                and envelope is not None
                and envelope.type == "RECORD"
                and memoryview(record.data)[0] == _OPEN_BRACE
            ):
                if (record.stream, record.namespace) != key:
                    key = (record.stream, record.namespace)
                    buffer = self.buffers.get(key)
                    if buffer is None:
                        buffer = self._buffer_for(record.stream, record.namespace, "RECORD")
                    records = buffer.records
                assert buffer is not None
                size = len(line)
                if buffer.status is None and buffer.first_line is not None and len(records) != buffer.covered:
                    records.append(record)  # the common case: nothing else to note
                    buffer.bytes += size
                    buffer.added += 1
                    self.buffered_bytes += size
                    if len(records) >= batch_records or buffer.bytes >= batch_bytes:
                        self._full(buffer)
                        records = buffer.records
                    elif self.buffered_bytes >= memory_bytes:
                        self._flush(max(self.buffers.values(), key=lambda b: b.bytes), everything=True)
                        records = buffer.records
                else:
                    self._add(buffer, record, size)
                    records = buffer.records
            else:
                key = None
                if self.frames and line.startswith(FRAME_PREFIX):
                    self._frame(line)
                else:
                    self._handle_message(line)
            if self.line_no % TIME_CHECK_EVERY == 0:
                self._collect()
                self._flush_if_old()
                key = None  # a flush may have replaced the buffer's list

    def _wait_seconds(self) -> float | None:
        """How long the input may stay idle before the consumer must look again: until something
        buffered or pending is due for a time flush (None if nothing is), and at most
        ``POLL_SECONDS`` while loads run in the background."""
        oldest = [b.first_time for b in self.buffers.values() if b.first_line is not None]
        arrived = self.ledger.oldest_arrival()
        if arrived is not None:
            oldest.append(arrived)
        timeout = None
        if oldest:
            timeout = max(0.001, min(oldest) + self.policy.flush_seconds - time.monotonic())
        if self.loads.busy:
            timeout = POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS)
        return timeout

    def _fail(self, problem: str) -> InputError:
        return InputError(f"line {self.line_no} of the input: {problem}; nothing after it was loaded")

    def _handle_message(self, line: bytes) -> None:
        try:
            message = parse_message(line)
        except BadLine as bad:
            raise self._fail(str(bad)) from None
        if message is None:
            return
        kind = message.get("type")
        if not isinstance(kind, str):
            raise self._fail(f"the message type is {shown(kind)}, not a string")
        if kind == "RECORD":
            self._record(message.get("record"), len(line))
        elif kind == "STATE":
            self._state(message.get("state"))
        elif kind == "TRACE":
            self._trace(message.get("trace"))
        elif kind not in IGNORED_TYPES:
            raise self._fail(f"unknown message type {shown(kind)}")

    def _buffer_for(self, name: Any, namespace: Any, what: str) -> _Buffer:
        self._check_names(name, namespace, what)
        buffer = self._resolve(name, namespace)
        if buffer is None:
            stream = name if namespace is None else f"{namespace}.{name}"
            raise self._fail(f"{what} for stream {shown(stream)}, which is not in the configured catalog")
        return buffer

    def _check_names(self, name: Any, namespace: Any, what: str) -> None:
        """A stream is named by a string, its namespace by a string or null."""
        if not isinstance(name, str):
            raise self._fail(f"{what} whose stream name is {shown(name)}, not a string")
        if namespace is not None and not isinstance(namespace, str):
            raise self._fail(
                f"{what} of stream {shown(name)} whose namespace is {shown(namespace)}, not a string"
            )

    def _resolve(self, name: Any, namespace: Any) -> _Buffer | None:
        """The stream a message names. A message without a namespace (``null`` or absent) for a
        catalog stream that has one is that stream when the catalog holds exactly one stream of
        that name (PyAirbyte's cache -> destination path sends such messages), with a warning
        once; when several namespaces have that name it matches none."""
        buffer = self.buffers.get((name, namespace))
        if buffer is not None or namespace is not None:
            return buffer
        buffer = self._unnamespaced.get(name)
        if buffer is not None:
            return buffer
        matches = [b for (n, _), b in self.buffers.items() if n == name]
        if len(matches) != 1:
            if matches:
                self.log(
                    "WARN",
                    f"line {self.line_no}: stream {shown(name)} without a namespace matches "
                    f"{len(matches)} catalog streams; it is refused as ambiguous",
                )
            return None
        (buffer,) = matches
        self._unnamespaced[name] = buffer
        self.log(
            "WARN",
            f"line {self.line_no}: messages of stream {shown(name)} carry no namespace; they are taken "
            f"as the catalog's only stream of that name, {buffer.descriptor}",
        )
        return buffer

    def _frame(self, item: bytes) -> None:
        """An Arrow frame (its header line, newline and body): its records, in order, buffered
        exactly as the RECORD lines it stands for would be."""
        newline = item.find(b"\n")
        try:
            header = parse_header(item[:newline])
            batch = decode_body(header, memoryview(item)[newline + 1 :])
        except FrameError as exc:
            raise self._fail(str(exc)) from None
        buffer = self._buffer_for(header.stream, header.namespace, "RECORD")
        if header.kind in TYPED_KINDS:
            native = header.kind == NATIVE
            self._typed_frame(buffer, header.stream, header.namespace, header.emitted_at, batch, native)
            return
        data, meta = batch.column(0), batch.column(1)
        n = len(data)
        if n == 0:
            return
        offsets = memoryview(data.buffers()[1]).cast("i")[data.offset : data.offset + n + 1]
        values = memoryview(data.buffers()[2])
        metas: list[Any] = [None] * n if meta.null_count == n else meta.to_pylist()
        stream, namespace, emitted_at = header.stream, header.namespace, header.emitted_at
        raw = msgspec.Raw
        records: list[RawRecord] = []
        for i in range(n):
            start, end = offsets[i], offsets[i + 1]
            if end == start or values[start] != _OPEN_BRACE:
                raise self._fail(f"an Arrow frame of {buffer.descriptor} whose record {i} has no data object")
            m = metas[i]
            records.append(
                RawRecord(
                    stream, raw(values[start:end]), namespace, emitted_at, NO_META if m is None else raw(m)
                )
            )
        size = (offsets[n] - offsets[0]) // n + _ENVELOPE_BYTES  # per record, about
        self._buffer_runs(buffer, n, size, lambda i, j: records[i:j])

    def _typed_frame(
        self, buffer: _Buffer, stream: str, namespace: str | None, emitted_at: int, batch: Any, native: bool
    ) -> None:
        """A typed frame (``columns`` or ``native`` kind): its rows buffered as :class:`FrameRun` references
        (:mod:`dbkit.destination.frames`), in the runs and with the checks the records it stands
        for would get."""
        builder = buffer.loader.builder
        if builder is None:
            raise self._fail(f"a typed Arrow frame of {buffer.descriptor}, which loads no typed table")
        fields = builder.catalog_fields
        try:
            if not builder.columnar:  # the table stores some column as another type than the stream's
                check_columns(batch.schema, fields, str(buffer.descriptor), native)
                raise NeedsRecords(str(buffer.descriptor))
            frame = Frame(stream, namespace, emitted_at, batch, fields, str(buffer.descriptor), native)
        except FrameError as exc:
            raise self._fail(str(exc)) from None
        except NeedsRecords:
            self._frame_as_lines(buffer, stream, namespace, emitted_at, batch, fields)
            return
        n = batch.num_rows
        if n == 0:
            return
        size = batch.nbytes // n + _ENVELOPE_BYTES  # per record, about
        self._buffer_runs(buffer, n, size, lambda i, j: [FrameRun(frame, i, j)] * (j - i))

    def _frame_as_lines(
        self,
        buffer: _Buffer,
        stream: str,
        namespace: str | None,
        emitted_at: int,
        batch: Any,
        fields: list[tuple[str, str]],
    ) -> None:
        """A typed frame read as the RECORD lines it stands for (:func:`frame_lines`), exactly as
        the lines would have been read (the same decoding path), a batch's worth at a time (so
        memory stays bounded by the batch, whatever the frame's size). All of the frame or none
        of it: every line is known to be JSON before the first is consumed (told from the
        columns; else each line parsed first)."""
        step = max(1, self.policy.batch_records)
        n = batch.num_rows
        if not lines_are_json(batch, fields):
            for lo in range(0, n, step):
                part = batch.slice(lo, step)
                for i, line in enumerate(frame_lines(stream, namespace, emitted_at, part, fields)):
                    try:
                        parse_message(line)
                    except BadLine as bad:
                        raise self._fail(
                            f"record {lo + i} of a typed frame of {buffer.descriptor}: {bad}"
                        ) from None
        first = self.line_no - n  # the lines count as the frame's one line
        for lo in range(0, n, step):
            self.line_no = first + lo
            self._consume(frame_lines(stream, namespace, emitted_at, batch.slice(lo, step), fields))

    def _buffer_runs(self, buffer: _Buffer, n: int, size: int, rows: Callable[[int, int], list[Any]]) -> None:
        """Buffer ``n`` records of one frame (``rows(i, j)``: the buffer entries of records ``i`` to
        ``j``) in runs up to the batch size, each buffered as its lines would be (record by record
        through :meth:`_add` where the buffer's state asks for it)."""
        policy = self.policy
        i = 0
        while i < n:
            if (
                buffer.status is None
                and buffer.first_line is not None
                and len(buffer.records) != buffer.covered
            ):
                room = policy.batch_records - len(buffer.records)
                if room <= 0:
                    # full and waiting for a STATE (a refresh loads what states cover): each record
                    # would only check again whether the buffer reached twice the batch size (and is
                    # loaded whole); take the records up to that point at once (one by one, each
                    # became a run of its own, and a batch part of one row: 160 s per million rows)
                    room = 2 * policy.batch_records - len(buffer.records)
                    if size > 0:
                        room = min(room, -(-(2 * policy.batch_bytes - buffer.bytes) // size))
                take = max(1, min(n - i, room))
                buffer.records.extend(rows(i, i + take))
                buffer.bytes += take * size
                buffer.added += take
                self.buffered_bytes += take * size
                i += take
                if len(buffer.records) >= policy.batch_records or buffer.bytes >= policy.batch_bytes:
                    self._full(buffer)
                elif self.buffered_bytes >= policy.memory_bytes:
                    self._flush(max(self.buffers.values(), key=lambda b: b.bytes), everything=True)
            else:
                (one,) = rows(i, i + 1)
                self._add(buffer, one, size)
                i += 1

    def _record(self, record: Any, size: int) -> None:
        """A RECORD the general path read: checked, then buffered as a :class:`RawRecord`."""
        if not isinstance(record, dict):
            raise self._fail("RECORD message without a 'record' object")
        buffer = self._buffer_for(record.get("stream"), record.get("namespace"), "RECORD")
        if not isinstance(record.get("data"), dict):
            raise self._fail(f"RECORD of {buffer.descriptor} without a 'data' object")
        self._add(buffer, as_raw_record(record), size)

    def _add(self, buffer: _Buffer, record: RawRecord, size: int) -> None:
        if buffer.status is not None:
            raise self._fail(f"RECORD of {buffer.descriptor} after its {buffer.status} status")
        if buffer.first_line is None:
            buffer.first_line = self.line_no
            buffer.first_time = time.monotonic()
        if len(buffer.records) == buffer.covered:
            buffer.tail_line = self.line_no
            buffer.tail_time = time.monotonic()
        buffer.records.append(record)
        buffer.bytes += size
        buffer.added += 1
        self.buffered_bytes += size
        policy = self.policy
        if len(buffer.records) >= policy.batch_records or buffer.bytes >= policy.batch_bytes:
            self._full(buffer)
        elif self.buffered_bytes >= policy.memory_bytes:
            self._flush(max(self.buffers.values(), key=lambda b: b.bytes), everything=True)

    def _full(self, buffer: _Buffer) -> None:
        """A buffer reached the batch size: load it (for a refresh, what a STATE covers)."""
        policy = self.policy
        self._flush(buffer)
        uncovered = len(buffer.records)
        if uncovered >= 2 * policy.batch_records or buffer.bytes >= 2 * policy.batch_bytes:
            self.log(
                "WARN",
                f"{buffer.descriptor}: {uncovered} records arrived without a STATE; loading them "
                "(a resumed refresh may then hold some of them twice)",
            )
            self._flush(buffer, everything=True)

    def _state(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise self._fail("STATE message without a 'state' object")
        kind = state.get("type")
        if kind == "STREAM":
            stream = state.get("stream")
            descriptor = stream.get("stream_descriptor") if isinstance(stream, dict) else None
            if not isinstance(descriptor, dict):
                raise self._fail("STREAM state without a stream_descriptor")
            buffer = self._buffer_for(descriptor.get("name"), descriptor.get("namespace"), "STATE")
            covered = [buffer]
            self.ledger.stream_state(self.line_no, state, buffer)
        elif kind == "GLOBAL":
            covered = list(self.buffers.values())
            self.ledger.global_state(self.line_no, state)
        else:
            raise self._fail(f"STATE of type {shown(kind)}; only STREAM and GLOBAL states are supported")
        for b in covered:
            b.covered = len(b.records)
            b.covered_bytes = b.bytes
        self.ledger.release()

    def _trace(self, trace: Any) -> None:
        if not isinstance(trace, dict) or trace.get("type") != "STREAM_STATUS":
            return
        body = trace.get("stream_status")
        descriptor = body.get("stream_descriptor") if isinstance(body, dict) else None
        if not isinstance(descriptor, dict):
            raise self._fail("STREAM_STATUS without a stream_descriptor")
        self._check_names(descriptor.get("name"), descriptor.get("namespace"), "STREAM_STATUS")
        buffer = self._resolve(descriptor.get("name"), descriptor.get("namespace"))
        if buffer is None:
            self.log("WARN", f"line {self.line_no}: stream status for a stream not in the catalog; ignored")
            return
        status = body.get("status") if isinstance(body, dict) else None
        if status == "COMPLETE":
            self._flush(buffer, everything=True)
            complete = buffer.loader.complete
            self._submit(lambda slot: complete())
            buffer.status = "COMPLETE"
            self.ledger.release()
        elif status == "INCOMPLETE":
            self._flush(buffer)
            self._drop_tail(buffer)
            buffer.status = "INCOMPLETE"
            self.ledger.release()

    # ------------------------------------------------------------------ flushing and echoing
    def _guarded(self, action: Job) -> Job:
        translate = self.translate

        def run(slot: Slot) -> None:
            try:
                action(slot)
            except DbkitError:
                raise
            except Exception as exc:
                if translate is None:
                    raise
                raise translate(exc) from exc

        return run

    def _submit(self, action: Job, shared: bool = False) -> int:
        number = self.loads.submit(self._guarded(action), shared)
        self._collect()
        return number

    def _flush(self, buffer: _Buffer, everything: bool = False) -> None:
        """Load the buffer (for a stream that replaces its data: only what a STATE covers)."""
        if not buffer.records:
            return
        whole = everything or not buffer.loader.refresh or buffer.covered == len(buffer.records)
        if not whole and buffer.covered == 0:
            return
        first = buffer.first_line
        assert first is not None
        # noted as loading before the records leave the buffer: should anything stop the write
        # in between, the states after ``first`` stay held back (a job that was never submitted
        # is never reported committed)
        job = self.loads.submitted + 1
        buffer.loading.append((job, first))
        if whole:
            records, size = buffer.records, buffer.bytes
            buffer.records = []
            buffer.first_line = None
        else:
            records, size = buffer.records[: buffer.covered], buffer.covered_bytes
            buffer.records = buffer.records[buffer.covered :]
            rebase(records, buffer.records)  # a typed frame's run cut in two
            buffer.first_line, buffer.first_time = buffer.tail_line, buffer.tail_time
        buffer.bytes -= size
        self.buffered_bytes -= size
        buffer.covered = buffer.covered_bytes = 0
        loader = buffer.loader
        number = self._submit(loader.load_job(records, self.prefetch), loader.shared_loads)
        assert number == job
        self.ledger.release()

    def _collect(self) -> None:
        """Note the loads that committed; echo the states they release."""
        self._note_committed(self.loads.finished())

    def _note_committed(self, done: list[int]) -> None:
        if not done:
            return
        last = done[-1]
        for buffer in self.buffers.values():
            while buffer.loading and buffer.loading[0][0] <= last:
                buffer.loading.popleft()
        self.ledger.release()

    def _stop_loads(self) -> None:
        """The write stops with an error: no queued load starts, the running ones finish (each
        commits only after those before it), and the states of what committed are echoed (so a
        rerun does not load it again). The error being raised is the one reported."""
        self.loads.abort()
        with contextlib.suppress(Exception):
            self.loads.wait(raise_failure=False)
            self._note_committed(self.loads.committed())

    def _settle(self) -> None:
        """Wait for every load asked for; echo what they release."""
        self.loads.wait()
        self._collect()

    def _drop_tail(self, buffer: _Buffer) -> None:
        """Forget the records after the stream's last STATE (a refresh that did not complete)."""
        if buffer.loader.refresh and buffer.records:
            self.log(
                "INFO",
                f"{buffer.descriptor}: {len(buffer.records)} records after the last STATE were not loaded; "
                "the next attempt reads them again",
            )
            self.buffered_bytes -= buffer.bytes
            buffer.records, buffer.bytes, buffer.first_line = [], 0, None
            buffer.covered = buffer.covered_bytes = 0

    def _flush_all(self) -> None:
        for buffer in self.buffers.values():
            self._flush(buffer)

    def _flush_if_old(self) -> None:
        limit = time.monotonic() - self.policy.flush_seconds
        arrived = self.ledger.oldest_arrival()
        old_state = arrived is not None and arrived <= limit
        old_record = any(b.first_line is not None and b.first_time <= limit for b in self.buffers.values())
        if old_state or old_record:
            self._flush_all()

    # ------------------------------------------------------------------ end of input
    def finish(self) -> None:
        self._flush_all()
        self._settle()
        for buffer in self.buffers.values():
            if buffer.status != "COMPLETE":
                self._drop_tail(buffer)
        self.ledger.release()
        unfinished = [b for b in self.buffers.values() if b.status != "COMPLETE"]
        for buffer in self.buffers.values():
            self.log(
                "INFO",
                f"{buffer.descriptor}: {buffer.loader.stats.records} records committed "
                f"({buffer.status or 'no final status'})",
            )
        if unfinished:
            names = ", ".join(str(b.descriptor) for b in unfinished)
            refreshes = ", ".join(str(b.descriptor) for b in unfinished if b.loader.replaces)
            detail = (
                f"; the refreshed data of {refreshes} was not swapped in and the previous tables are "
                "unchanged"
                if refreshes
                else ""
            )
            raise TransientError(
                f"the input ended without a COMPLETE status for stream(s) {names}{detail}. "
                "Every record covered by an echoed STATE is committed; run the sync again to finish"
            )
