"""destination-postgres: typed tables loaded with COPY, deduplicated with MERGE, refreshed by swap."""

from __future__ import annotations

from dbkit.destination import SqlDestination
from dbkit.entrypoint import main_for
from destination_postgres.config import PostgresDestinationConfig
from destination_postgres.dialect import PostgresDestinationDialect


class PostgresDestination(SqlDestination[PostgresDestinationConfig]):
    name = "destination-postgres"
    config_model = PostgresDestinationConfig
    dialect_class = PostgresDestinationDialect
    documentation_url = "https://github.com/dbkit/dbkit/blob/main/README.md#destination-postgres"


run = main_for(PostgresDestination)

__all__ = ["PostgresDestination", "PostgresDestinationConfig", "PostgresDestinationDialect", "run"]
