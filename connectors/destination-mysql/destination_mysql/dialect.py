"""MySQL and MariaDB as a destination: typed tables, LOAD DATA LOCAL loading from a stream, dedup by
key, refreshes swapped in with one RENAME TABLE.

- Names keep their case and are cut to 64 bytes with a hash of the original name; colliding
  names (MySQL compares column names without case) get hash suffixes. Namespaces are databases.
- Roles: types :mod:`destination_mysql.types`, tables :mod:`destination_mysql.tables`, bulk
  loading :mod:`destination_mysql.loading`, merge :mod:`destination_mysql.dedup` (``INSERT ...
  SELECT ... ON DUPLICATE KEY UPDATE`` guarded per column), in the batch's transaction.
- Values: numbers exact in DECIMAL(65,30) (past it: NULL with a change), integers past int64
  NULL with a change, timestamps with a zone in UTC, dates and timestamps of years 1..9999.
"""

from __future__ import annotations

from typing import ClassVar

from dbkit.db import Capabilities
from dbkit.destination import (
    BulkLoader,
    DestinationDialect,
    MergeSql,
    TableOperations,
    TypeMapping,
    WriteOptions,
)
from destination_mysql.config import MySqlDestinationConfig
from destination_mysql.connection import MySqlDestinationConnection
from destination_mysql.dedup import MySqlMerge
from destination_mysql.loading import MySqlBulkLoader
from destination_mysql.tables import MySqlTables
from destination_mysql.types import NUMBER_DIGITS, MySqlTypes

JSON_DEPTH = 32
"""Deepest JSON a JSON column takes: MariaDB's JSON_VALID refuses more than 32 levels (MySQL 8:
100); a deeper value is NULL with a change (a string column holds it as text at any depth)."""


class MySqlDestinationDialect(MySqlDestinationConnection, DestinationDialect[MySqlDestinationConfig]):
    name = "mysql"
    capabilities = Capabilities(
        namespaces=True,
        max_identifier_bytes=64,
        identifier_case_insensitive=True,
        drop_cascade=False,
        alter_column_type=True,
        timestamp_years=(1, 9999),
        text_nul_bytes=True,
        json_nul_bytes=True,
        json_depth=JSON_DEPTH,
        number_digits=NUMBER_DIGITS,
        json_number_digits=False,
        background_loading=True,
        # two LOAD DATA into one table at once: 0.69-0.75 of the floor against 0.61-0.63 one
        # after another (bench/README.md, "Parallel loads")
        parallel_loads=2,
    )
    type_mapping: ClassVar[type[TypeMapping]] = MySqlTypes
    table_operations: ClassVar[type[TableOperations]] = MySqlTables
    bulk_loader: ClassVar[type[BulkLoader]] = MySqlBulkLoader
    merge_sql: ClassVar[type[MergeSql]] = MySqlMerge

    def default_namespace(self) -> str | None:
        database: str = self.config.database
        return database

    def write_options(self) -> WriteOptions:
        return WriteOptions(hard_delete=self.config.cdc_deletion_mode != "soft_delete")
