"""dbkit: a toolkit for database source and destination connectors that speak the Airbyte protocol.

This module is the public API of a Python user and of a connector author, with the packages
``dbkit.source``, ``dbkit.destination``, ``dbkit.db``, ``dbkit.protocol`` and ``dbkit.testing``
(each exports its own in its ``__init__``). Nothing else of dbkit's is stable: import only from
these.

- running connectors from Python (what ``dbkit sync`` does): :func:`sync` -> :class:`SyncResult`
  (per stream a :class:`StreamResult`, errors as :class:`ErrorInfo`; :class:`SyncFailed` when it
  fails), :func:`read` -> a ``pyarrow.Table``, :func:`read_batches` -> a :class:`BatchReader`
  of record batches;
- config models and their fields: :class:`SourceSettings`, :class:`DestinationSettings`,
  :class:`TableSelection`, :func:`field`, :func:`secret_field`, :func:`load_config`;
- URL forms of a config, for ``dbkit sync``: :func:`parse_url` (SQLAlchemy's reading, refusing
  what it would misread; :data:`PERCENT_ENCODING` says how to write it), :func:`sqlite_url_config`,
  :func:`postgres_url_config`, :func:`server_url_config`, :func:`mysql_ssl_query`, :func:`url_query`;
- errors: :class:`DbkitError` and its ``failure_type`` kinds :class:`ConfigError`,
  :class:`TransientError`, :class:`SystemFailure`;
- the console script: :func:`main_for` (``run = main_for(MySource)``) and the
  :class:`Connector` protocol it runs;
- the frameworks' base classes :class:`SqlSource`, :class:`SourceDialect`,
  :class:`SqlDestination`, :class:`DestinationDialect`, and everything ``dbkit.db`` exports.

Names load on first use: ``import dbkit`` (which every ``import dbkit.x`` runs first) costs
nothing, and a source never loads the destination framework (pyarrow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbkit.api import (
        BatchReader,
        ErrorInfo,
        StreamResult,
        SyncFailed,
        SyncResult,
        read,
        read_batches,
        sync,
    )
    from dbkit.config import (
        MASKER,
        ConnectorConfig,
        DataLocation,
        DestinationSettings,
        SourceSettings,
        TableSelection,
        field,
        file_location,
        load_config,
        secret_field,
        server_location,
    )
    from dbkit.db import (
        DAY_MICROS,
        GENERIC_HANDLERS,
        AirbyteType,
        Capabilities,
        Database,
        Dialect,
        MySqlConnectionMixin,
        NoTunnel,
        PostgresConnection,
        PostgresConnectionMixin,
        SshTunnel,
        TunnelMethod,
        TypeHandler,
        TypeRegistry,
        Unrepresentable,
        base64_bytes,
        civil_from_days,
        classify_mysql_error,
        classify_sqlite_error,
        days_from_civil,
        days_in_month,
        exact_decimal,
        finite_float,
        format_date,
        format_time_micros,
        format_timestamp,
        format_year,
        format_ymd,
        generic_types,
        json_schema_for,
        mysql_code,
        mysql_data_location,
        mysql_reason,
        open_tunnel,
        parse_jdbc_params,
        parse_json_text,
        schema_type,
        state_to_python,
        wide_int,
    )
    from dbkit.destination import DestinationDialect, SqlDestination
    from dbkit.entrypoint import Connector, DestinationConnector, SourceConnector, main_for
    from dbkit.errors import ConfigError, DbkitError, SystemFailure, TransientError
    from dbkit.source import SourceDialect, SqlSource
    from dbkit.urls import (
        PERCENT_ENCODING,
        UrlMapper,
        mysql_ssl_query,
        parse_url,
        postgres_url_config,
        server_url_config,
        sqlite_url_config,
        url_query,
    )

    __version__: str

# name -> the module that defines it (imported on first use of the name)
_EXPORTS: dict[str, str] = {
    "BatchReader": "dbkit.api",
    "ErrorInfo": "dbkit.api",
    "StreamResult": "dbkit.api",
    "SyncFailed": "dbkit.api",
    "SyncResult": "dbkit.api",
    "read": "dbkit.api",
    "read_batches": "dbkit.api",
    "sync": "dbkit.api",
    "MASKER": "dbkit.config",
    "ConnectorConfig": "dbkit.config",
    "DataLocation": "dbkit.config",
    "file_location": "dbkit.config",
    "server_location": "dbkit.config",
    "DestinationSettings": "dbkit.config",
    "SourceSettings": "dbkit.config",
    "TableSelection": "dbkit.config",
    "field": "dbkit.config",
    "load_config": "dbkit.config",
    "secret_field": "dbkit.config",
    "AirbyteType": "dbkit.db",
    "Capabilities": "dbkit.db",
    "Database": "dbkit.db",
    "Dialect": "dbkit.db",
    "NoTunnel": "dbkit.db",
    "SshTunnel": "dbkit.db",
    "TunnelMethod": "dbkit.db",
    "open_tunnel": "dbkit.db",
    "PostgresConnection": "dbkit.db",
    "MySqlConnectionMixin": "dbkit.db",
    "PostgresConnectionMixin": "dbkit.db",
    "TypeHandler": "dbkit.db",
    "TypeRegistry": "dbkit.db",
    "Unrepresentable": "dbkit.db",
    "classify_mysql_error": "dbkit.db",
    "classify_sqlite_error": "dbkit.db",
    "mysql_code": "dbkit.db",
    "mysql_data_location": "dbkit.db",
    "mysql_reason": "dbkit.db",
    "json_schema_for": "dbkit.db",
    "schema_type": "dbkit.db",
    "base64_bytes": "dbkit.db",
    "exact_decimal": "dbkit.db",
    "finite_float": "dbkit.db",
    "wide_int": "dbkit.db",
    "DestinationDialect": "dbkit.destination",
    "SqlDestination": "dbkit.destination",
    "Connector": "dbkit.entrypoint",
    "DestinationConnector": "dbkit.entrypoint",
    "SourceConnector": "dbkit.entrypoint",
    "main_for": "dbkit.entrypoint",
    "ConfigError": "dbkit.errors",
    "DbkitError": "dbkit.errors",
    "SystemFailure": "dbkit.errors",
    "TransientError": "dbkit.errors",
    "SourceDialect": "dbkit.source",
    "SqlSource": "dbkit.source",
    "UrlMapper": "dbkit.urls",
    "PERCENT_ENCODING": "dbkit.urls",
    "mysql_ssl_query": "dbkit.urls",
    "parse_url": "dbkit.urls",
    "postgres_url_config": "dbkit.urls",
    "server_url_config": "dbkit.urls",
    "sqlite_url_config": "dbkit.urls",
    "url_query": "dbkit.urls",
    "DAY_MICROS": "dbkit.db",
    "GENERIC_HANDLERS": "dbkit.db",
    "generic_types": "dbkit.db",
    "civil_from_days": "dbkit.db",
    "days_from_civil": "dbkit.db",
    "days_in_month": "dbkit.db",
    "format_date": "dbkit.db",
    "format_time_micros": "dbkit.db",
    "format_timestamp": "dbkit.db",
    "format_year": "dbkit.db",
    "format_ymd": "dbkit.db",
    "parse_jdbc_params": "dbkit.db",
    "parse_json_text": "dbkit.db",
    "state_to_python": "dbkit.db",
}

__all__ = [
    "DAY_MICROS",
    "GENERIC_HANDLERS",
    "MASKER",
    "PERCENT_ENCODING",
    "AirbyteType",
    "BatchReader",
    "Capabilities",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "DataLocation",
    "Database",
    "DbkitError",
    "DestinationConnector",
    "DestinationDialect",
    "DestinationSettings",
    "Dialect",
    "ErrorInfo",
    "MySqlConnectionMixin",
    "NoTunnel",
    "PostgresConnection",
    "PostgresConnectionMixin",
    "SourceConnector",
    "SourceDialect",
    "SourceSettings",
    "SqlDestination",
    "SqlSource",
    "SshTunnel",
    "StreamResult",
    "SyncFailed",
    "SyncResult",
    "SystemFailure",
    "TableSelection",
    "TransientError",
    "TunnelMethod",
    "TypeHandler",
    "TypeRegistry",
    "Unrepresentable",
    "UrlMapper",
    "__version__",
    "base64_bytes",
    "civil_from_days",
    "classify_mysql_error",
    "classify_sqlite_error",
    "days_from_civil",
    "days_in_month",
    "exact_decimal",
    "field",
    "file_location",
    "finite_float",
    "format_date",
    "format_time_micros",
    "format_timestamp",
    "format_year",
    "format_ymd",
    "generic_types",
    "json_schema_for",
    "load_config",
    "main_for",
    "mysql_code",
    "mysql_data_location",
    "mysql_reason",
    "mysql_ssl_query",
    "open_tunnel",
    "parse_jdbc_params",
    "parse_json_text",
    "parse_url",
    "postgres_url_config",
    "read",
    "read_batches",
    "schema_type",
    "secret_field",
    "server_location",
    "server_url_config",
    "sqlite_url_config",
    "state_to_python",
    "sync",
    "url_query",
    "wide_int",
]

if not TYPE_CHECKING:  # mypy sees the imports above; a module __getattr__ would hide typos from it

    def __getattr__(name: str) -> Any:
        """Import an exported name on first use (then it is a plain module attribute)."""
        if name == "__version__":
            from importlib.metadata import PackageNotFoundError, version

            try:
                value = version("dbkit")
            except PackageNotFoundError:  # run from a source tree that was never installed
                value = "0+unknown"
        elif name in _EXPORTS:
            value = getattr(importlib.import_module(_EXPORTS[name]), name)
        else:
            raise AttributeError(f"module 'dbkit' has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
