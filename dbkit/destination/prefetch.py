"""Build the parts of upcoming loads on a thread of their own, ahead of the loads.

A load is CPU work in the connector (records -> typed parts) followed by work in the database
(the last part's COPY draining, a MERGE, the commit) during which the connector's loading thread
only waits. With a :class:`Prefetcher`, one thread builds the parts of every load in the order
the loads were asked for, each into a small bounded queue the load reads from: while the
database finishes one load, the parts of the next one are being built.

Memory stays bounded: the builder runs at most ``ahead`` parts ahead of the load reading them,
and starts a load's parts only once every part of the previous load is built.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

from dbkit.errors import SystemFailure
from dbkit.threads import context_thread

T = TypeVar("T")
AHEAD = 10
"""Parts built and waiting per load (10 parts of 5,000 rows: one batch of the default size)."""
_WAIT = 0.1
_DONE = object()


class Prefetched(Generic[T]):
    """The parts of one load, in order, as the builder thread makes them (an iterator).

    A load that stops reading early (it failed) calls :meth:`cancel`, which releases the
    builder for the loads after it."""

    def __init__(self, parts: Iterator[T], ahead: int, stop: threading.Event) -> None:
        self._parts = parts
        self._queue: queue.Queue[object] = queue.Queue(maxsize=ahead)
        self._stop = stop
        self._cancelled = False
        self._ended = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._ended:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=_WAIT)
                break
            except queue.Empty:
                if self._stop.is_set():
                    raise SystemFailure("the write stopped before this load's parts were built") from None
        if item is _DONE:
            self._ended = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._ended = True
            raise item.error
        return item  # type: ignore[return-value]

    def cancel(self) -> None:
        self._cancelled = True

    def _build(self) -> None:
        """Builder thread: every part, then the end (or the builder's error)."""
        try:
            for part in self._parts:
                if not self._put(part):
                    return
        except BaseException as exc:  # handed to the load, which raises it
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not (self._stop.is_set() or self._cancelled):
            try:
                self._queue.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher:
    """One builder thread for the loads of a write; ``close()`` stops it."""

    def __init__(self, ahead: int = AHEAD) -> None:
        self.ahead = ahead
        self._stop = threading.Event()
        self._pending: deque[Prefetched[object]] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self, parts: Iterator[T]) -> Prefetched[T]:
        """Queue ``parts`` to be built after those of the loads started before."""
        prefetched: Prefetched[T] = Prefetched(parts, self.ahead, self._stop)
        with self._wake:
            self._pending.append(prefetched)  # type: ignore[arg-type]
            self._wake.notify()
        if self._thread is None:
            self._thread = context_thread(self._run, name="dbkit-build")
            self._thread.start()
        return prefetched

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set():
                    return
                current = self._pending.popleft()
            current._build()

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
