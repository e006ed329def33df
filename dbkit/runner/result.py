"""What a finished sync returns: :class:`SyncResult` (per stream a :class:`StreamResult`, the
errors as :class:`ErrorInfo`), built from the runner's progress record, and its JSON form
(``dbkit sync --json``, described by the JSON schema :data:`SCHEMA_PATH` shipped in the package).

Every text here comes from the runner's records, which are masked already (no secret reaches a
result). :class:`SyncFailed` is the error :func:`dbkit.sync` raises for a result that is not ok.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dbkit.config import MASKER
from dbkit.errors import ConfigError, DbkitError, SystemFailure, TransientError
from dbkit.runner.errors import SyncAborted, SyncError
from dbkit.runner.progress import SyncProgress
from dbkit.runner.request import SyncRequest
from dbkit.runner.state import SyncState

RESULT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("sync_result.schema.json")
"""The JSON schema of :meth:`SyncResult.to_json` (``dbkit sync --json``)."""

Status = Literal["succeeded", "partial", "failed"]


@dataclass(frozen=True)
class ErrorInfo:
    """One problem of a sync: ``origin`` is ``source``, ``destination`` or ``sync``;
    ``failure_type`` the protocol's (``config_error``, ``transient_error``, ``system_error``)
    when the connector said; ``stream`` the stream it concerns (``namespace.name``), if any."""

    origin: str
    message: str
    failure_type: str | None = None
    stream: str | None = None
    stack_trace: str | None = None

    @classmethod
    def of(cls, error: SyncError) -> ErrorInfo:
        return cls(error.origin, error.message, error.failure_type, error.stream, error.stack_trace)

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "message": self.message,
            "failure_type": self.failure_type,
            "stream": self.stream,
        }

    def __str__(self) -> str:
        kind = f" ({self.failure_type})" if self.failure_type else ""
        where = f" [stream {self.stream}]" if self.stream else ""
        return f"{self.origin} error{kind}{where}: {self.message}"


@dataclass(frozen=True)
class StreamResult:
    """One stream of a sync.

    ``status`` is what the source reported last (``COMPLETE``, ``INCOMPLETE``, ``STARTED``) or
    ``NOT_STARTED``; ``finished`` is True when it was COMPLETE and the destination acknowledged
    every state of it (then the next sync goes on from there); ``mode`` reads like
    ``incremental dedup`` or ``full refresh overwrite``.
    """

    name: str
    namespace: str | None
    mode: str
    sync_mode: str
    destination_sync_mode: str
    generation_id: int
    status: str
    finished: bool
    records_read: int
    records_acknowledged: int
    seconds: float
    row_estimate: int | None = None
    errors: tuple[ErrorInfo, ...] = ()

    @property
    def stream(self) -> str:
        """``namespace.name`` (or ``name``), as stream names are given to ``streams=``."""
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "mode": self.mode,
            "sync_mode": self.sync_mode,
            "destination_sync_mode": self.destination_sync_mode,
            "generation_id": self.generation_id,
            "status": self.status,
            "finished": self.finished,
            "records_read": self.records_read,
            "records_acknowledged": self.records_acknowledged,
            "row_estimate": self.row_estimate,
            "seconds": round(self.seconds, 3),
            "errors": [e.to_json() for e in self.errors],
        }


@dataclass(frozen=True)
class SyncResult:
    """A finished sync (or one that could not start: then ``streams`` is empty).

    ``status`` is ``succeeded`` (every stream finished, no error), ``partial`` (some streams
    finished, not all) or ``failed``; ``ok`` is ``status == "succeeded"``. ``state`` is the
    state file's content after the sync (what the next sync resumes from), ``state_file`` its
    path. Times are UTC; ``seconds`` includes check and discover.
    """

    status: Status
    sync_id: int | None
    source: str
    destination: str
    state_file: Path
    started_at: dt.datetime
    ended_at: dt.datetime
    streams: tuple[StreamResult, ...]
    errors: tuple[ErrorInfo, ...]
    state: dict[str, Any] = field(default_factory=dict)
    source_exit: int | None = None
    destination_exit: int | None = None
    interrupted_by: str | None = None
    """The signal that stopped the sync (``SIGINT``, ``SIGTERM``, ``SIGHUP``); None when none did."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @property
    def records_read(self) -> int:
        return sum(s.records_read for s in self.streams)

    @property
    def records_acknowledged(self) -> int:
        return sum(s.records_acknowledged for s in self.streams)

    @property
    def failure_type(self) -> str:
        """The protocol failure type of the first error that names one (``system_error`` when
        none does; ``config_error`` for a sync that could not start)."""
        for error in self.errors:
            if error.failure_type:
                return error.failure_type
        return "config_error" if self.sync_id is None else "system_error"

    def stream(self, name: str) -> StreamResult:
        """The stream named ``name`` or ``namespace.name``; KeyError when the sync had none."""
        for s in self.streams:
            if name in (s.name, s.stream):
                return s
        raise KeyError(name)

    def raise_for_status(self, what: str = "sync") -> SyncResult:
        """This result when it is ok; else raises :class:`SyncFailed` carrying it (``what``: the
        word its message starts with)."""
        if not self.ok:
            raise SyncFailed.of(self, what)
        return self

    def to_json(self) -> dict[str, Any]:
        """The document ``dbkit sync --json`` prints (see :data:`SCHEMA_PATH`); without the
        state itself, which is in ``state_file``."""
        return {
            "version": RESULT_VERSION,
            "status": self.status,
            "ok": self.ok,
            "sync_id": self.sync_id,
            "source": self.source,
            "destination": self.destination,
            "state_file": str(self.state_file),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "seconds": round(self.seconds, 3),
            "totals": {
                "streams": len(self.streams),
                "streams_finished": sum(1 for s in self.streams if s.finished),
                "records_read": self.records_read,
                "records_acknowledged": self.records_acknowledged,
            },
            "streams": [s.to_json() for s in self.streams],
            "errors": [e.to_json() for e in self.errors],
            "source_exit": self.source_exit,
            "destination_exit": self.destination_exit,
            "interrupted_by": self.interrupted_by,
        }

    # ------------------------------------------------------------------ building
    @classmethod
    def of(
        cls, progress: SyncProgress, request: SyncRequest, started_at: dt.datetime, ended_at: dt.datetime
    ) -> SyncResult:
        """The result of a sync that ran (:func:`dbkit.runner.run_sync`'s progress record)."""
        errors = tuple(ErrorInfo.of(e) for e in progress.errors)
        streams = tuple(
            StreamResult(
                name=s.descriptor.name,
                namespace=s.descriptor.namespace,
                mode=s.mode,
                sync_mode=s.sync_mode.value,
                destination_sync_mode=s.destination_sync_mode.value,
                generation_id=s.generation_id,
                status=s.status or "NOT_STARTED",
                finished=s.finished,
                records_read=s.records_read,
                records_acknowledged=s.records_acknowledged,
                seconds=s.seconds(progress.ended_at),
                row_estimate=s.row_estimate,
                errors=tuple(e for e in errors if e.stream in (s.name, s.descriptor.name)),
            )
            for s in progress.streams
        )
        finished = sum(1 for s in streams if s.finished)
        status: Status = (
            "succeeded" if progress.ok else "partial" if 0 < finished < len(streams) else "failed"
        )
        return cls(
            status=status,
            sync_id=progress.sync_id,
            source=request.source.label,
            destination=request.destination.label,
            state_file=request.state_path,
            started_at=started_at,
            ended_at=ended_at,
            streams=streams,
            errors=errors,
            state=_saved_state(request.state_path),
            source_exit=progress.source_exit,
            destination_exit=progress.destination_exit,
            interrupted_by=progress.interrupted_by,
        )

    @classmethod
    def not_started(
        cls,
        request: SyncRequest | tuple[str, str, Path],
        error: DbkitError,
        started_at: dt.datetime,
        ended_at: dt.datetime,
        interrupted_by: str | None = None,
    ) -> SyncResult:
        """The result of a sync that could not start (bad config, failed check, unknown stream, a
        signal before any data moved: ``interrupted_by``); ``request`` may be just (source,
        destination, state file) when no request could be made."""
        details: Sequence[SyncError] = error.errors if isinstance(error, SyncAborted) else ()
        errors = [ErrorInfo.of(e) for e in details]
        if not errors or errors[0].message != error.message:
            errors.insert(0, ErrorInfo("sync", MASKER.mask(error.message), error.failure_type))
        if isinstance(request, SyncRequest):
            source, destination, state_path = (
                request.source.label,
                request.destination.label,
                request.state_path,
            )
        else:
            source, destination, state_path = request
        return cls(
            status="failed",
            sync_id=None,
            source=source,
            destination=destination,
            state_file=state_path,
            started_at=started_at,
            ended_at=ended_at,
            streams=(),
            errors=tuple(errors),
            state=_saved_state(state_path),
            interrupted_by=interrupted_by,
        )


