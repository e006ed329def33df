"""The destination-sqlite config: the database file, the flush policy every SQL destination has,
and how CDC deletions land."""

from __future__ import annotations

from typing import Literal

from dbkit import DataLocation, DestinationSettings, field, file_location, sqlite_url_config


class SqliteDestinationConfig(DestinationSettings):
    url_schemes = ("sqlite",)
    url_config = sqlite_url_config

    path: str = field(
        title="Database file", description="Path of the SQLite database file (created if missing).", order=0
    )
    cdc_deletion_mode: Literal["hard_delete", "soft_delete"] = field(
        "hard_delete",
        title="CDC deletion mode",
        description="hard_delete removes deleted rows; soft_delete keeps them with _ab_cdc_deleted_at set.",
        order=1,
    )

    def data_location(self) -> DataLocation:
        return DataLocation(file_location(self.path))
