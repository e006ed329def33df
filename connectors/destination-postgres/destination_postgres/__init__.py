"""destination-postgres: typed tables loaded with COPY, deduplicated with MERGE, refreshed by swap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dbkit import main_for
from dbkit.destination import DestinationDialect, SqlDestination, StreamLoader, TablePlan, WriteContext
from dbkit.protocol import ConfiguredStream, StreamDescriptor
from destination_postgres.config import PostgresDestinationConfig
from destination_postgres.dialect import PostgresDestinationDialect
from destination_postgres.raw import RawTableLoader, raw_table_names


class PostgresDestination(SqlDestination[PostgresDestinationConfig]):
    name = "destination-postgres"
    config_model = PostgresDestinationConfig
    dialect_class = PostgresDestinationDialect
    documentation_url = "https://github.com/dbkit/dbkit/blob/main/connectors/destination-postgres/README.md"

    def loader(
        self,
        dialect: DestinationDialect[Any],
        conn: sa.Connection,
        stream: ConfiguredStream,
        plans: Mapping[StreamDescriptor, TablePlan],
        write: WriteContext,
    ) -> StreamLoader:
        """With ``raw_tables``, a loader that also fills the stream's raw table."""
        if not isinstance(dialect, PostgresDestinationDialect) or not dialect.config.raw_tables:
            return super().loader(dialect, conn, stream, plans, write)
        name, tmp = raw_table_names(plans)[stream.descriptor]  # the same for every stream of a write
        return RawTableLoader(dialect, conn, stream, plans[stream.descriptor], write, name, tmp)


run = main_for(PostgresDestination)

__all__ = ["PostgresDestination", "PostgresDestinationConfig", "PostgresDestinationDialect", "run"]
