"""source-postgres: PostgreSQL as an Airbyte source, exact and fast.

Full refreshes read tables in parallel chunks under one snapshot, every RECORD line rendered by
the server and streamed through ``COPY``; cursor-incremental reads are the toolkit's tie-safe
plans with the same server-side rendering. Discovery is two catalog queries whatever the number
of tables. See README.md (next to this package) for the config, the values and the state.

Change data capture is not a read option yet: its PostgreSQL layer (replication connection,
pgoutput decoder, row changes converted by the type handlers' Python path) is
:mod:`source_postgres.cdc`; its state will be a ``dbkit.source.GlobalState``.
"""

from __future__ import annotations

from dbkit import main_for
from dbkit.source import SqlSource
from source_postgres.config import PostgresSourceConfig
from source_postgres.dialect import PostgresSourceDialect


class PostgresSource(SqlSource[PostgresSourceConfig]):
    name = "source-postgres"
    config_model = PostgresSourceConfig
    dialect_class = PostgresSourceDialect


run = main_for(PostgresSource)

__all__ = ["PostgresSource", "PostgresSourceConfig", "PostgresSourceDialect", "run"]
