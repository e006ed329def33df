"""pytest plugin for dbkit, registered through the ``pytest11`` entry point.

Installing dbkit (with its ``testing`` extra) gives every pytest run in that environment:

- real database servers and a fresh database per test (``postgres_db``, ``postgres_db_logical``,
  ``mysql_db``, and the session-scoped ``postgres_server``, ``postgres_server_logical``,
  ``mysql_server``, ``mysql_server_binlog``; see :mod:`dbkit.testing.fixtures`);
- ``connector_runner``: a factory of :class:`~dbkit.testing.runner.ConnectorRunner` working in
  the test's temporary directory;
- the markers ``slow``, ``postgres``, ``mysql`` and ``docker``.

Importing this module stays cheap: the servers and suites load only when a test asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

# the suites are test code: let pytest show the values in their failed assertions
pytest.register_assert_rewrite("dbkit.testing.suites")

pytest_plugins = ["dbkit.testing.fixtures", "dbkit.testing.sshd"]

MARKERS = {
    "slow": "takes more than a few seconds (still run in CI)",
    "postgres": "needs a PostgreSQL server",
    "mysql": "needs a MySQL or MariaDB server",
    "docker": "needs a Docker engine",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the source suite's ``test_type_case`` with its harness's type cases."""
    if "type_case" in metafunc.fixturenames and metafunc.cls is not None:
        harness = getattr(metafunc.cls, "harness", None)
        cases = list(getattr(harness, "type_cases", ()))
        metafunc.parametrize("type_case", cases, ids=[c.name for c in cases])


@pytest.fixture
def connector_runner(tmp_path: Path) -> Callable[..., Any]:
    """``connector_runner("source-foo")`` -> a ConnectorRunner whose files live in tmp_path."""
    from dbkit.testing.runner import ConnectorRunner

    def make(command: str | Sequence[str], **options: Any) -> ConnectorRunner:
        workdir = tmp_path / "connector"
        workdir.mkdir(exist_ok=True)
        return ConnectorRunner(command, workdir=workdir, **options)

    return make
