"""destination-sqlite passes the destination acceptance suite."""

from __future__ import annotations

from dbkit.testing.suites import DestinationSuite, SqliteDestinationHarness


class TestSqliteDestination(DestinationSuite):
    harness = SqliteDestinationHarness
