"""The public API: what ``dbkit`` and its packages export is pinned here.

A connector imports only from these modules (tests/test_architecture.py checks that), so a name
added to or removed from one of them is an API change: update the list here in the same commit.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

EXPORTS: dict[str, list[str]] = {
    "dbkit": [
        "DAY_MICROS",
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
        "NoTunnel",
        "PostgresConnection",
        "MySqlConnectionMixin",
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
        "json_schema_for",
        "mysql_code",
        "mysql_reason",
        "load_config",
        "main_for",
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
    ],
    "dbkit.source": [
        "DELETED_AT",
        "GENERIC_CURSOR",
        "INTEGER_SCHEMA",
        "TIMESTAMP_SCHEMA",
        "UPDATED_AT",
        "CdcOptions",
        "CdcRead",
        "CdcReader",
        "CdcReplication",
        "Change",
        "ChangeBatch",
        "ImageEncoder",
        "LogLag",
        "Operation",
        "SnapshotPoint",
        "StandardReplication",
        "Cancellation",
        "Cancelled",
        "Changes",
        "ColumnInfo",
        "CursorState",
        "FullRefreshState",
        "GlobalState",
        "PlanJob",
        "PythonRecordEncoder",
        "ReadChunk",
        "ReadContext",
        "ReadJob",
        "ReadOptions",
        "RecordEncoder",
        "RowLocator",
        "STATE_VERSION",
        "SourceDialect",
        "SourceReader",
        "SqlSource",
        "StreamOutcome",
        "StreamState",
        "TableInfo",
        "catalog_streams",
        "parse_global_state",
        "parse_stream_state",
    ],
    "dbkit.source.cdc": [
        "DELETED_AT",
        "GENERIC_CURSOR",
        "INTEGER_SCHEMA",
        "TIMESTAMP_SCHEMA",
        "UPDATED_AT",
        "CdcOptions",
        "CdcRead",
        "CdcReader",
        "CdcReplication",
        "Change",
        "ChangeBatch",
        "ImageEncoder",
        "LogLag",
        "Operation",
        "SnapshotPoint",
        "StandardReplication",
    ],
    "dbkit.destination": [
        "Batch",
        "BatchBuilder",
        "BatchColumn",
        "BulkLoader",
        "CDC_DELETED_AT",
        "Consumer",
        "DeclaredType",
        "DedupPlan",
        "DestinationDialect",
        "EXTRACTED_AT",
        "FlushPolicy",
        "GENERATION_ID",
        "Held",
        "INT64_MAX",
        "INT64_MIN",
        "KeyIndex",
        "Limits",
        "LoadStats",
        "Log",
        "MAX_ARROW_YEAR",
        "MAX_REFUSED_VALUES",
        "META",
        "META_COLUMNS",
        "MergeSql",
        "NamingRules",
        "RAW_ID",
        "RN",
        "RawRecord",
        "SEQ",
        "SIZE",
        "SqlDestination",
        "StreamLoader",
        "TMP_SUFFIX",
        "TYPECAST",
        "TableOperations",
        "TablePlan",
        "Target",
        "TypeMapping",
        "ValueRefused",
        "WriteContext",
        "WriteOptions",
        "allocate",
        "choose_target",
        "delete_old_generations",
        "held",
        "index_name",
        "int64_airbyte_type",
        "is_current",
        "loads_lenient",
        "normalize",
        "plan_tables",
        "refresh_minimum",
        "short_hash",
        "to_json_text",
        "tombstone_columns",
        "with_hash",
    ],
    "dbkit.db": [
        "AirbyteType",
        "Capabilities",
        "DAY_MICROS",
        "Database",
        "Dialect",
        "NoTunnel",
        "PostgresConnection",
        "MySqlConnectionMixin",
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
        "open_tunnel",
        "json_schema_for",
        "mysql_code",
        "mysql_reason",
        "parse_jdbc_params",
        "parse_json_text",
        "schema_type",
        "state_to_python",
        "wide_int",
    ],
    "dbkit.protocol": [
        "FRAME_PREFIX",
        "SEPARATOR",
        "FrameError",
        "FrameHeader",
        "arrow_transport",
        "batch_from_lines",
        "decode_body",
        "encode_frame",
        "frame_schema",
        "parse_header",
        "AirbyteStream",
        "ConfiguredCatalog",
        "ConfiguredStream",
        "DestinationSyncMode",
        "InputState",
        "MessageWriter",
        "OutputClosedError",
        "Problem",
        "ProtocolInputError",
        "StreamDescriptor",
        "StreamValidator",
        "SyncMode",
        "change",
        "loads_exact",
        "now_ms",
        "parse_airbyte_stream",
        "parse_configured_catalog",
        "parse_state",
        "record_envelope",
        "record_suffix_with_changes",
        "record_validator",
        "validate_lines",
    ],
    "dbkit.testing": [
        "BadConfig",
        "ConnectorRunner",
        "DatabaseServer",
        "DestinationHarness",
        "DestinationSuite",
        "Harness",
        "MysqlDestinationHarness",
        "MysqlSourceHarness",
        "PostgresDestinationHarness",
        "PostgresSourceHarness",
        "ProtocolViolation",
        "RunResult",
        "ServerRequirements",
        "SourceHarness",
        "SourceSuite",
        "SqliteDestinationHarness",
        "SqliteSourceHarness",
        "Table",
        "TestDatabase",
        "TypeCase",
        "configured_catalog",
        "find_server",
        "get_server",
        "json_equal",
        "stream_descriptor",
        "suite_on",
        "to_line",
    ],
    "dbkit.testing.suites": [
        "BASE_MS",
        "BadConfig",
        "CdcHarness",
        "CdcSuite",
        "DestinationHarness",
        "DestinationSuite",
        "Harness",
        "ITEM_SCHEMA",
        "MysqlDestinationHarness",
        "MysqlSourceHarness",
        "PEOPLE",
        "PostgresDestinationHarness",
        "PostgresSourceHarness",
        "SourceHarness",
        "SourceSuite",
        "SqliteDestinationHarness",
        "SqliteFile",
        "SqliteSourceHarness",
        "Table",
        "TypeCase",
        "apply_records",
        "concurrent_writes",
        "deleted",
        "item",
        "json_equal",
        "people_table",
        "record",
        "state",
        "status",
        "stream",
        "suite_on",
        "sync_messages",
    ],
}


def _all(module_name: str) -> list[str]:
    names: list[str] = importlib.import_module(module_name).__all__
    return names


@pytest.mark.parametrize("module_name", list(EXPORTS))
def test_every_exported_name_imports(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = _all(module_name)
    assert len(names) == len(set(names)), f"{module_name}.__all__ names something twice"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("module_name", list(EXPORTS))
def test_the_exported_names_are_pinned(module_name: str) -> None:
    assert sorted(_all(module_name)) == sorted(EXPORTS[module_name])


def test_the_top_level_reexports_the_database_layer() -> None:
    missing = sorted(set(_all("dbkit.db")) - set(_all("dbkit")))
    assert not missing, f"dbkit does not re-export these names of dbkit.db: {missing}"


def test_the_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    import dbkit

    assert dbkit.__version__ == version("dbkit")


def test_an_unknown_name_is_an_attribute_error() -> None:
    import dbkit
    import dbkit.testing

    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(dbkit, "no_such_name")  # noqa: B009
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(dbkit.testing, "no_such_name")  # noqa: B009


@pytest.mark.parametrize(
    ("statement", "not_loaded"),
    [
        ("import dbkit", ["dbkit.config", "dbkit.source", "dbkit.destination", "pydantic", "sqlalchemy"]),
        ("import dbkit.protocol", ["dbkit.config", "dbkit.db", "pydantic", "sqlalchemy"]),
        ("from dbkit import SqlSource, main_for, field", ["dbkit.destination", "pyarrow"]),
        ("import dbkit.testing", ["dbkit.testing.suites", "dbkit.testing.servers", "pyarrow"]),
    ],
)
def test_imports_load_only_what_they_need(statement: str, not_loaded: list[str]) -> None:
    """A source's ``spec`` never loads the destination framework; ``import dbkit`` loads nothing."""
    probe = f"import sys\n{statement}\nprint(' '.join(m for m in {not_loaded!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
