"""What the packages publish: classifiers, project URLs, ``py.typed``, and every connector's
console script under its plain name and under a ``dbkit-`` prefixed one (the plain names are
also the names of Airbyte's official connectors, which PyAirbyte runs from PATH first)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
import pytest
import trove_classifiers

ROOT = Path(__file__).resolve().parents[1]
CONNECTORS = sorted(p.parent for p in (ROOT / "connectors").glob("*/pyproject.toml"))
PYPROJECTS = [ROOT / "pyproject.toml", *(c / "pyproject.toml" for c in CONNECTORS)]
BIN = Path(sys.executable).parent
REQUIRED_CLASSIFIERS = {
    "License :: OSI Approved :: Apache Software License",
    "Programming Language :: Python :: 3.11",
    "Typing :: Typed",
    "Topic :: Database",
}


def _project(pyproject: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(pyproject.read_text())["project"]
    return project


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: p.parent.name)
def test_each_package_has_classifiers_and_project_urls(pyproject: Path) -> None:
    project = _project(pyproject)
    classifiers = project.get("classifiers", [])
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert not unknown, f"not trove classifiers: {unknown}"
    assert set(classifiers) >= REQUIRED_CLASSIFIERS
    urls = project.get("urls", {})
    assert set(urls) >= {"Homepage", "Repository", "Issues"}
    root_urls = _project(ROOT / "pyproject.toml")["urls"]
    # one repository for all: changing it is one edit repeated, and a test sees a stale copy
    assert urls["Repository"] == root_urls["Repository"]
    assert urls["Issues"] == root_urls["Issues"]
    assert urls["Homepage"].startswith(root_urls["Repository"])


@pytest.mark.parametrize("connector", CONNECTORS, ids=lambda p: p.name)
def test_each_connector_package_is_typed(connector: Path) -> None:
    packages = _wheel_packages(connector)
    assert packages, f"{connector.name} names no wheel package"
    for package in packages:
        assert (connector / package / "py.typed").is_file(), f"{connector.name}: {package}/py.typed missing"


def _wheel_packages(directory: Path) -> list[str]:
    """The packages of the connector's wheel, as its build backend's table names them (hatchling,
    or setuptools for a connector with a C extension)."""
    tool = tomllib.loads((directory / "pyproject.toml").read_text())["tool"]
    packages: list[str] = (
        tool["setuptools"]["packages"]
        if "setuptools" in tool
        else tool["hatch"]["build"]["targets"]["wheel"]["packages"]
    )
    return packages


@pytest.mark.slow  # seven connector processes (about a second of CPU each)
def test_every_connector_runs_spec_under_both_names() -> None:
    """The plain and the ``dbkit-`` name are one command: both installed, naming the same object
    (the plain names run in many other tests), and the prefixed one answers ``spec``."""
    installed = {point.name: point.value for point in entry_points(group="console_scripts")}
    runs: dict[str, subprocess.Popen[bytes]] = {}
    for connector in CONNECTORS:
        scripts = _project(connector / "pyproject.toml")["scripts"]
        name = connector.name
        assert scripts.get(f"dbkit-{name}") == scripts[name], f"{name} has no dbkit-{name} alias"
        assert installed.get(f"dbkit-{name}") == installed[name] == scripts[name]
        assert (BIN / name).is_file()
        runs[name] = subprocess.Popen(
            [BIN / f"dbkit-{name}", "spec"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    for name, process in runs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (
            f"dbkit-{name} spec exited {process.returncode}: {err.decode()[-2000:]}"
        )
        message = orjson.loads(out.splitlines()[-1])
        assert message["type"] == "SPEC"
        assert message["spec"]["connectionSpecification"]["type"] == "object"
