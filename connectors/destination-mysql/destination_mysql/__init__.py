"""destination-mysql: typed tables in MySQL and MariaDB, loaded by LOAD DATA LOCAL INFILE from a
stream, deduplicated by key, refreshed by an atomic RENAME TABLE."""

from __future__ import annotations

from dbkit import main_for
from dbkit.destination import SqlDestination
from destination_mysql.config import MySqlDestinationConfig
from destination_mysql.dialect import MySqlDestinationDialect


class MySqlDestination(SqlDestination[MySqlDestinationConfig]):
    name = "destination-mysql"
    config_model = MySqlDestinationConfig
    dialect_class = MySqlDestinationDialect
    documentation_url = "https://github.com/dbkit/dbkit/blob/main/connectors/destination-mysql/README.md"


run = main_for(MySqlDestination)

__all__ = ["MySqlDestination", "MySqlDestinationConfig", "MySqlDestinationDialect", "run"]
