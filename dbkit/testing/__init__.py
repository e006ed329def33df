"""Test helpers for dbkit and for connectors built with it.

What a connector's tests use: the acceptance suites (:class:`SourceSuite`,
:class:`DestinationSuite`) and the harnesses they run on, :class:`ConnectorRunner` (a connector
run as a subprocess, its output checked against the protocol) with its :class:`RunResult`, and
real database servers (:func:`get_server`). The pytest plugin (:mod:`dbkit.testing.plugin`,
registered through the ``pytest11`` entry point) adds the server fixtures and markers.

Names load on first use, so loading the plugin costs nothing and a test imports only what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbkit.testing.runner import (
        ConnectorRunner,
        ProtocolViolation,
        RunResult,
        configured_catalog,
        stream_descriptor,
        to_line,
    )
    from dbkit.testing.servers import (
        DatabaseServer,
        ServerRequirements,
        TestDatabase,
        find_server,
        get_server,
    )
    from dbkit.testing.suites import (
        BadConfig,
        DestinationHarness,
        DestinationSuite,
        Harness,
        MysqlDestinationHarness,
        MysqlSourceHarness,
        PostgresDestinationHarness,
        PostgresSourceHarness,
        SourceHarness,
        SourceSuite,
        SqliteDestinationHarness,
        SqliteSourceHarness,
        Table,
        TypeCase,
        json_equal,
        suite_on,
    )

# name -> the module that defines it (imported on first use of the name)
_EXPORTS: dict[str, str] = {
    "ConnectorRunner": "dbkit.testing.runner",
    "ProtocolViolation": "dbkit.testing.runner",
    "RunResult": "dbkit.testing.runner",
    "configured_catalog": "dbkit.testing.runner",
    "stream_descriptor": "dbkit.testing.runner",
    "to_line": "dbkit.testing.runner",
    "DatabaseServer": "dbkit.testing.servers",
    "ServerRequirements": "dbkit.testing.servers",
    "TestDatabase": "dbkit.testing.servers",
    "find_server": "dbkit.testing.servers",
    "get_server": "dbkit.testing.servers",
    "BadConfig": "dbkit.testing.suites",
    "DestinationHarness": "dbkit.testing.suites",
    "DestinationSuite": "dbkit.testing.suites",
    "Harness": "dbkit.testing.suites",
    "MysqlDestinationHarness": "dbkit.testing.suites",
    "MysqlSourceHarness": "dbkit.testing.suites",
    "PostgresDestinationHarness": "dbkit.testing.suites",
    "PostgresSourceHarness": "dbkit.testing.suites",
    "SourceHarness": "dbkit.testing.suites",
    "SourceSuite": "dbkit.testing.suites",
    "SqliteDestinationHarness": "dbkit.testing.suites",
    "SqliteSourceHarness": "dbkit.testing.suites",
    "Table": "dbkit.testing.suites",
    "TypeCase": "dbkit.testing.suites",
    "json_equal": "dbkit.testing.suites",
    "suite_on": "dbkit.testing.suites",
}

__all__ = [
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
]

if not TYPE_CHECKING:  # mypy sees the imports above; a module __getattr__ would hide typos from it

    def __getattr__(name: str) -> Any:
        """Import an exported name on first use (then it is a plain module attribute)."""
        if name not in _EXPORTS:
            raise AttributeError(f"module 'dbkit.testing' has no attribute {name!r}")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
