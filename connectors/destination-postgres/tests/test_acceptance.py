"""destination-postgres passes the destination acceptance suite on real PostgreSQL: a throwaway
server started from the local binaries, and the machine's own service (what a user has)."""

from __future__ import annotations

from typing import Any, ClassVar

from dbkit.testing.suites import DestinationSuite, PostgresDestinationHarness, suite_on
from destination_postgres import PostgresDestination


class Postgres(PostgresDestinationHarness):
    command: ClassVar[str] = "destination-postgres"
    connector_class: ClassVar[type[Any]] = PostgresDestination


TestPostgresThrowaway = suite_on(DestinationSuite, Postgres, "local-binaries")
TestPostgresService = suite_on(DestinationSuite, Postgres, "local-service")
