"""The source-sqlite config: the database file, the read settings every SQL source has, and
which tables to read."""

from __future__ import annotations

from dbkit import SourceSettings, TableSelection, field, sqlite_url_config


class SqliteSourceConfig(SourceSettings, TableSelection):
    url_schemes = ("sqlite",)
    url_config = sqlite_url_config

    path: str = field(title="Database file", description="Path of the SQLite database file.", order=0)
