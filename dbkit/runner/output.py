"""Reading what a connector prints: one line -> a protocol message, and the messages that are
meant for people (LOG, TRACE ERROR, lines that are not protocol messages) -> the observer.

Shared by the launcher (short commands), the pump (the source's output) and the acknowledger
(the destination's output), so that both sides' output is shown the same way, always masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dbkit.config import MASKER
from dbkit.protocol import loads_exact
from dbkit.runner.errors import trace_error
from dbkit.runner.progress import SyncObserver, SyncProgress, report_error

LEVELS = frozenset({"FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"})
"""The protocol's log levels; any other level is shown as INFO."""


def parse_line(line: bytes) -> Any:
    """The JSON value of one output line (numbers exact), or None when it is not JSON."""
    try:
        return loads_exact(line)
    except ValueError:
        return None


def read_message(observer: SyncObserver, origin: str, line: bytes) -> dict[str, Any] | None:
    """The protocol message on an output line; None for a blank line, and for a line that is not
    a JSON object (shown to the observer as a warning, with its first 300 characters)."""
    if not line.strip():
        return None
    message = parse_line(line)
    if isinstance(message, dict):
        return message
    text = line.decode("utf-8", "replace").rstrip()
    observer.log(origin, "WARN", MASKER.mask(f"output that is not a protocol message: {text[:300]}"))
    return None


def show_log(observer: SyncObserver, origin: str, log: Mapping[str, Any]) -> None:
    """Show the ``log`` object of a LOG message."""
    level = str(log.get("level") or "INFO")
    stack = log.get("stack_trace")
    observer.log(
        origin,
        level if level in LEVELS else "INFO",
        MASKER.mask(str(log.get("message") or "")),
        MASKER.mask(str(stack)) if stack else None,
    )


def report_trace_error(
    progress: SyncProgress, observer: SyncObserver, origin: str, error: Mapping[str, Any]
) -> None:
    """Record and show the ``error`` object of a TRACE ERROR message."""
    report_error(progress, observer, trace_error(origin, error))
