"""``--version`` on dbkit and on every shipped connector, and ``dbkit.__version__``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import dbkit

ROOT = Path(__file__).resolve().parents[1]
CONNECTORS = sorted(p.parent.name for p in (ROOT / "connectors").glob("*/pyproject.toml"))
BIN = Path(sys.executable).parent


def test_dbkit_knows_its_version() -> None:
    assert dbkit.__version__ == version("dbkit")
    done = subprocess.run([BIN / "dbkit", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith(f"dbkit {dbkit.__version__} (Python ")


@pytest.mark.parametrize("name", CONNECTORS)
def test_each_connector_prints_its_own_and_dbkits_version(name: str) -> None:
    done = subprocess.run([BIN / name, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip().startswith(
        f"{name} {version(f'dbkit-{name}')} (dbkit {dbkit.__version__}, Python "
    ), done.stdout
