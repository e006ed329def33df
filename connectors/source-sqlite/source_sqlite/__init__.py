"""source-sqlite: the embedded default source (and the toolkit's own test double)."""

from __future__ import annotations

from dbkit import main_for
from dbkit.source import SqlSource
from source_sqlite.changelog import SqliteChangeLog, install_change_log, truncate_table
from source_sqlite.config import SqliteSourceConfig
from source_sqlite.dialect import SqliteSourceDialect


class SqliteSource(SqlSource[SqliteSourceConfig]):
    name = "source-sqlite"
    config_model = SqliteSourceConfig
    dialect_class = SqliteSourceDialect


run = main_for(SqliteSource)

__all__ = [
    "SqliteChangeLog",
    "SqliteSource",
    "SqliteSourceConfig",
    "SqliteSourceDialect",
    "install_change_log",
    "run",
    "truncate_table",
]
