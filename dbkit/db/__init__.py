"""The JDBC-like layer over SQLAlchemy 2: dialects, capabilities, types, engines."""

from dbkit.db.database import Database
from dbkit.db.dialect import Capabilities, Dialect
from dbkit.db.generic_types import GENERIC_HANDLERS, generic_types
from dbkit.db.mysql import (
    MySqlConnectionMixin,
    classify_mysql_error,
    mysql_code,
    mysql_data_location,
    mysql_reason,
    parse_jdbc_params,
)
from dbkit.db.postgres import PostgresConnection, PostgresConnectionMixin
from dbkit.db.sqlite import classify_sqlite_error
from dbkit.db.temporal import (
    DAY_MICROS,
    civil_from_days,
    days_from_civil,
    days_in_month,
    format_date,
    format_time_micros,
    format_timestamp,
    format_year,
    format_ymd,
)
from dbkit.db.tunnel import NoTunnel, SshTunnel, TunnelMethod, open_tunnel
from dbkit.db.types import (
    AirbyteType,
    TypeHandler,
    TypeRegistry,
    Unrepresentable,
    base64_bytes,
    exact_decimal,
    finite_float,
    json_schema_for,
    parse_json_text,
    schema_type,
    state_to_python,
    wide_int,
)

__all__ = [
    "DAY_MICROS",
    "GENERIC_HANDLERS",
    "AirbyteType",
    "Capabilities",
    "Database",
    "Dialect",
    "MySqlConnectionMixin",
    "NoTunnel",
    "PostgresConnection",
    "PostgresConnectionMixin",
    "SshTunnel",
    "TunnelMethod",
    "TypeHandler",
    "TypeRegistry",
    "Unrepresentable",
    "base64_bytes",
    "civil_from_days",
    "classify_mysql_error",
    "classify_sqlite_error",
    "days_from_civil",
    "days_in_month",
    "exact_decimal",
    "finite_float",
    "format_date",
    "format_time_micros",
    "format_timestamp",
    "format_year",
    "format_ymd",
    "generic_types",
    "json_schema_for",
    "mysql_code",
    "mysql_data_location",
    "mysql_reason",
    "open_tunnel",
    "parse_jdbc_params",
    "parse_json_text",
    "schema_type",
    "state_to_python",
    "wide_int",
]
