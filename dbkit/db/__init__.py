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
    json_schema_for,
    schema_type,
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
    "classify_sqlite_error",
    "json_schema_for",
    "schema_type",
]
