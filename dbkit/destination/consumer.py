"""stdin -> per-stream buffers -> flushes -> STATE echoes.

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
built (:mod:`dbkit.destination.prefetch`) while the database finishes the running one. A state
is echoed once the loads of every record before it have committed; a failed load stops the
write, and nothing after it is echoed.

Streams that replace their data (overwrite, truncate refresh) load only records that a STATE
already covers, except when the source reports the stream COMPLETE: records after the last STATE
stay buffered. If the input ends (or the stream is reported INCOMPLETE) before COMPLETE, that tail
is dropped — the resumed source sends it again from the last STATE, and loading it now would put
those rows into the temporary table twice. Should the tail outgrow twice the batch size without a
STATE, it is loaded anyway (at-least-once, logged).

A malformed line, a RECORD for a stream not in the catalog, or one after its stream's COMPLETE
stops the write with an error naming the line: what came before it is loaded
and its states echoed, nothing after it is.

RECORD lines are read by msgspec (:mod:`dbkit.destination.records`) without building a Python
object per value; the general path (:func:`~dbkit.protocol.jsonio.loads_exact`) reads every other
line and decides what is an error.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from dbkit.destination.loader import StreamLoader
from dbkit.destination.prefetch import Prefetcher
from dbkit.destination.records import DECODE_ERRORS, Envelope, RawRecord, decode_envelope, loads_lenient
from dbkit.errors import DbkitError, SystemFailure, TransientError
from dbkit.protocol import MessageWriter, StreamDescriptor
from dbkit.protocol import messages as msg
from dbkit.protocol.jsonio import loads_exact

IGNORED_TYPES = frozenset({"LOG", "SPEC", "CATALOG", "CONNECTION_STATUS", "CONTROL"})
TIME_CHECK_EVERY = 1000
CHUNK_BYTES = 1 << 20
QUEUED_CHUNKS = 8
SWITCH_SECONDS = 0.0005  # the GIL's switch interval while loads run in the background
POLL_SECONDS = 0.05  # how often loads running in the background are checked for completion
_END = object()
_OPEN_BRACE = ord("{")


@dataclass(frozen=True)
class FlushPolicy:
    """When buffered records are loaded (see the module doc); from the config's flush fields."""

    batch_records: int = 50_000
    batch_bytes: int = 64 * 1024 * 1024
    memory_bytes: int = 256 * 1024 * 1024
    flush_seconds: float = 60.0


class InputError(SystemFailure):
    """The input stream is not a valid Airbyte message stream for this catalog."""


@dataclass
class _Buffer:
    descriptor: StreamDescriptor
    loader: StreamLoader
    records: list[RawRecord | dict[str, Any]] = field(default_factory=list)
    bytes: int = 0
    first_line: int | None = None
    first_time: float = 0.0
    added: int = 0  # records received, ever
    added_at_state: int = 0  # ``added`` at the stream's previous STREAM state
    status: str | None = None
    covered: int = 0  # records at the front of ``records`` that a STATE covers
    covered_bytes: int = 0
    tail_line: int | None = None  # line and arrival time of the first record after them
    tail_time: float = 0.0
    loading: deque[tuple[int, int]] = field(default_factory=deque)  # (job, first line) not committed


@dataclass
class _Pending:
    line: int
    payload: dict[str, Any]
    streams: list[_Buffer]
    count: int
    arrived: float


