"""What went wrong in a sync, told to people: :class:`SyncError`, :class:`SyncAborted`, and the
conversion of a connector's TRACE ERROR messages and exit codes into them.

Every text here passes through the secret masker before it is kept.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbkit.config import MASKER
from dbkit.errors import DbkitError


@dataclass
class SyncError:
    """One problem of a sync; ``origin`` is ``source``, ``destination`` or ``sync``."""

    origin: str
    message: str
    failure_type: str | None = None
    stream: str | None = None
    stack_trace: str | None = None
    internal_message: str | None = None

    def __str__(self) -> str:
        kind = f" ({self.failure_type})" if self.failure_type else ""
        where = f" [stream {self.stream}]" if self.stream else ""
        return f"{self.origin} error{kind}{where}: {self.message}"


class SyncAborted(DbkitError):
    """The sync could not start (bad config, failed check or discover, unknown streams)."""

    failure_type = "config_error"

    def __init__(self, message: str, errors: Sequence[SyncError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


def exit_text(name: str, code: int) -> str:
    """``NAME exited with code N`` or, for a negative code, ``NAME was killed by SIGxxx``."""
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = f"signal {-code}"
        return f"{name} was killed by {signame}"
    return f"{name} exited with code {code}"


def trace_error(origin: str, error: Mapping[str, Any]) -> SyncError:
    """The ``error`` object of a TRACE ERROR message, as a (masked) SyncError."""
    stream = error.get("stream_descriptor")
    where = None
    if isinstance(stream, Mapping) and isinstance(stream.get("name"), str):
        ns = stream.get("namespace")
        where = stream["name"] if not ns else f"{ns}.{stream['name']}"
    return SyncError(
        origin=origin,
        message=MASKER.mask(str(error.get("message") or "(no message)")),
        failure_type=error.get("failure_type") if isinstance(error.get("failure_type"), str) else None,
        stream=where,
        stack_trace=MASKER.mask(str(error["stack_trace"])) if error.get("stack_trace") else None,
        internal_message=MASKER.mask(str(error["internal_message"]))
        if error.get("internal_message")
        else None,
    )


def command_errors(
    origin: str, name: str, code: int, messages: Iterable[Mapping[str, Any]], stderr: Sequence[str]
) -> list[SyncError]:
    """The errors of a finished connector command: its TRACE ERRORs, and its exit code when no
    TRACE ERROR explains it (always for a signal), with the last stderr line as the detail."""
    errors = [
        trace_error(origin, m["trace"]["error"])
        for m in messages
        if m.get("type") == "TRACE"
        and isinstance(m.get("trace"), Mapping)
        and m["trace"].get("type") == "ERROR"
        and isinstance(m["trace"].get("error"), Mapping)
    ]
    if code != 0 and (not errors or code < 0):
        detail = f": {MASKER.mask(stderr[-1])}" if stderr else ""
        errors.append(
            SyncError(
                origin,
                exit_text(name, code) + detail,
                stack_trace=MASKER.mask("\n".join(stderr)) if stderr else None,
            )
        )
    return errors
