"""Buffered, thread-safe writer of protocol lines to stdout (or any binary stream)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import BinaryIO


class OutputClosedError(Exception):
    """The reading end of our stdout went away (the platform or the destination stopped)."""


class MessageWriter:
    """Writes newline-terminated protocol lines.

    Lines from several threads never interleave: each call writes whole lines under a lock.
    ``flush()`` is called after STATE messages by the framework, so a platform sees progress
    promptly while records still go out in large writes.
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out: BinaryIO = stream if stream is not None else sys.stdout.buffer
        self._lock = threading.Lock()
        self.bytes_written = 0

    def write(self, line: bytes) -> None:
        with self._lock:
            self._write(line)

    def write_lines(self, lines: Iterable[bytes]) -> None:
        chunk = b"".join(lines)
        if chunk:
            with self._lock:
                self._write(chunk)

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except BrokenPipeError as exc:
            raise OutputClosedError("the reader of our output closed it") from exc
        self.bytes_written += len(data)

    def flush(self) -> None:
        with self._lock:
            try:
                self._out.flush()
            except BrokenPipeError as exc:
                raise OutputClosedError("the reader of our output closed it") from exc