class _Loads:
    """Runs load jobs in order: inline, or on one worker thread (``background``).

    ``submit`` returns a job number; ``finished()`` tells the jobs completed since the last call;
    ``wait()`` returns once every submitted job is done. A failed job's exception is raised by
    the next ``submit``/``finished``/``wait``, and no job after it runs.
    """

    def __init__(self, background: bool) -> None:
        self.background = background
        self.submitted = 0
        self._done: deque[int] = deque()
        self._error: BaseException | None = None
        self._jobs: queue.Queue[tuple[int, Callable[[], None]] | None] = queue.Queue(maxsize=1)
        self._idle = threading.Condition()
        self._running = 0
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> int:
        self._raise()
        self.submitted += 1
        number = self.submitted
        if not self.background:
            job()
            self._done.append(number)
            return number
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="dbkit-loads", daemon=True)
            self._thread.start()
        with self._idle:
            self._running += 1
        try:
            while True:
                try:
                    self._jobs.put((number, job), timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    self._raise()
        except BaseException:  # never queued: not running either (close() must not wait for it)
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
            raise
        return number

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            number, job = item
            try:
                if self._error is None:
                    job()
                    self._done.append(number)
            except BaseException as exc:  # handed to the consumer thread
                self._error = exc
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def finished(self) -> list[int]:
        done = []
        while self._done:
            done.append(self._done.popleft())
        if self._error is not None:
            self._raise()
        return done

    @property
    def busy(self) -> bool:
        return self._running > 0

    def wait(self) -> None:
        with self._idle:
            while self._running:
                self._idle.wait()
        self._raise()

    def close(self) -> None:
        if self._thread is not None:
            with self._idle:
                while self._running:
                    self._idle.wait()
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


class Consumer:
    def __init__(
        self,
        loaders: dict[StreamDescriptor, StreamLoader],
        writer: MessageWriter,
        settings: FlushPolicy,
        log: Callable[[str, str], None] | None = None,
        translate: Callable[[BaseException], DbkitError] | None = None,
        background: bool = False,
    ) -> None:
        self.buffers: dict[tuple[Any, Any], _Buffer] = {
            (d.name, d.namespace): _Buffer(d, loader) for d, loader in loaders.items()
        }
        self.writer = writer
        self.settings = settings
        self.log = log or (lambda level, text: None)
        self.translate = translate
        self.pending: deque[_Pending] = deque()
        self.line_no = 0
        self.buffered_bytes = 0
        self.added_at_global = 0
        self.echoed = 0
        self.loads = _Loads(background)
        self.prefetch = Prefetcher() if background else None

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
                for chunk in self._chunks(source):
                    if chunk is not None:
                        self._consume(chunk)
                    self._collect()
                    self._flush_if_old()
            except InputError:
                self._flush_all()
                self._settle()
                raise
            self.finish()
        finally:
            self.loads.close()
            if self.prefetch is not None:
                self.prefetch.close()
            sys.setswitchinterval(switch)

    def _consume(self, chunk: list[bytes]) -> None:
        """The lines of one chunk; RECORD lines of the stream of the previous line in a tight loop."""
        decode = decode_envelope
        settings = self.settings
        batch_records, batch_bytes, memory_bytes = (
            settings.batch_records,
            settings.batch_bytes,
            settings.memory_bytes,
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
                        self._buffer_for(record.stream, record.namespace, "RECORD")  # raises
                    assert buffer is not None
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
                self._handle_message(line)
            if self.line_no % TIME_CHECK_EVERY == 0:
                self._collect()
                self._flush_if_old()
                key = None  # a flush may have replaced the buffer's list

    def _chunks(self, source: BinaryIO) -> Iterator[list[bytes] | None]:
        """Lists of input lines as they arrive, read by a thread; None whenever nothing arrived
        before the next flush is due, or while loads run in the background (so the caller can
        flush and echo on time while the input is idle)."""
        lines: queue.Queue[Any] = queue.Queue(maxsize=QUEUED_CHUNKS)
        stop = threading.Event()
        reader = threading.Thread(target=_read_chunks, args=(source, lines, stop), daemon=True)
        reader.start()
        try:
            while True:
                timeout = self._idle_timeout()
                if self.loads.busy:
                    timeout = POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS)
                try:
                    item = lines.get(timeout=timeout)
                except queue.Empty:
                    yield None
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def _idle_timeout(self) -> float | None:
        """Seconds until something buffered or pending is due for a time flush, None if nothing is."""
        oldest = [b.first_time for b in self.buffers.values() if b.first_line is not None]
        if self.pending:
            oldest.append(self.pending[0].arrived)
        if not oldest:
            return None
        return max(0.001, min(oldest) + self.settings.flush_seconds - time.monotonic())

    def _fail(self, problem: str) -> InputError:
        return InputError(f"line {self.line_no} of the input: {problem}; nothing after it was loaded")

    def _handle_message(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = loads_exact(line)
        except ValueError as exc:
            message = self._lenient_record(line)
            if message is None:
                raise self._fail(f"not valid JSON ({exc})") from None
        if not isinstance(message, dict):
            raise self._fail("a message must be a JSON object")
        kind = message.get("type")
        if kind == "RECORD":
            self._record(message.get("record"), len(line))
        elif kind == "STATE":
            self._state(message.get("state"))
        elif kind == "TRACE":
            self._trace(message.get("trace"))
        elif kind not in IGNORED_TYPES:
            raise self._fail(f"unknown message type {kind!r}")

    @staticmethod
    def _lenient_record(line: bytes) -> dict[str, Any] | None:
        """A RECORD whose strings hold text no database stores (a lone surrogate escape such as
        ``"\\ud800"``, which JSON's grammar allows, or invalid UTF-8): kept, for casting to
        repair the value and record the change. Any other unreadable line stays an error."""
        try:
            message = loads_lenient(line)
        except ValueError:
            return None
        if isinstance(message, dict) and message.get("type") == "RECORD":
            return message
        return None

    def _buffer_for(self, name: Any, namespace: Any, what: str) -> _Buffer:
        buffer = self.buffers.get((name, namespace))
        if buffer is None:
            shown = name if namespace is None else f"{namespace}.{name}"
            raise self._fail(f"{what} for stream {shown!r}, which is not in the configured catalog")
        return buffer

    def _record(self, record: Any, size: int) -> None:
        if not isinstance(record, dict):
            raise self._fail("RECORD message without a 'record' object")
        buffer = self._buffer_for(record.get("stream"), record.get("namespace"), "RECORD")
        if not isinstance(record.get("data"), dict):
            raise self._fail(f"RECORD of {buffer.descriptor} without a 'data' object")
        self._add(buffer, record, size)

    def _add(self, buffer: _Buffer, record: RawRecord | dict[str, Any], size: int) -> None:
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
        settings = self.settings
        if len(buffer.records) >= settings.batch_records or buffer.bytes >= settings.batch_bytes:
            self._full(buffer)
        elif self.buffered_bytes >= settings.memory_bytes:
            self._flush(max(self.buffers.values(), key=lambda b: b.bytes), everything=True)

    def _full(self, buffer: _Buffer) -> None:
        """A buffer reached the batch size: load it (for a refresh, what a STATE covers)."""
        settings = self.settings
        self._flush(buffer)
        uncovered = len(buffer.records)
        if uncovered >= 2 * settings.batch_records or buffer.bytes >= 2 * settings.batch_bytes:
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
            covered, count = [buffer], buffer.added - buffer.added_at_state
            buffer.added_at_state = buffer.added
        elif kind == "GLOBAL":
            total = sum(b.added for b in self.buffers.values())
            covered, count = list(self.buffers.values()), total - self.added_at_global
            self.added_at_global = total
        else:
            raise self._fail(f"STATE of type {kind!r}; only STREAM and GLOBAL states are supported")
        for b in covered:
            b.covered = len(b.records)
            b.covered_bytes = b.bytes
        self.pending.append(_Pending(self.line_no, state, covered, count, time.monotonic()))
        self._echo_ready()

    def _trace(self, trace: Any) -> None:
        if not isinstance(trace, dict) or trace.get("type") != "STREAM_STATUS":
            return
        body = trace.get("stream_status")
        descriptor = body.get("stream_descriptor") if isinstance(body, dict) else None
        if not isinstance(descriptor, dict):
            raise self._fail("STREAM_STATUS without a stream_descriptor")
        buffer = self.buffers.get((descriptor.get("name"), descriptor.get("namespace")))
        if buffer is None:
            self.log("WARN", f"line {self.line_no}: stream status for a stream not in the catalog; ignored")
            return
        status = body.get("status") if isinstance(body, dict) else None
        if status == "COMPLETE":
            self._flush(buffer, everything=True)
            self._submit(buffer.loader.complete)
            buffer.status = "COMPLETE"
            self._echo_ready()
        elif status == "INCOMPLETE":
            self._flush(buffer)
            self._drop_tail(buffer)
            buffer.status = "INCOMPLETE"
            self._echo_ready()

    # ------------------------------------------------------------------ flushing and echoing
    def _guarded(self, action: Callable[[], None]) -> Callable[[], None]:
        translate = self.translate

        def run() -> None:
            try:
                action()
            except DbkitError:
                raise
            except Exception as exc:
                if translate is None:
                    raise
                raise translate(exc) from exc

        return run

    def _submit(self, action: Callable[[], None]) -> int:
        number = self.loads.submit(self._guarded(action))
        self._collect()
        return number

    def _flush(self, buffer: _Buffer, everything: bool = False) -> None:
        """Load the buffer (for a stream that replaces its data: only what a STATE covers)."""
        if not buffer.records:
            return
        whole = everything or not buffer.loader.replaces or buffer.covered == len(buffer.records)
        first = buffer.first_line
        assert first is not None
        if whole:
            records, size = buffer.records, buffer.bytes
            buffer.records = []
            buffer.first_line = None
        else:
            if buffer.covered == 0:
                return
            records, size = buffer.records[: buffer.covered], buffer.covered_bytes
            buffer.records = buffer.records[buffer.covered :]
            buffer.first_line, buffer.first_time = buffer.tail_line, buffer.tail_time
        buffer.bytes -= size
        self.buffered_bytes -= size
        buffer.covered = buffer.covered_bytes = 0
        loader = buffer.loader
        parts = None if self.prefetch is None else self.prefetch.start(loader.prepare(records))

        def load() -> None:
            try:
                loader.load(records, parts)
            finally:
                if parts is not None:
                    parts.cancel()  # a failed load releases the builder

        job = self.loads.submitted + 1
        buffer.loading.append((job, first))
        number = self._submit(load)
        assert number == job
        self._echo_ready()

    def _collect(self) -> None:
        """Note the loads that committed; echo the states they release."""
        done = self.loads.finished()
        if not done:
            return
        last = done[-1]
        for buffer in self.buffers.values():
            while buffer.loading and buffer.loading[0][0] <= last:
                buffer.loading.popleft()
        self._echo_ready()

    def _settle(self) -> None:
        """Wait for every load asked for; echo what they release."""
        self.loads.wait()
        self._collect()

    def _drop_tail(self, buffer: _Buffer) -> None:
        """Forget the records after the stream's last STATE (a refresh that did not complete)."""
        if buffer.loader.replaces and buffer.records:
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
        limit = time.monotonic() - self.settings.flush_seconds
        old_state = bool(self.pending) and self.pending[0].arrived <= limit
        old_record = any(b.first_line is not None and b.first_time <= limit for b in self.buffers.values())
        if old_state or old_record:
            self._flush_all()

    def _echo_ready(self) -> None:
        wrote = False
        while self.pending:
            head = self.pending[0]
            if any(
                (b.first_line is not None and b.first_line < head.line)
                or (b.loading and b.loading[0][1] < head.line)
                for b in head.streams
            ):
                break
            self.pending.popleft()
            self.writer.write(msg.echo_state(head.payload, head.count))
            self.echoed += 1
            wrote = True
        if wrote:
            self.writer.flush()

    # ------------------------------------------------------------------ end of input
    def finish(self) -> None:
        self._flush_all()
        self._settle()
        for buffer in self.buffers.values():
            if buffer.status != "COMPLETE":
                self._drop_tail(buffer)
        self._echo_ready()
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


def _read_chunks(source: BinaryIO, out: queue.Queue[Any], stop: threading.Event) -> None:
    """Reader thread: put lists of whole lines (as soon as any are available), then ``_END``; an
    exception reading the input is put instead, for the consumer to raise."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    read1 = getattr(source, "read1", None)
    try:
        if read1 is None:  # no partial reads: line by line
            for line in source:
                if not put([line]):
                    return
        else:
            partial: list[bytes] = []  # the start of a line not ended yet
            while True:
                data = read1(CHUNK_BYTES)
                if not data:
                    break
                if b"\n" not in data:
                    partial.append(data)
                    continue
                if partial:
                    partial.append(data)
                    data = b"".join(partial)
                lines = data.split(b"\n")
                last = lines.pop()
                partial = [last] if last else []
                if not put(lines):
                    return
            if partial and not put([b"".join(partial)]):
                return
    except BaseException as exc:  # handed to the consumer thread
        put(exc)
        return
    put(_END)
