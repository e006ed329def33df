"""Change data capture: the change reader contract a dialect implements, the replication-method
config, the CDC read (GLOBAL state, snapshot -> log handover, upper bound, meta columns)."""

from dbkit.source.cdc.config import CdcReplication, StandardReplication
from dbkit.source.cdc.contract import (
    DELETED_AT,
    GENERIC_CURSOR,
    INTEGER_SCHEMA,
    TIMESTAMP_SCHEMA,
    UPDATED_AT,
    CdcOptions,
    CdcReader,
    Change,
    ChangeBatch,
    ImageEncoder,
    LogLag,
    Operation,
    SnapshotPoint,
)
from dbkit.source.cdc.read import CdcRead

__all__ = [
    "DELETED_AT",
    "GENERIC_CURSOR",
    "INTEGER_SCHEMA",
    "TIMESTAMP_SCHEMA",
    "UPDATED_AT",
    "CdcOptions",
    "CdcRead",
    "CdcReader",
    "CdcReplication",
    "Change",
    "ChangeBatch",
    "ImageEncoder",
    "LogLag",
    "Operation",
    "SnapshotPoint",
    "StandardReplication",
]
