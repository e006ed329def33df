"""Change data capture: the contract between the reader and a database's change log.

A dialect that supports CDC returns a :class:`CdcReader`. The reader takes an initial snapshot of
every CDC stream (resumable, keyset by primary key) at a log position recorded *before* the
snapshot starts, then replays the log from that position; the shared part of the GLOBAL state
holds the log position. The position is acknowledged to the database (which may then discard
log it no longer needs) only from a state that the destination has echoed, so that a failed
sync can always re-read what it has not durably written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dbkit.protocol import StreamDescriptor


@dataclass(frozen=True)
class Change:
    """One row change from the log, already in record form.

    ``data`` holds the row's columns plus the CDC metadata columns (``_ab_cdc_updated_at``,
    ``_ab_cdc_deleted_at``, a position column); ``position`` is where the log stands after it.
    """

    stream: StreamDescriptor
    data: Mapping[str, Any]
    position: Mapping[str, Any]
    deleted: bool = False


class CdcReader(Protocol):
    def current_position(self) -> Mapping[str, Any]:
        """The log position now; called once before the snapshot. Must not consume anything."""
        ...

    def validate_position(self, position: Mapping[str, Any]) -> None:
        """Raise ConfigError if the log no longer holds ``position`` (a new snapshot is needed)."""
        ...

    def changes(self, since: Mapping[str, Any]) -> Iterator[Change]:
        """Changes after ``since`` until the position that was current when this was called."""
        ...

    def acknowledge(self, position: Mapping[str, Any]) -> None:
        """Called only with a position from a state the destination echoed; must be idempotent."""
        ...
