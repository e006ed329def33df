"""The source-sqlite config: the database file, the read settings every SQL source has, which
tables to read, and how (standard reads, or change data capture from the trigger-kept change
log of :mod:`source_sqlite.changelog`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dbkit import DataLocation, SourceSettings, TableSelection, field, file_location, sqlite_url_config
from dbkit.source import CdcReplication, StandardReplication

ReplicationMethod = Annotated[StandardReplication | CdcReplication, Field(discriminator="method")]


class SqliteSourceConfig(SourceSettings, TableSelection):
    url_schemes = ("sqlite",)
    url_config = sqlite_url_config

    path: str = field(title="Database file", description="Path of the SQLite database file.", order=0)
    replication_method: ReplicationMethod = field(
        default_factory=StandardReplication,
        title="Update method",
        description="Standard reads, or change data capture from the change log that "
        "source_sqlite.install_change_log keeps (needs write access to the file: acknowledged "
        "changes are deleted).",
        order=1,
    )

    def data_location(self) -> DataLocation:
        return DataLocation(file_location(self.path))
