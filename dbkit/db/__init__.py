"""The JDBC-like layer over SQLAlchemy 2: dialects, capabilities, types, engines."""

from dbkit.db.database import Database
from dbkit.db.dialect import Capabilities, Dialect
from dbkit.db.postgres import PostgresConnection, PostgresConnectionMixin
from dbkit.db.sqlite import classify_sqlite_error
from dbkit.db.temporal import (
    DAY_MICROS,
    civil_from_days,
    days_from_civil,
    format_date,
    format_time_micros,
    format_timestamp,
)
from dbkit.db.types import AirbyteType, json_schema_for, parse_json_text, schema_type

__all__ = [
    "DAY_MICROS",
    "AirbyteType",
    "Capabilities",
    "Database",
    "Dialect",
    "PostgresConnection",
    "PostgresConnectionMixin",
    "civil_from_days",
    "classify_sqlite_error",
    "days_from_civil",
    "format_date",
    "format_time_micros",
    "format_timestamp",
    "json_schema_for",
    "parse_json_text",
    "schema_type",
]
