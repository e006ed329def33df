"""The connector registry: every shipped connector is found through its entry point."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dbkit.sync.registry import KNOWN, lookup, resolve

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted((ROOT / "connectors").glob("*/pyproject.toml"))


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=[p.parent.name for p in PYPROJECTS])
def test_each_connector_package_declares_its_entry_point_and_script(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    name = pyproject.parent.name
    assert project["dependencies"] == ["dbkit"]
    assert name in project["scripts"]
    assert list(project["entry-points"]["dbkit.connectors"]) == [name]
    info = lookup(name)
    assert info is not None, f"{name} is not installed (scripts/test.sh installs every connector)"
    connector = info.create()
    assert (connector.name, connector.kind) == (name, info.kind)


def test_the_root_package_names_no_connector() -> None:
    root = (ROOT / "pyproject.toml").read_text()
    for pyproject in PYPROJECTS:
        assert pyproject.parent.name not in root


def test_only_installed_connectors_are_known() -> None:
    names = {info.name for info in KNOWN}
    assert {p.parent.name for p in PYPROJECTS} <= names
    assert not {"source-mysql", "destination-mysql"} & names


def test_a_url_goes_to_the_connector_whose_config_declares_its_scheme() -> None:
    assert resolve("sqlite:///a.db", "source").info.name == "source-sqlite"
    assert resolve("postgresql://h/db", "destination").info.name == "destination-postgres"
