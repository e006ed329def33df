"""source-sqlite: the embedded default source (and the toolkit's own test double)."""

from __future__ import annotations

from dbkit.config import SourceSettings, TableSelection, field
from dbkit.entrypoint import main_for
from dbkit.source import SqlSource
from source_sqlite.dialect import SqliteSourceDialect


class SqliteSourceConfig(SourceSettings, TableSelection):
    path: str = field(title="Database file", description="Path of the SQLite database file.", order=0)


class SqliteSource(SqlSource[SqliteSourceConfig]):
    name = "source-sqlite"
    config_model = SqliteSourceConfig
    dialect_class = SqliteSourceDialect


run = main_for(SqliteSource)

__all__ = ["SqliteSource", "SqliteSourceConfig", "SqliteSourceDialect", "run"]
