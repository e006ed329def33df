"""Stopping a sync from outside: Ctrl-C (SIGINT), SIGTERM and SIGHUP, or :meth:`Interrupt.request`.

A stop request never raises in the middle of the sync's work (a half-written line to the
destination would be an error of its own). It only sets flags that the sync acts on:

1. the pump stops at the source's next STATE message, so that the destination receives no
   record that no state covers; a source that sends none within :data:`SOURCE_GRACE_SECONDS`
   (blocked in a long query, say) is stopped (its process group gets SIGTERM);
2. the source is stopped, the destination's input is closed: it commits what it received and
   echoes the last states, which the runner saves to the state file, and exits;
3. a second request stops the destination too (SIGTERM, then SIGKILL after
   :data:`dbkit.runner.launch.STOP_GRACE_SECONDS`).

The command's exit code after a stop is 128 + the signal's number, as shells report a process
ended by a signal: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.

Signal handlers can only be set in the main thread (:func:`stop_signals`); a library caller in
another thread calls :meth:`Interrupt.request` instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from dbkit.runner.launch import STOP_GRACE_SECONDS, Launcher
from dbkit.runner.progress import SyncObserver, SyncProgress

SOURCE_GRACE_SECONDS = 3.0
"""How long the pump waits for the source's next STATE after a stop request before it stops the
source (whatever the source sent meanwhile is forwarded; the destination drops what no state
covers)."""

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class SyncInterrupted(KeyboardInterrupt):
    """The sync was stopped (by ``signum``) before any data moved: nothing to show but that."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Interrupt:
    """A request to stop a sync, made by a signal handler or by any thread.

    Safe to call from a signal handler: :meth:`request` only sets :class:`threading.Event` s
    that no code of the main thread waits on (a handler runs in the main thread, between two of
    its bytecodes, and must never wait for a lock that thread may hold).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.first = threading.Event()
        self.again = threading.Event()

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask the sync to stop (the first time) or to stop at once (any later time)."""
        if self.first.is_set():
            self.again.set()
            return
        self.signum = signum
        self.first.set()

    @property
    def requested(self) -> bool:
        return self.first.is_set()

    @property
    def name(self) -> str:
        """``SIGINT``, ``SIGTERM``, ...; empty when no stop was requested."""
        return signal_name(self.signum) if self.signum is not None else ""

    @property
    def shown(self) -> str:
        """The stop as people know it: ``Ctrl-C (SIGINT)``, ``SIGTERM``."""
        if self.signum is None:
            return ""
        return "Ctrl-C (SIGINT)" if self.signum == signal.SIGINT else self.name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT); 0 when no stop was requested."""
        return 128 + self.signum if self.signum is not None else 0

    def check(self) -> None:
        """Raise :class:`SyncInterrupted` when a stop was requested (between two steps)."""
        if self.signum is not None:
            raise SyncInterrupted(self.signum)


@contextlib.contextmanager
def stop_signals(interrupt: Interrupt) -> Iterator[Interrupt]:
    """SIGINT, SIGTERM and SIGHUP request ``interrupt`` while inside (the previous handlers are
    restored after). Outside the main thread, where Python cannot set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupt.request(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield interrupt
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


class Stopper:
    """Acts on an :class:`Interrupt` while a sync runs, in a thread of its own (a signal handler
    must not wait): while connectors are checked and discovered, a stop ends their commands;
    once data moves (:meth:`transfer`), it stops the source when the pump has not stopped at a
    STATE within :data:`SOURCE_GRACE_SECONDS`, and on a second request stops the destination
    too, killing what has not exited :data:`~dbkit.runner.launch.STOP_GRACE_SECONDS` later.

    Call :meth:`close` when the sync ends (it joins the thread).
    """

    POLL_SECONDS = 0.05

    def __init__(self, interrupt: Interrupt, observer: SyncObserver) -> None:
        self.interrupt = interrupt
        self.observer = observer
        self.launchers: list[Launcher] = []
        self.source: Launcher | None = None
        self.progress: SyncProgress | None = None
        self.pumped = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbkit-sync-stopper", daemon=True)
        self._thread.start()

    def watch(self, launcher: Launcher) -> None:
        """Stop the commands of ``launcher`` on a request (called as each is created)."""
        self.launchers.append(launcher)

    def transfer(self, source: Launcher, progress: SyncProgress) -> None:
        """Data starts moving: from now on a first request lets the pump stop at a STATE."""
        self.progress = progress
        self.source = source

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        interrupt = self.interrupt
        while not interrupt.first.wait(self.POLL_SECONDS):
            if self._closed.is_set():
                return
        progress = self.progress
        if progress is None:  # nothing moved yet: end the checks and discovery at once
            for launcher in self.launchers:
                launcher.terminate_all()
        else:
            progress.interrupted_by = interrupt.name
            self.observer.phase(
                f"{interrupt.shown}: stopping at the source's next checkpoint; the destination "
                "commits what it received and everything it acknowledges is saved "
                "(signal again to stop at once)"
            )
        source_deadline = time.monotonic() + SOURCE_GRACE_SECONDS
        kill_at: float | None = None
        while not self._closed.wait(self.POLL_SECONDS):
            now = time.monotonic()
            if self.source is not None and not self.pumped.is_set() and now >= source_deadline:
                self.observer.log("sync", "INFO", "the source sent no checkpoint in time: stopping it")
                self.source.terminate_all()
                source_deadline = float("inf")
            if interrupt.again.is_set() and kill_at is None:
                self.observer.phase(f"{interrupt.shown} again: stopping the connectors now")
                for launcher in self.launchers:
                    launcher.terminate_all()
                kill_at = now + STOP_GRACE_SECONDS
            if kill_at is not None and now >= kill_at:
                for launcher in self.launchers:
                    launcher.kill_all()
                kill_at = float("inf")
