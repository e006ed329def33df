"""source-postgres's ``replication_method``: ``{"method": "Standard"}`` (the default) or
``{"method": "CDC", ...}`` with the fields, defaults and enum strings of Airbyte's source-postgres,
so an existing Airbyte connection's config works unchanged."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dbkit import field
from dbkit.source import CdcReplication, StandardReplication

LsnCommitBehaviour = Literal["While reading Data", "After loading Data in the destination"]
AFTER_LOADING: LsnCommitBehaviour = "After loading Data in the destination"
WHILE_READING: LsnCommitBehaviour = "While reading Data"


class PostgresCdcReplication(CdcReplication):
    """Read Changes using Write-Ahead Log (CDC): logical replication with pgoutput."""

    plugin: Literal["pgoutput"] = field(
        "pgoutput",
        title="Plugin",
        description="A logical decoding plugin installed on the PostgreSQL server.",
        order=2,
    )
    replication_slot: str = field(
        title="Replication Slot",
        description="A logical replication slot (pgoutput). Created by the first sync when it does "
        "not exist; one created beforehand works the same.",
        order=3,
        pattern=r"^[a-z0-9_]{1,63}$",
    )
    publication: str = field(
        title="Publication",
        description="The publication whose tables' changes are read (CREATE PUBLICATION ... FOR "
        "TABLE ...); every table read with CDC must be in it.",
        order=4,
        min_length=1,
    )
    initial_waiting_seconds: int = field(
        1200,
        title="Initial Waiting Time in Seconds (Advanced)",
        description="How long a sync waits for the WAL when nothing new arrives before it ends (it "
        "ends earlier as soon as it reaches the WAL position current when it started).",
        ge=1,
        le=2400,
        order=5,
    )
    queue_size: int = field(
        10000,
        title="Size of the queue (Advanced)",
        description="At most this many changes are held in memory at once.",
        ge=1000,
        le=10000,
        order=6,
    )
    lsn_commit_behaviour: LsnCommitBehaviour = field(
        AFTER_LOADING,
        title="LSN commit behaviour",
        description="When the slot is told it may discard WAL: 'After loading Data in the "
        "destination' (the position of the state the destination echoed, at the start of the "
        "next sync) or 'While reading Data' (as changes are read; a sync that fails downstream "
        "then needs a resync).",
        order=7,
    )
    heartbeat_action_query: str = field(
        "",
        title="Debezium heartbeat query (Advanced)",
        description="A statement run at the start of each sync (e.g. an UPDATE of a heartbeat "
        "table in the publication), so that an idle database still writes WAL the slot can move "
        "past.",
        order=8,
    )


ReplicationMethod = Annotated[StandardReplication | PostgresCdcReplication, Field(discriminator="method")]
