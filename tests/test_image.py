"""``dbkit build-image`` (dbkit.image): the build context of a shipped connector, of a source
manifest (a generated package whose console script runs it, built into a wheel and run here against
the real PostgreSQL), the Airbyte metadata, and every mistake; the image itself is built where a
Docker engine answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest
import yaml

from dbkit import ConfigError, cli
from dbkit.image import checkout, definition_id, write_context
from dbkit.testing.servers import TestDatabase
from dbkit.testing.servers.containers import docker_unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
PG_MANIFEST = ROOT / "connectors" / "manifest-postgres-generic" / "manifest.yaml"


def test_a_shipped_connector_gets_the_dockerfile_its_locks_and_airbyte_metadata(tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    context = write_context("dbkit-source-postgres", out, tag="0.2.0")
    assert context.image == "dbkit/source-postgres:0.2.0"
    for name in (
        "docker/Dockerfile",
        "docker/requirements.lock",
        "docker/requirements-build.lock",
        "pyproject.toml",
    ):
        assert (out / name).read_bytes() == (ROOT / name).read_bytes()
    package = out / "connectors" / "source-postgres"
    assert (package / "source_postgres" / "__init__.py").is_file()
    assert not (package / "tests").exists()
    assert not list(out.rglob("__pycache__"))
    metadata = yaml.safe_load((out / "metadata.yaml").read_text())
    assert metadata["metadataSpecVersion"] == "1.0"
    data = metadata["data"]
    assert data["connectorType"] == "source"
    assert data["connectorSubtype"] == "database"
    assert (data["dockerRepository"], data["dockerImageTag"]) == ("dbkit/source-postgres", "0.2.0")
    assert data["definitionId"] == definition_id("dbkit/source-postgres")
    assert data["documentationUrl"].startswith("https://")
    definition = json.loads((out / "definition.json").read_text())
    assert definition == {
        "name": "source-postgres",
        "dockerRepository": "dbkit/source-postgres",
        "dockerImageTag": "0.2.0",
        "documentationUrl": data["documentationUrl"],
    }
    script = (out / "build.sh").read_text()
    assert os.access(out / "build.sh", os.X_OK)
    assert "docker build -f docker/Dockerfile --build-arg CONNECTOR=source-postgres" in script
    assert "-t dbkit/source-postgres:0.2.0 ." in script
    # written again (--force) for another repository: the id follows the repository, stably
    again = write_context("source-postgres", out, repository="acme/pg", tag="1", force=True)
    assert again.image == "acme/pg:1"
    assert yaml.safe_load((out / "metadata.yaml").read_text())["data"]["definitionId"] == definition_id(
        "acme/pg"
    )
    assert definition_id("acme/pg") != definition_id("dbkit/source-postgres")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_manifest_becomes_a_package_whose_console_script_runs_it(
    tmp_path: Path, postgres_db: TestDatabase
) -> None:
    out = tmp_path / "ctx"
    context = write_context(str(PG_MANIFEST.parent), out)
    name = context.target.name
    package = out / "connectors" / name
    module = name.replace("-", "_")
    assert (package / module / "manifest.yaml").read_bytes() == PG_MANIFEST.read_bytes()
    assert yaml.safe_load((out / "metadata.yaml").read_text())["data"]["tags"] == [
        "language:python",
        "cdk:dbkit:manifest",
    ]
    # the package builds offline, as the Dockerfile builds it, and its wheel carries the manifest
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(wheels),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert f"{module}/manifest.yaml" in names
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert f"dbkit-{name} = {module}:run" in entry_points
    assert f"{name} = {module}:Source" in entry_points
    # its console script speaks the protocol: spec, check and discover against the real server
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10, 2))")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "host": postgres_db.host,
                "port": postgres_db.port,
                "database": postgres_db.database,
                "username": postgres_db.user,
                "password": postgres_db.password,
                "ssl_mode": "disable",
            }
        )
    )

    def run(*args: str) -> list[dict[str, object]]:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}; {module}.run()", *args],
            env={**os.environ, "PYTHONPATH": str(package)},
            capture_output=True,
            text=True,
            check=True,
        )
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    (spec,) = [m for m in run("spec") if m["type"] == "SPEC"]
    assert "database" in spec["spec"]["connectionSpecification"]["properties"]  # type: ignore[index]
    statuses = [m for m in run("check", "--config", str(config)) if m["type"] == "CONNECTION_STATUS"]
    assert statuses[-1]["connectionStatus"] == {"status": "SUCCEEDED"}
    (catalog,) = [m for m in run("discover", "--config", str(config)) if m["type"] == "CATALOG"]
    assert [s["name"] for s in catalog["catalog"]["streams"]] == ["orders"]  # type: ignore[index]


def test_mistakes_are_config_errors_that_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a shipped connector"):
        write_context("source-nonesuch", tmp_path / "a")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: source-bad\nconnection: {driver: 3}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        write_context(str(bad), tmp_path / "b")
    package = tmp_path / "source-mine"
    package.mkdir()
    (package / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.scripts]\nsource-mine = "m:run"\n'
    )
    with pytest.raises(ConfigError, match=r"add dbkit-source-mine"):
        write_context(str(package), tmp_path / "c")
    with pytest.raises(ConfigError, match="--tag"):
        write_context("source-sqlite", tmp_path / "d", tag="no spaces")
    with pytest.raises(ConfigError, match="--repository"):
        write_context("source-sqlite", tmp_path / "d", repository="Upper/Case")
    # a directory it did not write is never replaced, not even with --force
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(ConfigError, match="exists and is not empty"):
            write_context("source-sqlite", taken, force=force)
    assert (taken / "keep.txt").read_text() == "mine"
    assert checkout() == ROOT


def test_the_command_writes_the_context_and_builds_it_where_docker_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ctx"
    assert cli.main(["build-image", "source-sqlite", "--out", str(out), "--tag", "0.3.0"]) == 0
    err = capsys.readouterr().err
    assert "dbkit/source-sqlite:0.3.0" in err
    assert "definition.json" in err
    assert cli.main(["build-image", "source-sqlite", "--out", str(out)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    reason = docker_unavailable_reason()
    code = cli.main(
        ["build-image", "source-sqlite", "--out", str(out), "--force", "--tag", "0.3.0", "--build"]
    )
    err = capsys.readouterr().err
    if reason is not None:
        # no engine here: the context is written, the build fails with docker's own reason
        assert code == 1
        assert "docker" in err
        assert (out / "build.sh").is_file()
        pytest.skip(f"the image itself is not built here: {reason}")
    assert code == 0, err
    spec = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "dbkit/source-sqlite:0.3.0", "spec"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"type":"SPEC"' in spec.stdout.replace(" ", "")
