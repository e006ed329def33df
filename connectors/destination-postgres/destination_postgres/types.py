"""PostgreSQL column types: which type each Airbyte type gets, and what an existing column holds.

======================================  ===========================================
Airbyte type                            column type
======================================  ===========================================
string                                  text
boolean                                 boolean
integer                                 bigint (``big_integer`` / wider bounds: numeric)
number                                  numeric (no precision imposed: every digit kept)
date                                    date
time_without_timezone                   time
time_with_timezone                      time with time zone
timestamp_without_timezone              timestamp
timestamp_with_timezone                 timestamp with time zone
binary                                  bytea
object / array / unknown / unions       jsonb
======================================  ===========================================

The metadata columns are those of Airbyte's own destination-postgres, so a table it created can
be taken over: ``_airbyte_raw_id varchar``, ``_airbyte_extracted_at timestamptz``,
``_airbyte_meta jsonb``, ``_airbyte_generation_id bigint``.
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
from destination_postgres.driver import PG

COLUMN_TYPES: Mapping[AirbyteType, str] = {
    AirbyteType.STRING: "text",
    AirbyteType.BOOLEAN: "boolean",
    AirbyteType.INTEGER: "bigint",
    AirbyteType.NUMBER: "numeric",
    AirbyteType.DATE: "date",
    AirbyteType.TIME_WITHOUT_TIMEZONE: "time without time zone",
    AirbyteType.TIME_WITH_TIMEZONE: "time with time zone",
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: "timestamp without time zone",
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: "timestamp with time zone",
    AirbyteType.BINARY: "bytea",
    AirbyteType.OBJECT: "jsonb",
    AirbyteType.ARRAY: "jsonb",
    AirbyteType.UNKNOWN: "jsonb",
}

META_TYPES: Mapping[str, str] = {
    RAW_ID: "character varying",
    EXTRACTED_AT: "timestamp with time zone",
    META: "jsonb",
    GENERATION_ID: "bigint",
}

# format_type() names (parameters dropped) -> what such a column holds
_STORED: Mapping[str, AirbyteType] = {
    "bigint": AirbyteType.INTEGER,
    "integer": AirbyteType.INTEGER,
    "smallint": AirbyteType.INTEGER,
    "numeric": AirbyteType.NUMBER,
    "real": AirbyteType.NUMBER,
    "double precision": AirbyteType.NUMBER,
    "boolean": AirbyteType.BOOLEAN,
    "date": AirbyteType.DATE,
    "time without time zone": AirbyteType.TIME_WITHOUT_TIMEZONE,
    "time with time zone": AirbyteType.TIME_WITH_TIMEZONE,
    "timestamp without time zone": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    "timestamp with time zone": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    "bytea": AirbyteType.BINARY,
    "json": AirbyteType.UNKNOWN,
    "jsonb": AirbyteType.UNKNOWN,
}


def column_type(airbyte_type: AirbyteType) -> DeclaredType:
    """The column type (as PostgreSQL spells it) of a data column of this Airbyte type."""
    return DeclaredType(COLUMN_TYPES[airbyte_type])


def stored_type(type_name: str) -> AirbyteType:
    """What a column of this ``format_type`` holds; any type not listed (text, varchar, uuid,
    arrays, enums, ...) counts as text, which widening never changes."""
    key = re.sub(r"\s+", " ", re.sub(r"\([^)]*\)", "", type_name)).strip().lower()
    return _STORED.get(key, AirbyteType.STRING)


class PostgresTypes(TypeMapping):
    """The type-mapping role of destination-postgres (the table in the module doc)."""

    def airbyte_type(self, schema: Any) -> AirbyteType:
        return int64_airbyte_type(schema)

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        return column_type(airbyte_type)

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        return {name: DeclaredType(type_name) for name, type_name in META_TYPES.items()}

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        name = sql_type.name if isinstance(sql_type, DeclaredType) else str(sql_type.compile(dialect=PG))
        return stored_type(name)
