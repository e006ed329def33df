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
    SqliteSourceHarness,
    suite_on,
)
from dbkit.testing.suites.source import SourceSuite, json_equal

__all__ = [
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
    "SqliteSourceHarness",
    "Table",
    "TypeCase",
    "json_equal",
    "suite_on",
]
