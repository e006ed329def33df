"""``dbkit init source-NAME``: a connector package that works as written. It is generated into a
temporary directory and run from there (``python -m PACKAGE``, with PYTHONPATH; nothing is
installed): spec, check, discover and read on SQLite, ``dbkit preview`` of it on the real
PostgreSQL, its own acceptance test, and ruff and mypy --strict on its code."""

from __future__ import annotations

import ast
import importlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

import dbkit
from dbkit.builder.init import InitError, init_connector, placeholders
from dbkit.cli import main
from dbkit.manifest import load_manifest
from dbkit.testing.servers import TestDatabase
from tests.builder.conftest import BIN, run_dbkit

NAME = "source-acme-db"
PACKAGE = "source_acme_db"
REPO = Path(dbkit.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("init")
    created = init_connector(NAME, root)
    assert created.root == root / NAME
    return created.root


def run(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The generated connector as a process: ``python -m PACKAGE ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def messages(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def assert_generated_tests_pass(root: Path, keywords: str, env: dict[str, str] | None = None) -> None:
    """pytest on the generated package's ``tests`` (in a subprocess, from ``root``; ``env`` as
    ``subprocess.run`` takes it), only the tests ``-k keywords`` selects: every one of them passes,
    none is skipped."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests", "-k", keywords],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary
    assert "failed" not in summary
    assert "skipped" not in summary


def shop_db(tmp_path: Path, columns: str, rows: list[tuple[Any, ...]]) -> Path:
    """A SQLite file ``shop.db`` in ``tmp_path``: one table ``items (columns)`` holding ``rows``."""
    db = tmp_path / "shop.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"CREATE TABLE items ({columns})")
        conn.executemany(f"INSERT INTO items VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return db


def test_names_and_values() -> None:
    values = placeholders("source-acme-db")
    assert values == {
        "name": "source-acme-db",
        "kind": "source",
        "suffix": "acme-db",
        "package": "source_acme_db",
        "Class": "AcmeDb",
        "title": "Acme Db",
    }
    for bad in ("acme", "Source-Acme", "source-", "source-1db", "sink-acme", "source-acme db", "../source-x"):
        with pytest.raises(InitError, match="is not a connector name: give source-NAME"):
            placeholders(bad)


def test_the_package_layout(generated: Path) -> None:
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/__main__.py",
        f"{PACKAGE}/config.py",
        f"{PACKAGE}/dialect.py",
        f"{PACKAGE}/py.typed",
        f"{PACKAGE}/types.py",
        "tests/test_acceptance.py",
    ]
    pyproject = (generated / "pyproject.toml").read_text()
    assert f'{NAME} = "{PACKAGE}:run"' in pyproject
    assert f'dbkit-{NAME} = "{PACKAGE}:run"' in pyproject
    assert f'{NAME} = "{PACKAGE}:AcmeDbSource"' in pyproject  # the dbkit.connectors entry point
    assert "{{" not in "".join(p.read_text() for p in generated.rglob("*") if p.is_file())
    assert "class TestAcmeDb(SourceSuite):" in (generated / "tests/test_acceptance.py").read_text()


def test_the_generated_code_imports_only_the_public_api(generated: Path) -> None:
    """What a shipped connector may import (tests/test_architecture.py): names in the ``__all__``
    of ``dbkit`` and its packages, so a template never sends an author to an internal module."""
    imported = 0
    for path in generated.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dbkit":
                public = getattr(importlib.import_module(node.module), "__all__", [])
                for alias in node.names:
                    assert alias.name in public, f"{path.name}: {node.module}.{alias.name} is not public"
                    imported += 1
    assert imported >= 20


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "mine.txt").write_text("keep me")
    assert main(["init", NAME, "--dir", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / NAME / "mine.txt").read_text() == "keep me"
    assert main(["init", "Acme", "--dir", str(tmp_path)]) == 2
    assert "'Acme' is not a connector name" in capsys.readouterr().err
    assert main(["init", "destination-acme", "--dir", str(tmp_path)]) == 2
    assert "writes sources only so far" in capsys.readouterr().err
    # an empty directory is fine
    (tmp_path / "source-empty").mkdir()
    assert main(["init", "source-empty", "--dir", str(tmp_path)]) == 0
    assert "pip install -e" in capsys.readouterr().out


@pytest.mark.slow
def test_the_generated_connector_speaks_the_protocol(generated: Path, tmp_path: Path) -> None:
    db = shop_db(
        tmp_path,
        "id INTEGER PRIMARY KEY, name TEXT, price REAL, added DATE",
        [(1, "nut", 0.5, "2024-01-02"), (2, "bolt", 1.25, "oops")],
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"url": f"sqlite:///{db}"}))

    (spec,) = messages(run(generated, "spec"))
    url = spec["spec"]["connectionSpecification"]["properties"]["url"]
    assert url["airbyte_secret"] is True
    (status,) = messages(run(generated, "check", "--config", str(config)))
    assert status["connectionStatus"]["status"] == "SUCCEEDED"
    (catalog,) = messages(run(generated, "discover", "--config", str(config)))
    (stream,) = catalog["catalog"]["streams"]
    assert stream["name"] == "items"
    assert stream["source_defined_primary_key"] == [["id"]]
    assert stream["json_schema"]["properties"]["added"] == {"type": ["string", "null"], "format": "date"}
    configured = {
        "streams": [{"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]
    }
    (tmp_path / "catalog.json").write_text(json.dumps(configured))
    done = run(generated, "read", "--config", str(config), "--catalog", str(tmp_path / "catalog.json"))
    assert done.returncode == 0, done.stderr
    records = [m["record"] for m in messages(done) if m["type"] == "RECORD"]
    assert [r["data"] for r in records] == [
        {"id": 1, "name": "nut", "price": 0.5, "added": "2024-01-02"},
        {"id": 2, "name": "bolt", "price": 1.25, "added": None},
    ]
    assert records[1]["meta"]["changes"] == [
        {"field": "added", "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}
    ]
    # a mistake in the config: FAILED, naming the field
    config.write_text(json.dumps({"url": "not a url"}))
    (status,) = messages(run(generated, "check", "--config", str(config)))
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "url" in status["connectionStatus"]["message"]


@pytest.mark.postgres
@pytest.mark.slow
def test_init_then_preview_on_postgres(generated: Path, postgres_db: TestDatabase, tmp_path: Path) -> None:
    """The README's flow: the generated connector, on PATH as its console script, previewed with
    ``dbkit preview`` against a real PostgreSQL database (its password never shown)."""
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders AS SELECT g AS id, 'order ' || g AS note, "
            "timestamp '2024-01-01' + g * interval '1 hour' AS placed_at FROM generate_series(1, 1000) g"
        )
        conn.execute("ALTER TABLE orders ADD PRIMARY KEY (id)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / NAME
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {PACKAGE} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    url = (
        f"postgresql+psycopg://{postgres_db.user}:{postgres_db.password}@{postgres_db.host}:{postgres_db.port}"
        f"/{postgres_db.database}"
    )
    (tmp_path / "config.json").write_text(json.dumps({"url": url, "checkpoint_records": 4}))
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(generated)}
    done = run_dbkit(
        "preview", "--source", NAME, "--config", "config.json", "--limit", "4", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert f"{NAME}: check succeeded · 1 stream discovered" in text
    assert "orders full_refresh · first 4 records (more not read)" in text
    assert "order 4" in text
    assert "order 5" not in text
    assert "timestamp_without_timezone" in text
    assert 'state a sync would save here: {"v":1,"mode":"full_refresh","by":["id"],"after":[4]}' in text
    if postgres_db.password:
        assert postgres_db.password not in done.stdout + done.stderr


@pytest.mark.slow
def test_the_generated_code_is_ruff_and_mypy_clean(generated: Path) -> None:
    """With the generated pyproject's own settings (mypy --strict, the project's ruff rules)."""
    for argv in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=generated, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    cache = REPO / ".mypy_cache" / "dbkit-init"  # kept between runs: dbkit is analysed once
    done = subprocess.run(
        [str(BIN / "mypy"), "--cache-dir", str(cache), "."],
        cwd=generated,
        env={**os.environ, "MYPYPATH": str(REPO)},  # dbkit from this checkout (an editable install hides it)
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 6 source files" in done.stdout


@pytest.mark.slow
def test_the_generated_acceptance_test_passes(generated: Path) -> None:
    """pytest on the generated test, in a subprocess (its command is ``python -m PACKAGE``): spec,
    check and its bad configs, discover, a full refresh, a killed read resumed, the type cases.
    (The whole suite passes too; its resume-from-every-state tests take minutes on a busy machine.)"""
    assert_generated_tests_pass(
        generated,
        "spec_is or check_succeeds or refuses_bad or discover_is or full_refresh_returns "
        "or killed_read or type_case",
        env={**os.environ, "PYTHONPATH": str(generated)},
    )


@pytest.fixture(scope="module")
def generated_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    created = init_connector("source-acme-yaml", tmp_path_factory.mktemp("init-manifest"), manifest=True)
    return created.root


def test_init_manifest_writes_a_manifest_that_loads(generated_manifest: Path) -> None:
    """``dbkit init source-NAME --manifest``: a manifest.yaml that dbkit's loader validates."""
    files = sorted(
        str(p.relative_to(generated_manifest)) for p in generated_manifest.rglob("*") if p.is_file()
    )
    assert files == ["README.md", "manifest.yaml", "tests/test_acceptance.py"]
    source = load_manifest(generated_manifest / "manifest.yaml")
    assert source.name == "source-acme-yaml"
    assert "{{" not in (generated_manifest / "tests/test_acceptance.py").read_text()


@pytest.mark.slow
def test_the_generated_manifest_runs(generated_manifest: Path, tmp_path: Path) -> None:
    """``dbkit run`` and ``dbkit preview`` run the generated manifest against a SQLite file."""
    db = shop_db(
        tmp_path,
        "id INTEGER PRIMARY KEY, name TEXT, price MONEY",
        [(i, f"item {i}", i * 1.5) for i in range(1, 8)],
    )
    (tmp_path / "config.json").write_text(json.dumps({"path": str(db)}))
    manifest = str(generated_manifest / "manifest.yaml")
    done = run_dbkit("run", manifest, "check", "--config", "config.json", cwd=tmp_path)
    assert json.loads(done.stdout)["connectionStatus"]["status"] == "SUCCEEDED", done.stdout + done.stderr
    done = run_dbkit(
        "preview", "--source", manifest, "--config", "config.json", "--limit", "3", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (items,) = json.loads(done.stdout)["streams"]
    assert [r["data"] for r in items["records"]] == [
        {"id": i, "name": f"item {i}", "price": i * 1.5} for i in (1, 2, 3)
    ]
    assert items["types"]["price"] == "number"  # the manifest's type rule for MONEY
    assert items["more"] is True


def test_init_manifest_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "destination-acme", "--manifest", "--dir", str(tmp_path)]) == 2
    assert "manifests describe sources only" in capsys.readouterr().err


@pytest.mark.slow
def test_the_generated_manifest_acceptance_test_passes(generated_manifest: Path) -> None:
    """pytest on the manifest's generated test (``dbkit run manifest.yaml`` subprocesses): spec,
    check and its bad config, a full refresh, and the type case of the manifest's type rule (the
    rest of the suite runs on the generic reads every shipped manifest is tested with)."""
    assert_generated_tests_pass(
        generated_manifest, "spec_is or check_succeeds or refuses_bad or full_refresh_returns or money"
    )
