"""A sync's live counters (:class:`SyncProgress`, one :class:`StreamProgress` per stream) and the
:class:`SyncObserver` interface through which the runner tells a display what happens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from dbkit.protocol import DestinationSyncMode, StreamDescriptor, SyncMode
from dbkit.runner.errors import SyncError


@dataclass(eq=False)
class StreamProgress:
    """Live counters of one stream; each field is written by one thread only (no locks needed)."""

    descriptor: StreamDescriptor
    sync_mode: SyncMode
    destination_sync_mode: DestinationSyncMode
    generation_id: int
    records_read: int = 0
    records_acknowledged: int = 0
    row_estimate: int | None = None
    status: str | None = None  # STARTED / COMPLETE / INCOMPLETE as the source reported
    started_at: float | None = None
    ended_at: float | None = None
    states_sent: int = 0
    states_acknowledged: int = 0
    finished: bool = False

    @property
    def name(self) -> str:
        return str(self.descriptor)

    @property
    def mode(self) -> str:
        """``incremental dedup``, ``full refresh overwrite``, ..."""
        dest = self.destination_sync_mode.value.replace("append_dedup", "dedup")
        return f"{self.sync_mode.value.replace('_', ' ')} {dest}"

    def seconds(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else (now or time.monotonic())
        return max(0.0, end - self.started_at)

    @property
    def outcome(self) -> str:
        """The stream's result for people: complete / incomplete / not loaded / not started."""
        if self.finished:
            return "complete"
        if self.status == "COMPLETE":
            return "not acknowledged"
        if self.status == "INCOMPLETE":
            return "incomplete"
        if self.status is None:
            return "not started"
        return "interrupted"


@dataclass
class SyncProgress:
    """Everything a display needs, updated while the sync runs."""

    sync_id: int
    streams: list[StreamProgress]
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    global_states_sent: int = 0
    global_states_acknowledged: int = 0
    global_records_acknowledged: int = 0
    errors: list[SyncError] = field(default_factory=list)
    warnings: list[SyncError] = field(default_factory=list)
    """Problems that followed from a requested stop (the destination's input ended early, a
    connector stopped by the runner): shown as warnings, not errors."""
    source_exit: int | None = None
    destination_exit: int | None = None
    interrupted_by: str | None = None
    """``SIGINT``, ``SIGTERM`` or ``SIGHUP`` when the sync was asked to stop (see
    :mod:`dbkit.runner.interrupt`); None otherwise."""

    @property
    def records_read(self) -> int:
        return sum(s.records_read for s in self.streams)

    @property
    def records_acknowledged(self) -> int:
        return sum(s.records_acknowledged for s in self.streams) + self.global_records_acknowledged

    def seconds(self) -> float:
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return max(0.0, end - self.started_at)

    @property
    def ok(self) -> bool:
        return (
            self.interrupted_by is None
            and not self.errors
            and self.source_exit == 0
            and self.destination_exit == 0
            and all(s.finished for s in self.streams)
        )

    def stream(self, name: str) -> StreamProgress:
        return next(s for s in self.streams if s.name == name)


class SyncObserver(Protocol):
    """What the runner tells its display; every method may be called from any thread."""

    def phase(self, text: str) -> None: ...

    def log(self, origin: str, level: str, text: str, stack_trace: str | None = None) -> None: ...

    def started(self, progress: SyncProgress) -> None: ...

    def stream_status(self, stream: StreamProgress, status: str) -> None: ...

    def error(self, error: SyncError) -> None: ...

    def finished(self, progress: SyncProgress) -> None: ...


class QuietObserver:
    """An observer that shows nothing (for library use and tests)."""

    def phase(self, text: str) -> None:
        pass

    def log(self, origin: str, level: str, text: str, stack_trace: str | None = None) -> None:
        pass

    def started(self, progress: SyncProgress) -> None:
        pass

    def stream_status(self, stream: StreamProgress, status: str) -> None:
        pass

    def error(self, error: SyncError) -> None:
        pass

    def finished(self, progress: SyncProgress) -> None:
        pass


def report_error(progress: SyncProgress, observer: SyncObserver, error: SyncError) -> None:
    """Keep ``error`` in the sync's record and show it; once a stop was requested, a transient
    error (the destination's input ended before the streams completed, a connection dropped) is
    what stopping does: it is kept and shown as a warning."""
    if progress.interrupted_by is not None and error.failure_type == "transient_error":
        report_warning(progress, observer, error)
        return
    progress.errors.append(error)
    observer.error(error)


def report_warning(progress: SyncProgress, observer: SyncObserver, error: SyncError) -> None:
    """Keep ``error`` as a warning (a consequence of a requested stop) and show it as one."""
    progress.warnings.append(error)
    where = f" [stream {error.stream}]" if error.stream else ""
    observer.log(error.origin, "WARN", f"{error.message}{where} (after {progress.interrupted_by})")
