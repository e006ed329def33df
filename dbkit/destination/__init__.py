"""The destination framework, and everything a destination connector author uses.

A destination is a :class:`SqlDestination` (spec / check / write) with a
:class:`DestinationDialect`: its :class:`~dbkit.db.Capabilities` (every limit and flag) and
four roles, each overridable on its own: :class:`TypeMapping`, :class:`TableOperations`,
:class:`BulkLoader` and :class:`MergeSql`. What one write remembers is in its
:class:`WriteContext`. Everything here is stable API; the modules behind it are not.
"""

from dbkit.destination.batch import (
    EXTRACTED_AT,
    GENERATION_ID,
    META,
    META_COLUMNS,
    RAW_ID,
    SIZE,
    TYPECAST,
    Batch,
    BatchBuilder,
    BatchColumn,
)
from dbkit.destination.bulk_load import BulkLoader, ValueRefused
from dbkit.destination.casting import INT64_MAX, INT64_MIN, MAX_ARROW_YEAR, Limits, to_json_text
from dbkit.destination.connector import SqlDestination
from dbkit.destination.consumer import Consumer, FlushPolicy
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.executor import Slot
from dbkit.destination.frames import materialize
from dbkit.destination.generations import Held, Target, choose_target, held, is_current, refresh_minimum
from dbkit.destination.loader import MAX_REFUSED_VALUES, LoadStats, StreamLoader
from dbkit.destination.merge import RN, SEQ, DedupPlan, delete_old_generations, tombstone_columns
from dbkit.destination.merge_sql import MergeSql
from dbkit.destination.naming import NamingRules, allocate, normalize, short_hash, with_hash
from dbkit.destination.records import RawRecord, loads_lenient
from dbkit.destination.schema import CDC_DELETED_AT, TMP_SUFFIX, TablePlan, index_name, plan_tables
from dbkit.destination.table_ops import KeyIndex, TableOperations
from dbkit.destination.type_mapping import DeclaredType, TypeMapping, int64_airbyte_type
from dbkit.destination.write import Log, WriteContext, WriteOptions

__all__ = [
    "CDC_DELETED_AT",
    "EXTRACTED_AT",
    "GENERATION_ID",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ARROW_YEAR",
    "MAX_REFUSED_VALUES",
    "META",
    "META_COLUMNS",
    "RAW_ID",
    "RN",
    "SEQ",
    "SIZE",
    "TMP_SUFFIX",
    "TYPECAST",
    "Batch",
    "BatchBuilder",
    "BatchColumn",
    "BulkLoader",
    "Consumer",
    "DeclaredType",
    "DedupPlan",
    "DestinationDialect",
    "FlushPolicy",
    "Held",
    "KeyIndex",
    "Limits",
    "LoadStats",
    "Log",
    "MergeSql",
    "NamingRules",
    "RawRecord",
    "Slot",
    "SqlDestination",
    "StreamLoader",
    "TableOperations",
    "TablePlan",
    "Target",
    "TypeMapping",
    "ValueRefused",
    "WriteContext",
    "WriteOptions",
    "allocate",
    "choose_target",
    "delete_old_generations",
    "held",
    "index_name",
    "int64_airbyte_type",
    "is_current",
    "loads_lenient",
    "materialize",
    "normalize",
    "plan_tables",
    "refresh_minimum",
    "short_hash",
    "to_json_text",
    "tombstone_columns",
    "with_hash",
]
