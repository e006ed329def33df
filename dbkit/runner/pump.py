"""The pump: the source's stdout forwarded to the destination's stdin, as a platform does.

RECORD, STATE and STREAM_STATUS lines go to the destination byte for byte (records are never
re-serialized: their stream is found from the envelope's first bytes); LOG and other TRACE lines
go to the observer; TRACE ERRORs are collected; TRACE ESTIMATEs feed the progress display.

From a binary file the pump reads blocks, not lines: a run of whole RECORD lines of one stream
(those that start with the same envelope head) is found by one regular-expression search for the
first line that does not, counted by one ``count`` of its line breaks and forwarded by one write.
Only the other lines (STATE, TRACE, LOG, frames, a record in another form) are looked at one by
one, and so is the rest of a block where runs of one line follow each other (streams that
alternate, as a CDC source's may). A head is matched within its own line (a stream's name is a
JSON string: no raw line break), a line longer than a block is read in pieces searched once each,
and the bytes forwarded, the counts and the messages are those of the line-by-line loop, which
still takes an output without ``read1`` (``tests/runner/test_pump.py`` compares the two).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import orjson

from dbkit.protocol import StreamDescriptor
from dbkit.protocol.arrow import FRAME_PREFIX, FrameError, FrameHeader, parse_header
from dbkit.runner.errors import SyncError
from dbkit.runner.output import parse_line, read_message, report_trace_error, show_log
from dbkit.runner.progress import StreamProgress, SyncObserver, SyncProgress, report_error

_RECORD_PREFIX = b'{"type":"RECORD"'
_JSON_STRING = rb'("[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*")'
"""A JSON string: no raw control character (so never a line break), only JSON's escapes."""
_RECORD_HEAD = re.compile(
    rb'\{"type":"RECORD","record":\{"stream":' + _JSON_STRING + rb'(?:,"namespace":' + _JSON_STRING + rb")?"
)


class _Unreadable:
    """The stream of a head whose name JSON does not read (a lone surrogate's escape)."""


_UNREADABLE = _Unreadable()


BLOCK = 1 << 20
"""The most the pump reads from the source at once (a pipe gives what it holds)."""
_SINGLES = 16
"""After this many runs of one line in a row, the rest of the block is taken line by line."""


class _DestinationGone(Exception):
    pass


class _Stopped(Exception):
    pass


def _other_line(head: bytes, m: re.Match[bytes]) -> re.Pattern[bytes]:
    """A pattern that finds the first line break not followed by a record of ``head``'s stream
    (the line break before the first line of anything else)."""
    if m.group(2) is not None:
        return re.compile(rb"\n(?!" + re.escape(head) + rb"[,}])")
    # a head without a namespace is also the start of its stream's heads with one (a null
    # namespace is none: such a line's head is this one)
    return re.compile(rb"\n(?!" + re.escape(head) + rb'(?!,"namespace":")[,}])')


