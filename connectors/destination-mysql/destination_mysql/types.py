"""MySQL / MariaDB column types: which type each Airbyte type gets, and what an existing column holds.

==========================  =================================================================
Airbyte type                column type
==========================  =================================================================
string                      LONGTEXT (utf8mb4_bin; no row-size cost: the 65,535-byte row limit
                            counts a LONGTEXT as 12 bytes)
boolean                     BOOLEAN (TINYINT(1))
integer                     BIGINT (past int64: NULL with DESTINATION_FIELD_SIZE_LIMITATION;
                            ``big_integer`` or wider bounds: DECIMAL(65,30))
number                      DECIMAL(65,30) (35 digits before the point, 30 after; a number
                            past that is NULL with DESTINATION_FIELD_SIZE_LIMITATION)
date                        DATE (years 1..9999; others NULL with a change)
time_without_timezone       TIME(6)
time_with_timezone          VARCHAR(32), the time with its offset (``12:00:00+02:00``)
timestamp_without_timezone  DATETIME(6)
timestamp_with_timezone     DATETIME(6) in UTC (the column comment says so)
binary                      LONGBLOB
object / array / unknown    JSON (MariaDB: LONGTEXT checked by JSON_VALID, exact numbers)
==========================  =================================================================

``timestamp_with_timezone`` and ``time_with_timezone`` columns carry a comment naming their
Airbyte type, so that the next sync (schema evolution) tells them from the other DATETIME and
VARCHAR columns. Metadata columns: ``_airbyte_raw_id VARCHAR(36)``, ``_airbyte_extracted_at
DATETIME(6)`` (UTC), ``_airbyte_meta JSON``, ``_airbyte_generation_id BIGINT``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dbkit.db import AirbyteType
from dbkit.destination import (
    EXTRACTED_AT,
    GENERATION_ID,
    META,
    RAW_ID,
    DeclaredType,
    TypeMapping,
    int64_airbyte_type,
)

COMMENT_PREFIX = "airbyte_type="
NUMBER_DIGITS = (35, 30)
TEXT_CHARSET = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
"""Every character (whatever the database's default), compared exactly (a dedup key 'A' is not 'a')."""


def _commented(sql_type: str, airbyte_type: AirbyteType) -> str:
    return f"{sql_type} COMMENT '{COMMENT_PREFIX}{airbyte_type.value}'"


COLUMN_TYPES: Mapping[AirbyteType, str] = {
    AirbyteType.STRING: f"LONGTEXT {TEXT_CHARSET}",
    AirbyteType.BOOLEAN: "BOOLEAN",
    AirbyteType.INTEGER: "BIGINT",
    AirbyteType.NUMBER: f"DECIMAL(65,{NUMBER_DIGITS[1]})",
    AirbyteType.DATE: "DATE",
    AirbyteType.TIME_WITHOUT_TIMEZONE: "TIME(6)",
    AirbyteType.TIME_WITH_TIMEZONE: _commented(f"VARCHAR(32) {TEXT_CHARSET}", AirbyteType.TIME_WITH_TIMEZONE),
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: "DATETIME(6)",
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: _commented("DATETIME(6)", AirbyteType.TIMESTAMP_WITH_TIMEZONE),
    AirbyteType.BINARY: "LONGBLOB",
    AirbyteType.OBJECT: "JSON",
    AirbyteType.ARRAY: "JSON",
    AirbyteType.UNKNOWN: "JSON",
}

META_TYPES: Mapping[str, str] = {
    RAW_ID: "VARCHAR(36)",
    EXTRACTED_AT: _commented("DATETIME(6)", AirbyteType.TIMESTAMP_WITH_TIMEZONE),
    META: "JSON",
    GENERATION_ID: "BIGINT",
}

# information_schema DATA_TYPE -> what such a column holds (anything else: text)
_STORED: Mapping[str, AirbyteType] = {
    "bigint": AirbyteType.INTEGER,
    "int": AirbyteType.INTEGER,
    "mediumint": AirbyteType.INTEGER,
    "smallint": AirbyteType.INTEGER,
    "decimal": AirbyteType.NUMBER,
    "double": AirbyteType.NUMBER,
    "float": AirbyteType.NUMBER,
    "date": AirbyteType.DATE,
    "time": AirbyteType.TIME_WITHOUT_TIMEZONE,
    "datetime": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    "timestamp": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    "json": AirbyteType.UNKNOWN,
    "blob": AirbyteType.BINARY,
    "longblob": AirbyteType.BINARY,
    "mediumblob": AirbyteType.BINARY,
    "tinyblob": AirbyteType.BINARY,
    "varbinary": AirbyteType.BINARY,
    "binary": AirbyteType.BINARY,
}
_COMMENT = re.compile(rf"COMMENT '{COMMENT_PREFIX}([a-z_]+)'")


def column_type(airbyte_type: AirbyteType) -> DeclaredType:
    return DeclaredType(COLUMN_TYPES[airbyte_type])


def stored_type(declared: str) -> AirbyteType:
    """What a column holds, from the declared type :meth:`MySqlTables.existing_columns` reports
    (``COLUMN_TYPE`` plus ``COMMENT '...'`` when the comment names an Airbyte type; ``JSON`` for
    MariaDB's JSON_VALID-checked LONGTEXT)."""
    found = _COMMENT.search(declared)
    if found is not None:
        try:
            return AirbyteType(found.group(1))
        except ValueError:
            pass
    head = declared.strip().lower()
    if head.startswith("tinyint(1)"):
        return AirbyteType.BOOLEAN
    if head.startswith("tinyint"):
        return AirbyteType.INTEGER
    name = re.split(r"[\s(]", head, maxsplit=1)[0]
    return _STORED.get(name, AirbyteType.STRING)


class MySqlTypes(TypeMapping):
    """The type-mapping role of destination-mysql (the table in the module doc)."""

    def airbyte_type(self, schema: Any) -> AirbyteType:
        return int64_airbyte_type(schema)

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        return column_type(airbyte_type)

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        return {name: DeclaredType(type_name) for name, type_name in META_TYPES.items()}

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        if isinstance(sql_type, DeclaredType):
            return stored_type(sql_type.name)
        return stored_type(str(sql_type))
