"""The pump: the source's stdout forwarded to the destination's stdin, as a platform does.

RECORD, STATE and STREAM_STATUS lines go to the destination byte for byte (records are never
re-serialized: their stream is found from the envelope's first bytes); LOG and other TRACE lines
go to the observer; TRACE ERRORs are collected; TRACE ESTIMATEs feed the progress display.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

import orjson

from dbkit.protocol import StreamDescriptor
from dbkit.protocol.arrow import FRAME_PREFIX, FrameError, parse_header
from dbkit.runner.errors import SyncError
from dbkit.runner.output import parse_line, read_message, report_trace_error, show_log
from dbkit.runner.progress import StreamProgress, SyncObserver, SyncProgress, report_error

_RECORD_PREFIX = b'{"type":"RECORD"'
_RECORD_HEAD = re.compile(
    rb'\{"type":"RECORD","record":\{"stream":("(?:[^"\\]|\\.)*")(?:,"namespace":("(?:[^"\\]|\\.)*"))?'
)


class _DestinationGone(Exception):
    pass


class _Stopped(Exception):
    pass


class Pump:
    """Forwards a source's output to a destination's input; call :meth:`run` once.

    ``source_out`` yields the source's stdout lines; ``dest_in`` receives RECORD, STATE and
    STREAM_STATUS lines unchanged. Counting a record costs one regex match and a dict lookup.
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
        self.by_head: dict[bytes, StreamProgress | None] = {}
        self.destination_gone = False
        self.broken = False

    def run(self) -> None:
        write = self.dest_in.write
        match = _RECORD_HEAD.match
        by_head = self.by_head
        try:
            for line in self.source_out:
                if line.startswith(_RECORD_PREFIX):
                    m = match(line)
                    if m is not None and line[-1] == 10:  # a whole line (not cut by a killed source)
                        head = m.group(0)
                        try:
                            stream = by_head[head]
                        except KeyError:
                            stream = by_head[head] = self._stream_for_head(m)
                        if stream is not None:
                            stream.records_read += 1
                        write(line)
                        continue
                elif self.frames and line.startswith(FRAME_PREFIX):
                    self._frame(line)
                    continue
                self._other(line)
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

    def _frame(self, line: bytes) -> None:
        """A frame: its header line and body go to the destination as they are."""
        header = parse_header(line)
        read = getattr(self.source_out, "read", None)
        if read is None:
            raise FrameError("frames need a binary file as the source's output")
        body = read(header.bytes)
        if len(body) != header.bytes:
            raise FrameError(f"the source's output ended inside a frame of {header.bytes} bytes")
        stream = self.by_descriptor.get(StreamDescriptor(header.stream, header.namespace))
        if stream is not None:
            stream.records_read += header.records
        self.dest_in.write(line)
        self.dest_in.write(body)

    def _stream_for_head(self, m: re.Match[bytes]) -> StreamProgress | None:
        name = orjson.loads(m.group(1))
        namespace = orjson.loads(m.group(2)) if m.group(2) else None
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
