"""docker/requirements.lock and docker/requirements-build.lock (``scripts/lock.py``): every pin
has hashes, every dependency a pyproject declares is locked at a version it accepts, and dbkit
with every connector installs from the locks exactly as the image does, with no network after the
locked files are fetched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import orjson
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "docker" / "requirements.lock"
BUILD_LOCK = ROOT / "docker" / "requirements-build.lock"
PYPROJECTS = [ROOT / "pyproject.toml", *sorted((ROOT / "connectors").glob("*/pyproject.toml"))]
OWN = {"dbkit", *(canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]) for p in PYPROJECTS)}


def locked(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """``name -> (version, sha256 hashes)`` of a pip requirements file with hashes."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--") else line.strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{path.name}: {spec} is not pinned with =="
        hashes = [option.strip() for option in options]
        assert hashes, f"{path.name}: {spec} has no hash"
        assert all(h.startswith("sha256:") and len(h) == 71 for h in hashes), spec
        entries[canonicalize_name(requirement.name)] = (Version(pin.version), hashes)
    return entries


def test_every_declared_dependency_is_locked_at_a_version_it_accepts() -> None:
    runtime = locked(RUNTIME_LOCK)
    build = locked(BUILD_LOCK)
    assert not OWN & set(runtime), "the project's own packages are built, never locked"
    for pyproject in PYPROJECTS:
        doc = tomllib.loads(pyproject.read_text())
        for lock, requirements in (
            (runtime, doc["project"]["dependencies"]),
            (build, doc["build-system"]["requires"]),
        ):
            for text in requirements:
                requirement = Requirement(text)
                name = canonicalize_name(requirement.name)
                if name in OWN:
                    continue
                assert name in lock, f"{pyproject.parent.name} needs {text}: run scripts/lock.py"
                version = lock[name][0]
                assert requirement.specifier.contains(version, prereleases=True), (
                    f"{pyproject.parent.name} needs {text}, the lock has {version}: run scripts/lock.py"
                )
                for extra in requirement.extras:  # psycopg[binary] -> psycopg-binary
                    assert canonicalize_name(f"{name}-{extra}") in lock, f"{text}: extra {extra} not locked"


def _isolated_env() -> dict[str, str]:
    """The environment of a fresh image: no pip configuration of this machine (indexes, local
    wheel folders, constraints), so only PyPI and the lock's hashes decide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str | Path], *, offline: bool = True) -> str:
    """Run a command; ``offline`` in a network namespace of its own with no interface up."""
    command = [str(a) for a in argv]
    if offline:
        command = ["unshare", "--net", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=_isolated_env(), timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow  # a virtual environment, about 30 packages, eight wheels built
def test_dbkit_and_every_connector_install_from_the_locks_without_network(tmp_path: Path) -> None:
    own, venv = tmp_path / "own", tmp_path / "venv"
    # the only network use: the locked files themselves, each checked against its hashes; kept in
    # the test environment's prefix, so a later run downloads only what a new lock adds
    files = Path(sys.prefix) / "dbkit-lock-files"
    if not _all_present(files, [BUILD_LOCK, RUNTIME_LOCK]):
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                "--dest",
                files,
                "-r",
                BUILD_LOCK,
                "-r",
                RUNTIME_LOCK,
            ],
            offline=False,
        )
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    # --no-compile: each module runs here once at most (the image compiles, for its read-only user)
    install: list[str | Path] = [
        *pip,
        "install",
        "--no-compile",
        "--no-index",
        "--find-links",
        files,
        "--no-deps",
        "--require-hashes",
    ]
    # as the image's build stage: the build backend from its lock, then the project's wheels
    _run([*install, "-r", BUILD_LOCK])
    connectors = [p.parent for p in PYPROJECTS[1:]]
    _run(
        [
            *pip,
            "wheel",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            own,
            ROOT,
            *connectors,
        ]
    )
    # as the image's final stage: the runtime lock, then the project's wheels, then pip check
    _run([*install, "-r", RUNTIME_LOCK])
    wheels = sorted(own.glob("*.whl"))
    assert len(wheels) == len(PYPROJECTS)
    _run([*pip, "install", "--no-compile", "--no-index", "--no-deps", *wheels])
    _run([*pip, "check"])
    frozen = _run([*pip, "freeze", "--all"]).splitlines()
    installed = {canonicalize_name(line.replace(" @ ", "==").split("==")[0]) for line in frozen}
    assert set(locked(RUNTIME_LOCK)) | OWN <= installed
    for connector in connectors:
        package = connector.name.replace("-", "_")
        (wheel,) = own.glob(f"dbkit_{package}-*.whl")
        assert f"{package}/py.typed" in zipfile.ZipFile(wheel).namelist(), wheel.name
    # every connector imports (one process), and one answers spec under its prefixed name
    packages = [c.name.replace("-", "_") for c in connectors]
    _run([venv / "bin" / "python", "-c", "; ".join(f"import {p}" for p in packages)])
    out = _run([venv / "bin" / "dbkit-source-postgres", "spec"])
    assert orjson.loads(out.splitlines()[-1])["type"] == "SPEC"


def _all_present(folder: Path, locks: list[Path]) -> bool:
    """Whether ``folder`` holds, for every pin of the locks, a file with one of its hashes."""
    if not folder.is_dir():
        return False
    present = {"sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    return all(present & set(hashes) for lock in locks for _, hashes in locked(lock).values())
