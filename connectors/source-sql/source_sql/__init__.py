"""source-sql: a source for any database SQLAlchemy reaches, from one URL.

The smallest complete connector on dbkit: a config model, a dialect that keeps the framework's
defaults (:mod:`source_sql.dialect`) and a type table (:mod:`source_sql.types`). It reads
PostgreSQL (``postgresql+psycopg://...``), MySQL/MariaDB (``mysql+pymysql://...``) and SQLite
(``sqlite:///file:PATH?mode=ro&uri=true`` opens the file read-only, and never creates it).
"""

from __future__ import annotations

from dbkit.entrypoint import main_for
from dbkit.source import SqlSource
from source_sql.config import SqlUrlConfig
from source_sql.dialect import SqlUrlDialect


class SqlUrlSource(SqlSource[SqlUrlConfig]):
    name = "source-sql"
    config_model = SqlUrlConfig
    dialect_class = SqlUrlDialect


run = main_for(SqlUrlSource)

__all__ = ["SqlUrlConfig", "SqlUrlDialect", "SqlUrlSource", "run"]
