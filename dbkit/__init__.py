"""dbkit: a toolkit for database source and destination connectors that speak the Airbyte protocol.

This module is the public API a connector author needs, with the packages ``dbkit.source``,
``dbkit.destination``, ``dbkit.db``, ``dbkit.protocol`` and ``dbkit.testing`` (each exports its
own in its ``__init__``). Nothing else of dbkit's is stable: import only from these.

- config models and their fields: :class:`SourceSettings`, :class:`DestinationSettings`,
  :class:`TableSelection`, :func:`field`, :func:`secret_field`, :func:`load_config`;
- URL forms of a config, for ``dbkit sync``: :func:`sqlite_url_config`,
  :func:`postgres_url_config`, :func:`server_url_config`, :func:`url_query`;
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
    from dbkit.config import (
        MASKER,
        ConnectorConfig,
        DestinationSettings,
        SourceSettings,
        TableSelection,
        field,
        load_config,
        secret_field,
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
    from dbkit.urls import UrlMapper, postgres_url_config, server_url_config, sqlite_url_config, url_query

    __version__: str

# name -> the module that defines it (imported on first use of the name)
_EXPORTS: dict[str, str] = {
    "MASKER": "dbkit.config",
    "ConnectorConfig": "dbkit.config",
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
    "AirbyteType",
    "Capabilities",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "Database",
    "DbkitError",
    "DestinationConnector",
    "DestinationDialect",
    "DestinationSettings",
    "Dialect",
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
    "mysql_reason",
    "open_tunnel",
    "parse_jdbc_params",
    "parse_json_text",
    "postgres_url_config",
    "schema_type",
    "secret_field",
    "server_url_config",
    "sqlite_url_config",
    "state_to_python",
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
