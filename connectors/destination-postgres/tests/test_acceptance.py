"""destination-postgres passes the destination acceptance suite on real PostgreSQL: a throwaway
server started from the local binaries, and the machine's own service (what a user has)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from dbkit.testing.suites import DestinationSuite, PostgresDestinationHarness
from destination_postgres import PostgresDestination


class Postgres(PostgresDestinationHarness):
    command: ClassVar[str] = "destination-postgres"
    connector_class: ClassVar[type[Any]] = PostgresDestination


class PostgresThrowaway(Postgres):
    providers = ("local-binaries",)


class PostgresService(Postgres):
    providers = ("local-service",)


@pytest.mark.postgres
@pytest.mark.slow
class TestPostgresThrowaway(DestinationSuite):
    harness = PostgresThrowaway


@pytest.mark.postgres
@pytest.mark.slow
class TestPostgresService(DestinationSuite):
    harness = PostgresService
