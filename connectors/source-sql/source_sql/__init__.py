"""source-sql: a source for any database SQLAlchemy reaches, from one URL.

The smallest complete connector on dbkit: a config model and a dialect that gives dbkit's generic
SQL dialect (:class:`dbkit.source.GenericSqlDialect`, with the generic type handlers of
:mod:`dbkit.db.generic_types`) its URL and schemas (:mod:`source_sql.dialect`). It reads
PostgreSQL (``postgresql+psycopg://...``), MySQL/MariaDB (``mysql+pymysql://...``) and SQLite
(``sqlite:///file:PATH?mode=ro&uri=true`` opens the file read-only, and never creates it).
"""

from __future__ import annotations

from dbkit import main_for
from dbkit.source import SqlSource
from source_sql.config import SqlUrlConfig
from source_sql.dialect import SqlUrlDialect


class SqlUrlSource(SqlSource[SqlUrlConfig]):
    name = "source-sql"
    config_model = SqlUrlConfig
    dialect_class = SqlUrlDialect


run = main_for(SqlUrlSource)

__all__ = ["SqlUrlConfig", "SqlUrlDialect", "SqlUrlSource", "run"]
