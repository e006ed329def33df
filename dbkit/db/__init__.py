"""The JDBC-like layer over SQLAlchemy 2: dialects, capabilities, types, engines."""

from dbkit.db.database import Database
from dbkit.db.dialect import (
    Capabilities,
    Dialect,
)
from dbkit.db.postgres import (
    PostgresConnection,
    PostgresConnectionMixin,
)
from dbkit.db.sqlite import classify_sqlite_error
from dbkit.db.types import (
    AirbyteType,
    TypeHandler,
    TypeRegistry,
    Unrepresentable,
    base64_bytes,
    exact_decimal,
    finite_float,
    json_schema_for,
    schema_type,
    wide_int,
)

__all__ = [
    "AirbyteType",
    "Capabilities",
    "Database",
    "Dialect",
    "PostgresConnection",
    "PostgresConnectionMixin",
    "TypeHandler",
    "TypeRegistry",
    "Unrepresentable",
    "base64_bytes",
    "classify_sqlite_error",
    "exact_decimal",
    "finite_float",
    "json_schema_for",
    "schema_type",
    "wide_int",
]
