"""The three kinds of failure a connector reports, as the Airbyte protocol names them.

- :class:`ConfigError`: the user can fix it (bad config, missing grant, unknown table/column).
- :class:`TransientError`: retrying later may work (lost connection, server restarting).
- :class:`SystemFailure`: everything else (a bug, an unexpected server response).

``message`` is for a person and must say what to do; ``internal`` may carry driver detail. Both
pass through secret masking before they are printed.
"""

from __future__ import annotations

from typing import ClassVar

from dbkit.protocol import ProtocolInputError, StreamDescriptor


class DbkitError(Exception):
    failure_type: ClassVar[str] = "system_error"

    def __init__(
        self,
        message: str,
        *,
        internal: str | None = None,
        stream: StreamDescriptor | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.internal = internal
        self.stream = stream


class ConfigError(DbkitError):
    failure_type = "config_error"


class TransientError(DbkitError):
    failure_type = "transient_error"


class SystemFailure(DbkitError):
    failure_type = "system_error"


def as_dbkit_error(exc: BaseException) -> DbkitError:
    """Wrap anything not already a :class:`DbkitError` (dialects classify driver errors first)."""
    if isinstance(exc, DbkitError):
        return exc
    if isinstance(exc, ProtocolInputError):
        return ConfigError(str(exc))
    if isinstance(exc, ConnectionError | TimeoutError):
        return TransientError(f"connection problem: {exc}", internal=repr(exc))
    if isinstance(exc, MemoryError):
        return SystemFailure("out of memory; lower the batch size settings", internal=repr(exc))
    return SystemFailure(f"unexpected error: {type(exc).__name__}: {exc}", internal=repr(exc))