class Pump:
    """Forwards a source's output to a destination's input; call :meth:`run` once.

    ``source_out`` yields the source's stdout lines, or is a binary file (read in blocks: the
    module's doc); ``dest_in`` receives RECORD, STATE and STREAM_STATUS lines unchanged.
    With ``frames`` (the Arrow transport, :mod:`dbkit.protocol.arrow`) a line that starts a
    frame is forwarded with its body (read from ``source_out``, which must then be a binary
    file), and counts as the records its header says.

    Once ``stop`` is set (a stop was requested, :mod:`dbkit.runner.interrupt`) the pump returns
    after forwarding the source's next STATE (:attr:`stopped`), so that the destination gets no
    record that no state covers; the end of a source stopped meanwhile (a line or a frame cut
    short) is dropped without a word.
    """

    def __init__(
        self,
        source_out: Iterable[bytes],
        dest_in: IO[bytes],
        progress: SyncProgress,
        observer: SyncObserver,
        frames: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.frames = frames
        self.stop = stop or threading.Event()
        self.stopped = False
        self.source_out = source_out
        self.dest_in = dest_in
        self.progress = progress
        self.observer = observer
        self.by_descriptor = {s.descriptor: s for s in progress.streams}
        self.by_head: dict[bytes, StreamProgress | _Unreadable | None] = {}
        self.run_ends: dict[bytes, re.Pattern[bytes]] = {}  # by head: see _other_line
        self.destination_gone = False
        self.broken = False

    def run(self) -> None:
        read1 = getattr(self.source_out, "read1", None)
        try:
            if read1 is not None:
                self._run_blocks(read1)
            else:
                self._lines(self.source_out)
        except _Stopped:
            self.stopped = True
        except (BrokenPipeError, ConnectionResetError, _DestinationGone):
            self.destination_gone = True  # the destination stopped reading its input
        except FrameError as exc:  # the source's output cannot be read on: stop the source
            self.broken = True
            if self.stop.is_set():  # a frame cut short by the stop
                self.observer.log("source", "DEBUG", f"output after the stop dropped: {exc}")
                return
            report_error(self.progress, self.observer, SyncError("source", f"unreadable output: {exc}"))

    def _run_blocks(self, read1: Callable[[int], bytes]) -> None:
        """The source's output read in blocks; see the module's doc."""
        write = self.dest_in.write
        buf = b""
        pos = 0
        singles = 0  # runs of one line in a row
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:  # no whole line left: read on, each piece searched once
                pieces = [buf[pos:]] if pos < len(buf) else []
                while True:
                    data = read1(BLOCK)
                    if not data or b"\n" in data:
                        break
                    pieces.append(data)
                if not data:
                    if pieces:
                        self._last(b"".join(pieces))  # the last line has no line break: cut short
                    return
                buf = b"".join([*pieces, data]) if pieces else data
                pos = 0
                continue
            if buf.startswith(_RECORD_PREFIX, pos):
                end = self._records(buf, pos, nl)
                if end:
                    write(memoryview(buf)[pos:end])
                    pos = end
                    singles = singles + 1 if end == nl + 1 else 0
                    if singles == _SINGLES:  # streams that alternate: the block's rest line by line
                        singles, pos = 0, self._block_as_lines(buf, pos)
                    continue
            elif self.frames and buf.startswith(FRAME_PREFIX, pos):
                # the frame's body is read whole before any of it is forwarded, without copying
                # the part already read
                header_end = nl + 1
                header = parse_header(buf[pos:header_end])
                body_end = header_end + header.bytes
                rest = self._read_exactly(body_end - len(buf)) if body_end > len(buf) else b""
                view = memoryview(buf)
                self._frame(header, view[pos:header_end], view[header_end:body_end], rest)
                pos = min(body_end, len(buf))
                continue
            self._other(buf[pos : nl + 1])
            pos = nl + 1

    def _block_as_lines(self, buf: bytes, pos: int) -> int:
        """The whole lines of ``buf`` from ``pos`` taken one by one (as from a file without
        ``read1``), unless a frame may be among them; where the block path goes on."""
        end = buf.rindex(b"\n") + 1
        if pos >= end or (self.frames and FRAME_PREFIX in buf[pos:end]):
            return pos
        self._lines(io.BytesIO(memoryview(buf)[pos:end]))
        return end

    def _records(self, buf: bytes, pos: int, nl: int) -> int:
        """The end of the run of whole RECORD lines of one stream that starts at ``pos`` (its
        first line ends at ``nl``; 0 when that line has no envelope head the pump can read); the
        run is counted."""
        m = _RECORD_HEAD.match(buf, pos, nl)
        if m is None:
            return 0
        head = m.group(0)
        try:
            stream = self.by_head[head]
        except KeyError:
            stream = self.by_head[head] = self._stream_for_head(m)
        if isinstance(stream, _Unreadable):
            return 0
        try:
            other = self.run_ends[head]
        except KeyError:
            other = self.run_ends[head] = _other_line(head, m)
        if other.match(buf, nl):  # a run of one line (streams that alternate): no search, no count
            if stream is not None:
                stream.records_read += 1
            return nl + 1
        found = other.search(buf, nl + 1)
        end = found.start() + 1 if found is not None else buf.rindex(b"\n") + 1
        if stream is not None:
            stream.records_read += buf.count(b"\n", pos, end)
        return end

    def _last(self, line: bytes) -> None:
        """The source's last line, which has no line break (cut short, or a frame's header cut)."""
        if self.frames and line.startswith(FRAME_PREFIX):
            self._frame_line(line)  # as the line path takes it: unreadable, or a body cut
        else:
            self._other(line)

    def _read_exactly(self, size: int) -> bytes:
        read = getattr(self.source_out, "read", None)
        if read is None:
            raise FrameError("frames need a binary file as the source's output")
        data: bytes = read(size)
        if len(data) != size:
            raise FrameError("the source's output ended inside a frame")
        return data

    def _lines(self, lines: Iterable[bytes]) -> None:
        """The source's output taken line by line (any iterable of lines)."""
        write = self.dest_in.write
        match = _RECORD_HEAD.match
        by_head = self.by_head
        for line in lines:
            if line.startswith(_RECORD_PREFIX):
                m = match(line)
                if m is not None and line[-1] == 10:  # a whole line (not cut by a killed source)
                    head = m.group(0)
                    try:
                        stream = by_head[head]
                    except KeyError:
                        stream = by_head[head] = self._stream_for_head(m)
                    if not isinstance(stream, _Unreadable):
                        if stream is not None:
                            stream.records_read += 1
                        write(line)
                        continue
            elif self.frames and line.startswith(FRAME_PREFIX):
                self._frame_line(line)
                continue
            self._other(line)

    def _frame_line(self, line: bytes) -> None:
        """A frame whose header ``line`` was taken alone: its body is read from the source."""
        header = parse_header(line)
        self._frame(header, line, self._read_exactly(header.bytes))

    def _frame(self, header: FrameHeader, *parts: bytes | memoryview) -> None:
        """A frame: its header line and body (``parts``) go to the destination as they are."""
        stream = self.by_descriptor.get(StreamDescriptor(header.stream, header.namespace))
        if stream is not None:
            stream.records_read += header.records
        for part in parts:
            if part:
                self.dest_in.write(part)

    def _stream_for_head(self, m: re.Match[bytes]) -> StreamProgress | _Unreadable | None:
        try:
            name = orjson.loads(m.group(1))
            namespace = orjson.loads(m.group(2)) if m.group(2) else None
        except orjson.JSONDecodeError:  # the line goes the general way (a warning)
            return _UNREADABLE
        return self.by_descriptor.get(StreamDescriptor(name, namespace))

    def _forward(self, line: bytes, flush: bool) -> None:
        try:
            self.dest_in.write(line if line.endswith(b"\n") else line + b"\n")
            if flush:
                self.dest_in.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:  # ValueError: closed
            raise _DestinationGone() from exc

    def _stream(self, descriptor: Any) -> StreamProgress | None:
        """The stream of a ``stream_descriptor`` object, None when it is none of the catalog's."""
        if isinstance(descriptor, Mapping) and isinstance(descriptor.get("name"), str):
            ns = descriptor.get("namespace")
            return self.by_descriptor.get(
                StreamDescriptor(descriptor["name"], ns if isinstance(ns, str) else None)
            )
        return None

    def _other(self, line: bytes) -> None:
        if self.stop.is_set() and not line.endswith(b"\n") and not isinstance(parse_line(line), dict):
            self.observer.log("source", "DEBUG", "a line cut short by the stop dropped")
            return
        message = read_message(self.observer, "source", line)
        if message is None:
            return
        kind = message.get("type")
        if kind == "RECORD":
            record = message.get("record")
            if isinstance(record, Mapping):
                stream = self._stream({"name": record.get("stream"), "namespace": record.get("namespace")})
                if stream is not None:
                    stream.records_read += 1
            self._forward(line, False)
        elif kind == "STATE":
            self._state(message.get("state"))
            self._forward(line, True)
            if self.stop.is_set():
                raise _Stopped()
        elif kind == "TRACE":
            self._trace(line, message.get("trace"))
        elif kind == "LOG":
            log = message.get("log")
            if isinstance(log, Mapping):
                show_log(self.observer, "source", log)
        elif kind == "CONTROL":
            self.observer.log(
                "source", "WARN", "CONTROL message ignored (dbkit sync does not update configs)"
            )
        else:
            self.observer.log("source", "DEBUG", f"{kind} message ignored during read")

    def _state(self, state: Any) -> None:
        if not isinstance(state, Mapping):
            return
        if state.get("type") == "GLOBAL":
            self.progress.global_states_sent += 1
            return
        stream_part = state.get("stream")
        stream = (
            self._stream(stream_part.get("stream_descriptor")) if isinstance(stream_part, Mapping) else None
        )
        if stream is not None:
            stream.states_sent += 1

    def _trace(self, line: bytes, trace: Any) -> None:
        if not isinstance(trace, Mapping):
            return
        kind = trace.get("type")
        if kind == "STREAM_STATUS":
            body = trace.get("stream_status")
            if isinstance(body, Mapping):
                stream = self._stream(body.get("stream_descriptor"))
                status = body.get("status")
                if stream is not None and isinstance(status, str):
                    now = time.monotonic()
                    if status == "STARTED" and stream.started_at is None:
                        stream.started_at = now
                    elif status in ("COMPLETE", "INCOMPLETE"):
                        stream.ended_at = now
                    if status != "RUNNING":
                        stream.status = status
                        self.observer.stream_status(stream, status)
            self._forward(line, True)
        elif kind == "ERROR":
            error = trace.get("error")
            if isinstance(error, Mapping):
                report_trace_error(self.progress, self.observer, "source", error)
        elif kind == "ESTIMATE":
            body = trace.get("estimate")
            if isinstance(body, Mapping):
                stream = self._stream(body)
                rows = body.get("row_estimate")
                if stream is not None and isinstance(rows, int) and rows > 0:  # 0: statistics not yet taken
                    stream.row_estimate = rows
        else:
            self.observer.log("source", "DEBUG", f"TRACE {kind} ignored")