class SyncFailed(DbkitError):
    """A sync that did not succeed; ``result`` is its :class:`SyncResult` (what did finish, the
    errors, the saved state). It is also a :class:`~dbkit.ConfigError`,
    :class:`~dbkit.TransientError` or :class:`~dbkit.SystemFailure` after the first error's
    ``failure_type``, so ``except dbkit.ConfigError`` catches a sync that failed on a bad config."""

    result: SyncResult

    @staticmethod
    def of(result: SyncResult, what: str = "sync") -> SyncFailed:
        kind = _FAILURES.get(result.failure_type, SystemSyncFailed)
        first = result.errors[0].message if result.errors else "a stream did not finish"
        unfinished = [s.stream for s in result.streams if not s.finished]
        detail = f" (not finished: {', '.join(unfinished)})" if unfinished else ""
        error = kind(f"{what} {result.status}: {first}{detail}")
        error.result = result
        return error


class ConfigSyncFailed(SyncFailed, ConfigError):
    """A sync whose first error is a ``config_error``."""


class TransientSyncFailed(SyncFailed, TransientError):
    """A sync whose first error is a ``transient_error``."""


class SystemSyncFailed(SyncFailed, SystemFailure):
    """A sync whose first error is a ``system_error``."""


_FAILURES: dict[str, type[SyncFailed]] = {
    "config_error": ConfigSyncFailed,
    "transient_error": TransientSyncFailed,
    "system_error": SystemSyncFailed,
}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _saved_state(path: Path) -> dict[str, Any]:
    """The state file's content, or an empty dict when there is none (or it cannot be read)."""
    try:
        return SyncState.load(path).to_json() if path.exists() else {}
    except ConfigError:
        return {}
