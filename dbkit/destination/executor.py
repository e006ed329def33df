"""The load executor: runs a write's load jobs in the order they were asked for, inline or on
worker threads (``background``), one per *lane* (a lane is a database connection of the write).

A job is either *ordered* (the default: it starts once every job before it has finished, runs
alone, on lane 0, and no job after it starts before it ends) or *shared* (``shared=True``: it
may run beside the shared jobs around it, each on a lane of its own). Plain appends are shared:
two loads into one table on two connections do not collide, and the database then works on both
at once. Merges, swaps and anything that depends on what the loads before it committed are
ordered.

Shared jobs commit in order: a shared job sends its rows beside the job before it, then waits
(:meth:`Slot.wait_turn`, just before its commit) until every job before it has finished, and
rolls back if one failed. So whenever the write stops (a failure, a SIGKILL), what is committed
is the loads up to some point, never a later load without an earlier one: a rerun from the last
echoed STATE loads each row once. Completion is reported in order too
(:meth:`LoadExecutor.finished` names a job once every job before it has finished).

A shared job waiting for its turn holds what its statements locked. Should the job before it
wait for one of those locks (a trigger that updates one row per load, a lock request of another
session queued between the two), neither would finish, and the database cannot see the cycle:
so a job waits for its turn only so long (``patience``), then rolls back, waits with nothing
held, and loads again (:class:`TurnTimeout`; :meth:`StreamLoader.load
<dbkit.destination.loader.StreamLoader.load>`). A loader declares its loads shared only where
such waits are not to be expected (:attr:`~dbkit.destination.loader.StreamLoader.shared_loads`).

When the write stops (:meth:`LoadExecutor.abort`), no queued job starts any more; the running
ones finish, in order, and :meth:`LoadExecutor.committed` tells which did.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dbkit.threads import context_thread

POLL_SECONDS = 0.05
"""How often the consumer looks at the loads while some run in the background."""
WAITING = 1
"""Jobs queued behind the running ones at most (a job holds a batch: this bounds memory)."""


class Abandoned(Exception):
    """Raised by :meth:`Slot.wait_turn` when a job before this one failed: roll back."""


class TurnTimeout(Exception):
    """Raised by :meth:`Slot.wait_turn` when the jobs before this one did not finish within its
    patience: roll back (releasing what the earlier job may be waiting for), then wait for the
    turn holding nothing, and run again."""


class Slot:
    """What a running job is given: its ``lane`` (the connection index it runs on), and
    :meth:`wait_turn`."""

    def __init__(self, executor: LoadExecutor | None, number: int, lane: int) -> None:
        self._executor = executor
        self.number = number
        self.lane = lane
        self.started = time.monotonic()
        self.sent: float | None = None
        """Seconds the job took to reach its commit point (set by the job, for its own use)."""

    def wait_turn(self, patience: float | None = None) -> None:
        """Return once every job before this one has finished (call it just before committing);
        raise :class:`Abandoned` if one of them failed, :class:`TurnTimeout` if they have not
        finished after ``patience`` seconds (None: wait as long as it takes)."""
        if self._executor is not None:
            self._executor._wait_turn(self.number, patience)


Job = Callable[[Slot], None]
"""A load job: called with its :class:`Slot`."""


@dataclass
class _Queued:
    number: int
    job: Job
    shared: bool


class LoadExecutor:
    """Runs load jobs (see the module doc): inline, or on one worker thread per lane
    (``background``; ``lanes`` > 1 only matters for shared jobs), where at most ``WAITING`` jobs
    wait behind the running ones (which bounds memory: ``lanes + WAITING`` batches in flight).

    ``submit`` returns a job number; ``finished()`` tells the jobs completed since the last call,
    in order, each once every job before it is complete; ``wait()`` returns once every submitted
    job is done. A failed job's exception is raised by the next ``submit``/``finished``/``wait``,
    and no job starts after it (shared jobs already running finish). ``close()`` (once, at the
    end of the write) waits for the running jobs and stops the threads.
    """

    def __init__(self, background: bool, lanes: int = 1) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self.background = background
        self.lanes = lanes if background else 1
        self.submitted = 0
        self._cond = threading.Condition()
        self._waiting: deque[_Queued] = deque()
        self._running: dict[int, bool] = {}  # job number -> shared
        self._completed: set[int] = set()
        self._reported = 0
        self._error: BaseException | None = None
        self._failed: int | None = None  # the lowest number of a failed job
        self._closing = False
        self._threads: list[threading.Thread] = []

    def submit(self, job: Job, shared: bool = False) -> int:
        """Queue ``job`` (inline: run it now, on lane 0); its number."""
        self._raise()
        number = self.submitted + 1
        if not self.background:
            job(Slot(None, number, 0))
            self.submitted = number
            with self._cond:
                self._completed.add(number)
            return number
        with self._cond:
            while len(self._waiting) >= WAITING and self._error is None and not self._closing:
                self._cond.wait()
            self._raise()
            if self._closing:
                raise RuntimeError("the loads were stopped: no load may be queued any more")
            self._waiting.append(_Queued(number, job, shared))
            self.submitted = number
            if not self._threads:
                for lane in range(self.lanes):
                    thread = context_thread(self._work, name=f"dbkit-loads-{lane}", args=(lane,))
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify_all()
        return number

    def _startable(self, lane: int) -> bool:
        """The head of the queue may start now on ``lane`` (called holding the lock)."""
        if not self._waiting or self._error is not None:
            return False
        if self._waiting[0].shared:
            return all(self._running.values())  # no ordered job runs
        return lane == 0 and not self._running

    def _work(self, lane: int) -> None:
        while True:
            with self._cond:
                while not self._startable(lane):
                    if self._closing:
                        return
                    self._cond.wait()
                item = self._waiting.popleft()
                self._running[item.number] = item.shared
                self._cond.notify_all()  # room in the queue
            error: BaseException | None = None
            try:
                item.job(Slot(self, item.number, lane))
            except BaseException as exc:  # handed to the consumer thread
                error = exc
            with self._cond:
                del self._running[item.number]
                if error is None:
                    self._completed.add(item.number)
                else:
                    self._waiting.clear()  # never started
                    if self._failed is None or item.number < self._failed:
                        # the earliest load's failure is the one to report (a later one may
                        # only have been abandoned, or failed for a reason of its own)
                        self._failed, self._error = item.number, error
                self._cond.notify_all()

    def _wait_turn(self, number: int, patience: float | None) -> None:
        deadline = None if patience is None else time.monotonic() + patience
        with self._cond:
            while True:
                if self._failed is not None and self._failed < number:
                    raise Abandoned(f"load {number} rolled back: a load before it failed")
                if not any(other < number for other in self._running):  # jobs start in order
                    return
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TurnTimeout(f"load {number} waited {patience:.1f} s for the loads before it")
                self._cond.wait(remaining)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def committed(self) -> list[int]:
        """The numbers of the jobs completed since the last call (of this or :meth:`finished`),
        in order; a job is named once it and every job before it are complete."""
        done = []
        with self._cond:
            while self._reported + 1 in self._completed:
                self._reported += 1
                self._completed.discard(self._reported)
                done.append(self._reported)
        return done

    def finished(self) -> list[int]:
        """:meth:`committed`; when none is and a job failed, raise its exception (a job that
        completed is always named first)."""
        done = self.committed()
        if not done:
            self._raise()
        return done

    def abort(self) -> None:
        """The write stops: the queued jobs are dropped, no job starts any more; the running ones
        finish (see :meth:`wait`)."""
        with self._cond:
            self._waiting.clear()
            self._closing = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        """A job is queued or running."""
        return bool(self._running or self._waiting)

    def _pending(self) -> bool:
        return bool(self._running) or (bool(self._waiting) and self._error is None)

    def wait(self, raise_failure: bool = True) -> None:
        """Return once every submitted job is done (raise the first failure, unless told not to)."""
        with self._cond:
            while self._pending():
                self._cond.wait()
        if raise_failure:
            self._raise()

    def close(self) -> None:
        """Wait for the running jobs and stop the worker threads; idempotent."""
        with self._cond:
            while self._pending():
                self._cond.wait()
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []
