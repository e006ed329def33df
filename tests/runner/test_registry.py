"""The connector registry: every shipped connector is found through its entry point."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

from dbkit.runner.registry import KNOWN, ConnectorInfo, lookup, registered, resolve

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted((ROOT / "connectors").glob("*/pyproject.toml"))


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower()


def _third_party_imports(package_dir: Path) -> set[str]:
    """Top-level names of the modules a connector's code (not its tests) imports, less the
    standard library, dbkit and the connector's own package (module names here are also the
    distributions' names)."""
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        if "tests" in path.relative_to(package_dir).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    own = {p.parent.name for p in package_dir.glob("*/__init__.py")}
    return {m.lower() for m in found if m not in sys.stdlib_module_names and m not in own} - {"dbkit"}


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=[p.parent.name for p in PYPROJECTS])
def test_each_connector_package_declares_its_entry_point_and_script(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    name = pyproject.parent.name
    declared = {_requirement_name(r) for r in project["dependencies"]}
    assert "dbkit" in declared
    undeclared = sorted(_third_party_imports(pyproject.parent) - declared)
    assert not undeclared, f"{name} imports {undeclared} without declaring them as dependencies"
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
    shipped = {p.parent.name for p in PYPROJECTS}
    assert shipped <= names
    # a connector dbkit knows of but does not ship (yet) is not offered as if it were installed
    assert not ({"source-mysql", "destination-mysql"} - shipped) & names


def test_a_url_goes_to_the_connector_whose_config_declares_its_scheme() -> None:
    assert resolve("sqlite:///a.db", "source").info.name == "source-sqlite"
    assert resolve("postgresql://h/db", "destination").info.name == "destination-postgres"


def test_a_stand_in_registered_for_a_block_gives_the_installed_connector_back() -> None:
    installed = lookup("source-sqlite")
    assert installed is not None
    assert installed.module is not None
    with registered(ConnectorInfo("source-sqlite", "source", schemes=("nothing",))):
        assert lookup("source-sqlite") != installed
    assert lookup("source-sqlite") == installed


def test_mysql_urls_go_to_the_mysql_source() -> None:
    found = resolve("mysql://root:pw@127.0.0.1/app", "source")
    assert found.info.name == "source-mysql"
    assert found.url_config is not None
    assert found.url_config["database"] == "app"
