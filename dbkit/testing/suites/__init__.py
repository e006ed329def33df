"""Acceptance suites a connector gets in one line, and the harnesses they run on."""

from dbkit.testing.suites.cdc import CdcHarness, CdcSuite, apply_records
from dbkit.testing.suites.destination import (
    BASE_MS,
    ITEM_SCHEMA,
    DestinationSuite,
    deleted,
    item,
    record,
    state,
    status,
    stream,
    sync_messages,
)
from dbkit.testing.suites.harness import (
    BadConfig,
    DestinationHarness,
    Harness,
    SourceHarness,
    Table,
    TypeCase,
)
from dbkit.testing.suites.harnesses import (
    MysqlDestinationHarness,
    MysqlSourceHarness,
    PostgresDestinationHarness,
    PostgresSourceHarness,
    SqliteDestinationHarness,
    SqliteFile,
    SqliteSourceHarness,
    suite_on,
)
from dbkit.testing.suites.source import PEOPLE, SourceSuite, json_equal, people_table

__all__ = [
    "BASE_MS",
    "ITEM_SCHEMA",
    "PEOPLE",
    "BadConfig",
    "CdcHarness",
    "CdcSuite",
    "DestinationHarness",
    "DestinationSuite",
    "Harness",
    "MysqlDestinationHarness",
    "MysqlSourceHarness",
    "PostgresDestinationHarness",
    "PostgresSourceHarness",
    "SourceHarness",
    "SourceSuite",
    "SqliteDestinationHarness",
    "SqliteFile",
    "SqliteSourceHarness",
    "Table",
    "TypeCase",
    "apply_records",
    "deleted",
    "item",
    "json_equal",
    "people_table",
    "record",
    "state",
    "status",
    "stream",
    "suite_on",
    "sync_messages",
]
