"""destination-sqlite: the embedded default destination."""

from __future__ import annotations

from typing import Literal

from dbkit import DestinationSettings, field, main_for
from dbkit.destination import SqlDestination
from destination_sqlite.dialect import SqliteDestinationDialect


class SqliteDestinationConfig(DestinationSettings):
    path: str = field(
        title="Database file", description="Path of the SQLite database file (created if missing).", order=0
    )
    cdc_deletion_mode: Literal["hard_delete", "soft_delete"] = field(
        "hard_delete",
        title="CDC deletion mode",
        description="hard_delete removes deleted rows; soft_delete keeps them with _ab_cdc_deleted_at set.",
        order=1,
    )


class SqliteDestination(SqlDestination[SqliteDestinationConfig]):
    name = "destination-sqlite"
    config_model = SqliteDestinationConfig
    dialect_class = SqliteDestinationDialect


run = main_for(SqliteDestination)

__all__ = ["SqliteDestination", "SqliteDestinationConfig", "SqliteDestinationDialect", "run"]
