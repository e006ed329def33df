"""What the packages publish: classifiers, project URLs, ``py.typed``, and every connector's
console script under its plain name and under a ``dbkit-`` prefixed one (the plain names are
also the names of Airbyte's official connectors, which PyAirbyte runs from PATH first)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from fnmatch import fnmatchcase
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


def test_the_root_wheel_holds_dbkit_with_its_data_and_no_connector() -> None:
    """dbkit builds with setuptools (for its optional C extension): its packages are found under
    dbkit/ only, and every file there that is not a module (the JSON schemas, ``dbkit init``'s
    templates, py.typed, the extension's C source) matches a package-data pattern, as hatchling
    shipped them all."""
    packages = _wheel_packages(ROOT)
    assert "dbkit" in packages
    assert {p.split(".")[0] for p in packages} == {"dbkit"}, "the root wheel holds dbkit only"
    assert (ROOT / "dbkit" / "py.typed").is_file()
    table = _tool(ROOT)["setuptools"]
    data: dict[str, list[str]] = table["package-data"]
    shipped: set[Path] = set()
    for package in packages:
        folder = ROOT.joinpath(*package.split("."))
        for pattern in [*data.get("*", []), *data.get(package, [])]:
            shipped.update(f for f in folder.glob(pattern) if f.is_file())
    files = {
        f
        for f in (ROOT / "dbkit").rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in {".py", ".pyc", ".so"}
    }
    missing = sorted(str(f.relative_to(ROOT)) for f in files - shipped)
    assert not missing, f"not in dbkit's wheel (add to [tool.setuptools.package-data]): {missing}"
    for extension in table["ext-modules"]:
        # optional: a machine without a C compiler installs dbkit without it (the Python path)
        assert extension["optional"] is True, extension["name"]
        assert extension["name"].startswith("dbkit.")
        assert all((ROOT / source).is_file() for source in extension["sources"]), extension


def _tool(directory: Path) -> dict[str, Any]:
    tool: dict[str, Any] = tomllib.loads((directory / "pyproject.toml").read_text())["tool"]
    return tool


def _wheel_packages(directory: Path) -> list[str]:
    """The packages of the wheel, as its build backend's table names them: hatchling's list, or
    setuptools' (a connector with a C extension: a list; dbkit: ``packages.find``)."""
    tool = _tool(directory)
    if "setuptools" not in tool:
        hatch: list[str] = tool["hatch"]["build"]["targets"]["wheel"]["packages"]
        return hatch
    packages: list[str] | dict[str, Any] = tool["setuptools"]["packages"]
    if isinstance(packages, list):
        return packages
    find = packages["find"]
    return _find_packages(
        directory / find.get("where", ["."])[0],
        include=find.get("include", ["*"]),
        exclude=find.get("exclude", []),
        namespaces=find.get("namespaces", True),
    )


def _find_packages(where: Path, *, include: list[str], exclude: list[str], namespaces: bool) -> list[str]:
    """What setuptools' ``packages.find`` finds: the dotted names of the folders under ``where``
    (with an ``__init__.py`` unless ``namespaces``) that match ``include`` and not ``exclude``."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or "." in child.name or child.name == "__pycache__":
                continue
            if not namespaces and not (child / "__init__.py").is_file():
                continue  # nor anything below it, as setuptools
            name = prefix + child.name
            if any(fnmatchcase(name, p) for p in include) and not any(fnmatchcase(name, p) for p in exclude):
                found.append(name)
            walk(child, name + ".")

    walk(where, "")
    return found


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
