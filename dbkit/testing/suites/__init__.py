"""Acceptance suites a connector gets in one line, and the harnesses they run on."""

from dbkit.testing.suites.destination import DestinationSuite
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
    "PEOPLE",
    "BadConfig",
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
    "json_equal",
    "people_table",
    "suite_on",
]
