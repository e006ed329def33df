"""The input reader: the write's stdin as lists of lines (read on a thread of its own), and the
general path that parses a line the consumer's fast RECORD path could not read.

RECORD lines are read by msgspec (:mod:`dbkit.destination.records`) without building a Python
object per value; :func:`parse_message` reads every other line exactly
(:func:`~dbkit.protocol.jsonio.loads_exact`) and says what is wrong with a line that is not a
message.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from dbkit.destination.records import loads_lenient
from dbkit.errors import SystemFailure
from dbkit.protocol.arrow import FRAME_PREFIX, FrameError, parse_header
from dbkit.protocol.jsonio import loads_exact

CHUNK_BYTES = 1 << 20
QUEUED_CHUNKS = 8
QUEUED_FRAME_BYTES = 64 << 20
"""The most an input with frames holds read ahead of the consumer (a frame may be tens of MB:
eight queued items would be hundreds); one item larger than this is queued alone."""
_END = object()


class _Budget:
    """Bytes queued and not yet taken by the consumer, at most ``limit`` (or one item)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._changed = threading.Condition()

    def take(self, size: int, stop: threading.Event) -> bool:
        """Wait until ``size`` more bytes fit; False when ``stop`` is set meanwhile."""
        with self._changed:
            while self.used and self.used + size > self.limit:
                if stop.is_set():
                    return False
                self._changed.wait(0.1)
            self.used += size
            self.peak = max(self.peak, self.used)
        return True

    def give(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


class InputError(SystemFailure):
    """The input stream is not a valid Airbyte message stream for this catalog."""


class BadLine(ValueError):
    """A line is not an Airbyte message (the text says why)."""


_KINDS = {dict: "an object", list: "an array", bool: "a boolean", type(None): "null", str: "a string"}


def shown(value: Any, longest: int = 60) -> str:
    """An input value for a message: a string quoted and cut to ``longest`` characters, anything
    else by its JSON kind (never the repr of a value that may be megabytes long or nested
    100,000 levels deep)."""
    if isinstance(value, str):
        return repr(value if len(value) <= longest else value[:longest] + "...")
    return _KINDS.get(type(value), "a number")


def parse_message(line: bytes) -> dict[str, Any] | None:
    """The message on a line (None for a blank line); raises :class:`BadLine`. A RECORD whose
    strings hold text no database stores (a lone surrogate escape such as ``"\\ud800"``, which
    JSON's grammar allows, or invalid UTF-8) is kept, for casting to repair the value and record
    the change; any other unreadable line is an error."""
    if not line.strip():
        return None
    try:
        message = loads_exact(line)
    except ValueError as exc:
        message = _lenient_record(line)
        if message is None:
            raise BadLine(f"not valid JSON ({exc})") from None
    if not isinstance(message, dict):
        raise BadLine("a message must be a JSON object")
    return message


def _lenient_record(line: bytes) -> dict[str, Any] | None:
    try:
        message = loads_lenient(line)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "RECORD":
        return message
    return None


class InputReader:
    """Reads ``source`` on a thread; :meth:`chunks` hands the lines over as they arrive.

    With ``frames`` (the Arrow transport, :mod:`dbkit.protocol.arrow`) a frame is handed over as
    one item: its header line, the newline, and its body."""

    def __init__(self, source: BinaryIO, frames: bool = False) -> None:
        self.source = source
        self.frames = frames
        self.budget = _Budget(QUEUED_FRAME_BYTES)

    def chunks(self, timeout: Callable[[], float | None]) -> Iterator[list[bytes] | None]:
        """Lists of input lines as they arrive; None whenever nothing arrived within
        ``timeout()`` seconds (None: wait for input), so the caller can flush and echo on time
        while the input is idle. Called once; the reader thread stops when the iterator is
        closed."""
        lines: queue.Queue[Any] = queue.Queue(maxsize=QUEUED_CHUNKS)
        stop = threading.Event()
        budget = self.budget
        if self.frames:
            reader = threading.Thread(
                target=_read_frames, args=(self.source, lines, stop, budget), daemon=True
            )
        else:
            reader = threading.Thread(target=_read_chunks, args=(self.source, lines, stop), daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = lines.get(timeout=timeout())
                except queue.Empty:
                    yield None
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if type(item) is tuple:  # (bytes, items) of the frames reader
                    budget.give(item[0])
                    item = item[1]
                yield item
        finally:
            stop.set()


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

    # a raw file reads what is there, like a buffered reader's read1
    read1 = source.read if isinstance(source, io.RawIOBase) else getattr(source, "read1", None)
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


_FRAME_AFTER_LINE = b"\n" + FRAME_PREFIX


def _read_frames(source: BinaryIO, out: queue.Queue[Any], stop: threading.Event, budget: _Budget) -> None:
    """Reader thread of an input with Arrow frames: lists of whole lines and whole frames, each
    list queued as (its bytes, it) within ``budget``."""

    def put_items(items: list[bytes]) -> bool:
        size = sum(map(len, items))
        return budget.take(size, stop) and put((size, items))

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    read1 = getattr(source, "read1", source.read)
    try:
        buffer = b""
        while True:
            data = read1(CHUNK_BYTES)
            if not data:
                break
            buffer = buffer + data if buffer else data
            items: list[bytes] = []
            pos = 0
            while True:
                if buffer.startswith(FRAME_PREFIX, pos):
                    start = pos
                else:
                    hit = buffer.find(_FRAME_AFTER_LINE, pos)
                    if hit < 0:  # whole lines only
                        end = buffer.rfind(b"\n", pos)
                        if end >= pos:
                            items.extend(buffer[pos:end].split(b"\n"))
                            pos = end + 1
                        break
                    items.extend(buffer[pos:hit].split(b"\n"))  # the lines before the frame
                    start = pos = hit + 1
                newline = buffer.find(b"\n", start)
                if newline < 0:
                    pos = start
                    break  # the header goes on in the next read
                size = parse_header(buffer[start:newline]).bytes
                end = newline + 1 + size
                if end > len(buffer):  # the rest of the body, at once
                    rest = _read_exactly(source, end - len(buffer))
                    buffer = buffer + rest
                items.append(buffer[start:end])
                pos = end
            buffer = buffer[pos:]
            if items and not put_items(items):
                return
        if buffer and not put_items([buffer]):
            return
    except FrameError as exc:
        put(InputError(f"an Arrow frame of the input: {exc}; nothing after it was loaded"))
        return
    except BaseException as exc:  # handed to the consumer thread
        put(exc)
        return
    put(_END)


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    parts = []
    while size > 0:
        part = source.read(size)
        if not part:
            raise FrameError(f"the input ended inside a frame ({size} bytes missing)")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)
