"""The load executor: runs a write's load jobs one after another, in the order they were asked
for, inline or on one worker thread (``background``)."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable

POLL_SECONDS = 0.05
"""How often a caller waiting to queue a job checks whether the running one failed."""


class LoadExecutor:
    """Runs load jobs in order: inline, or on one worker thread (``background``), where at most
    one job waits behind the running one (which bounds memory).

    ``submit`` returns a job number; ``finished()`` tells the jobs completed since the last call;
    ``wait()`` returns once every submitted job is done. A failed job's exception is raised by
    the next ``submit``/``finished``/``wait``, and no job after it runs. ``close()`` (once, at
    the end of the write) waits for the running job and stops the thread.
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
        """Run ``job`` after the jobs submitted before it (inline: now); its number."""
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
        """The numbers of the jobs completed since the last call, in order."""
        done = []
        while self._done:
            done.append(self._done.popleft())
        if self._error is not None:
            self._raise()
        return done

    @property
    def busy(self) -> bool:
        """A job is queued or running."""
        return self._running > 0

    def wait(self) -> None:
        """Return once every submitted job is done (raise the first failure)."""
        with self._idle:
            while self._running:
                self._idle.wait()
        self._raise()

    def close(self) -> None:
        """Wait for the running job and stop the worker thread; idempotent."""
        if self._thread is not None:
            with self._idle:
                while self._running:
                    self._idle.wait()
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
