"""The source framework: what a source connector author uses.

Change data capture (:mod:`dbkit.source.cdc`): a dialect returns a :class:`CdcReader` from
``SourceDialect.cdc_reader`` when its config asks for it.

A connector subclasses :class:`SqlSource` (name, config model, dialect class) and
:class:`SourceDialect` (types, discovery, value binding); it may return its own :class:`ReadJob`
for some streams, yielding :class:`ReadChunk` s with typed state objects as checkpoints.
"""

from dbkit.source.cdc import (
    DELETED_AT,
    GENERIC_CURSOR,
    INTEGER_SCHEMA,
    TIMESTAMP_SCHEMA,
    UPDATED_AT,
    CdcOptions,
    CdcRead,
    CdcReader,
    CdcReplication,
    Change,
    ChangeBatch,
    ImageEncoder,
    LogLag,
    Operation,
    SnapshotPoint,
    StandardReplication,
)
from dbkit.source.connector import SqlSource
from dbkit.source.dialect import SourceDialect
from dbkit.source.discover import catalog_streams
from dbkit.source.generic import GenericSqlDialect
from dbkit.source.jobs import Cancelled, ReadChunk, ReadContext, ReadJob
from dbkit.source.model import ColumnInfo, RowLocator, TableInfo
from dbkit.source.plan_job import PlanJob
from dbkit.source.reader import Cancellation, ReadOptions, SourceReader, StreamOutcome
from dbkit.source.records import Changes, PythonRecordEncoder, RecordEncoder
from dbkit.source.state import (
    STATE_VERSION,
    CursorState,
    FullRefreshState,
    GlobalState,
    StreamState,
    parse_global_state,
    parse_stream_state,
)

__all__ = [
    "DELETED_AT",
    "GENERIC_CURSOR",
    "INTEGER_SCHEMA",
    "STATE_VERSION",
    "TIMESTAMP_SCHEMA",
    "UPDATED_AT",
    "Cancellation",
    "Cancelled",
    "CdcOptions",
    "CdcRead",
    "CdcReader",
    "CdcReplication",
    "Change",
    "ChangeBatch",
    "Changes",
    "ColumnInfo",
    "CursorState",
    "FullRefreshState",
    "GenericSqlDialect",
    "GlobalState",
    "ImageEncoder",
    "LogLag",
    "Operation",
    "PlanJob",
    "PythonRecordEncoder",
    "ReadChunk",
    "ReadContext",
    "ReadJob",
    "ReadOptions",
    "RecordEncoder",
    "RowLocator",
    "SnapshotPoint",
    "SourceDialect",
    "SourceReader",
    "SqlSource",
    "StandardReplication",
    "StreamOutcome",
    "StreamState",
    "TableInfo",
    "catalog_streams",
    "parse_global_state",
    "parse_stream_state",
]
