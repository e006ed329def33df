"""Versions as ``--version`` prints them: the connector's package, dbkit's, Python's."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` ("0+unknown" for a source tree never installed)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0+unknown"


def version_text(name: str) -> str:
    """``source-postgres 0.1.0 (dbkit 0.1.0, Python 3.11.7)``; a connector's distribution is
    ``dbkit-<name>``, dbkit's own command is ``dbkit``."""
    python = platform.python_version()
    if name == "dbkit":
        return f"dbkit {package_version('dbkit')} (Python {python})"
    return f"{name} {package_version(f'dbkit-{name}')} (dbkit {package_version('dbkit')}, Python {python})"
