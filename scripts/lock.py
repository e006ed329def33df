"""Write the lock files the connector image installs from (``docker/Dockerfile``).

    .venv/bin/python scripts/lock.py

- ``docker/requirements.lock``: every third-party package dbkit and the shipped connectors need
  at run time (the union of their ``dependencies``, and theirs), for CPython 3.11 on Linux;
- ``docker/requirements-build.lock``: the build backends (setuptools for dbkit and a connector
  with a C extension, hatchling for the others) that turn them into wheels inside the image's
  build stage.

Each pins one version per package with the sha256 of every file PyPI has for it (any Linux
architecture), so the image installs with ``pip install --require-hashes --no-deps``. Versions are
those installed in the environment running this script (the ones the test suite ran with), as
constraints of a fresh resolution by uv against PyPI (this needs the network; nothing else in
the image build does beyond fetching the locked files). Run it after changing a dependency;
``tests/image/test_lock.py`` fails while a lock misses a package or pins a version a
pyproject excludes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import uv

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = ROOT / "docker" / "requirements.lock"
BUILD_LOCK = ROOT / "docker" / "requirements-build.lock"
PYTHON = ("3.11", "linux")  # the image's interpreter and platform


def project_names() -> set[str]:
    """The distributions this repository builds itself (never taken from PyPI)."""
    names = {"dbkit"}
    for pyproject in (ROOT / "connectors").glob("*/pyproject.toml"):
        names.add(tomllib.loads(pyproject.read_text())["project"]["name"])
    return names


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def runtime_requirements() -> list[str]:
    """The ``dependencies`` of dbkit and of every connector, less the project's own packages."""
    own = project_names()
    found: set[str] = set()
    for pyproject in [ROOT / "pyproject.toml", *sorted((ROOT / "connectors").glob("*/pyproject.toml"))]:
        requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        found.update(r for r in requirements if requirement_name(r) not in own)
    return sorted(found)


def build_requirements() -> list[str]:
    """The build backends the project's pyprojects name."""
    found: set[str] = set()
    for pyproject in [ROOT / "pyproject.toml", *(ROOT / "connectors").glob("*/pyproject.toml")]:
        found.update(tomllib.loads(pyproject.read_text())["build-system"]["requires"])
    return sorted(found)


def installed_versions() -> list[str]:
    """``name==version`` of every distribution installed here, less the project's own."""
    own = project_names()
    pins = {
        dist.metadata["Name"].lower().replace("_", "-"): dist.version
        for dist in distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower().replace("_", "-") not in own
    }
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def compile_lock(requirements: list[str], output: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requirements.in"
        source.write_text("\n".join(requirements) + "\n")
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(installed_versions()) + "\n")
        subprocess.run(
            [
                uv.find_uv_bin(),
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--python-version",
                PYTHON[0],
                "--python-platform",
                PYTHON[1],
                "--constraints",
                str(constraints),
                "--custom-compile-command",
                ".venv/bin/python scripts/lock.py",
                "--no-annotate",
                "--output-file",
                str(output),
                str(source),
            ],
            check=True,
        )


def main() -> int:
    compile_lock(runtime_requirements(), RUNTIME_LOCK)
    compile_lock(build_requirements(), BUILD_LOCK)
    for path in (RUNTIME_LOCK, BUILD_LOCK):
        pins = sum(1 for line in path.read_text().splitlines() if "==" in line)
        print(f"{path.relative_to(ROOT)}: {pins} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
