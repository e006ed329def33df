"""destination-sqlite: the embedded default destination."""

from __future__ import annotations

from dbkit import main_for
from dbkit.destination import SqlDestination
from destination_sqlite.config import SqliteDestinationConfig
from destination_sqlite.dialect import SqliteDestinationDialect


class SqliteDestination(SqlDestination[SqliteDestinationConfig]):
    name = "destination-sqlite"
    config_model = SqliteDestinationConfig
    dialect_class = SqliteDestinationDialect


run = main_for(SqliteDestination)

__all__ = ["SqliteDestination", "SqliteDestinationConfig", "SqliteDestinationDialect", "run"]
