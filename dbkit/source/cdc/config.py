"""Replication method settings, spelled as Airbyte's database sources spell them, so that an
existing connection's config works unchanged.

A connector puts a ``replication_method`` field of its own union in its config model (its
``Standard`` option, and a subclass of :class:`CdcReplication` with what its log needs: slot and
publication, server time zone) and gives the framework :meth:`CdcReplication.options`.
"""

from __future__ import annotations

from typing import Literal

from dbkit.config import ConnectorConfig, field
from dbkit.source.cdc.contract import CdcOptions, InvalidPositionBehavior


class StandardReplication(ConnectorConfig):
    """Standard reads: full refresh, and cursor incremental (no change log)."""

    method: Literal["Standard"] = field("Standard", title="Method")


class CdcReplication(ConnectorConfig):
    """Change data capture: an initial snapshot, then the database's change log."""

    method: Literal["CDC"] = field("CDC", title="Method")
    initial_waiting_seconds: int = field(
        1200,
        title="Initial waiting time in seconds",
        description="How long a read waits for the change log when nothing new arrives before it "
        "ends (it ends earlier as soon as it reaches the log position current when it started).",
        ge=1,
        le=2400,
        order=10,
    )
    invalid_cdc_cursor_position_behavior: InvalidPositionBehavior = field(
        "Fail sync",
        title="Invalid CDC position behavior",
        description="When the saved log position can no longer be read from (the log was purged "
        "past it, the slot is gone): fail the sync with an error saying what to do, or read every "
        "table again from a new snapshot.",
        order=11,
    )

    def options(self) -> CdcOptions:
        return CdcOptions(
            initial_waiting_seconds=float(self.initial_waiting_seconds),
            invalid_cdc_cursor_position_behavior=self.invalid_cdc_cursor_position_behavior,
        )
