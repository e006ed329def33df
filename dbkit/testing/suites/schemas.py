"""Shorthands for writing a connector's type cases (``TypeCase``): the JSON schema ``discover``
gives a nullable column of each Airbyte type, the change reason of a value that cannot be
represented, and a decimal wider than a float.

Each schema is a plain ``dict`` shared by every module that imports it: read it, never change it.
"""

from __future__ import annotations

from typing import Any

from dbkit.db import AirbyteType, json_schema_for

INT = json_schema_for(AirbyteType.INTEGER)
"""A nullable integer column."""
NUM = json_schema_for(AirbyteType.NUMBER)
"""A nullable number column."""
STR = json_schema_for(AirbyteType.STRING)
"""A nullable string column."""
BOOL = json_schema_for(AirbyteType.BOOLEAN)
"""A nullable boolean column."""
BIN = json_schema_for(AirbyteType.BINARY)
"""A nullable binary column (a base64 string)."""
DATE = json_schema_for(AirbyteType.DATE)
"""A nullable date column."""
TS = json_schema_for(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE)
"""A nullable timestamp column without time zone."""
TSTZ = json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE)
"""A nullable timestamp column with time zone."""
TIME = json_schema_for(AirbyteType.TIME_WITHOUT_TIMEZONE)
"""A nullable time column without time zone."""
TIMETZ = json_schema_for(AirbyteType.TIME_WITH_TIMEZONE)
"""A nullable time column with time zone."""
OBJ = json_schema_for(AirbyteType.OBJECT)
"""A nullable object column."""
ANY: dict[str, Any] = {}
"""The schema of a column that can hold any JSON value."""
ERR = "SOURCE_SERIALIZATION_ERROR"
"""The change reason of a value the source nulls because it cannot represent it."""
WIDE = "12345678901234567890.1234567890"
"""A decimal with more digits than a float keeps (30 significant digits)."""
