"""source-mysql: MySQL and MariaDB as an Airbyte source, exact and fast.

Every record is rendered by the server (one string a row, built from the type handlers' SQL)
and streamed through an unbuffered cursor; full refreshes resume from the last primary key,
cursor-incremental reads are the toolkit's tie-safe plans. Discovery is a few catalog queries
whatever the number of tables. The config is spelled as Airbyte's source-mysql spells it. See
README.md (next to this package) for the config, the values and the state.
"""

from __future__ import annotations

from dbkit import main_for
from dbkit.source import SqlSource
from source_mysql.config import MySqlSourceConfig
from source_mysql.dialect import MySqlSourceDialect


class MySqlSource(SqlSource[MySqlSourceConfig]):
    name = "source-mysql"
    config_model = MySqlSourceConfig
    dialect_class = MySqlSourceDialect


run = main_for(MySqlSource)

__all__ = ["MySqlSource", "MySqlSourceConfig", "MySqlSourceDialect", "run"]
