"""docker/: the compose file matches the container provider; the Dockerfile suits the Airbyte platform."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbkit.testing.servers.containers import (
    CONTAINER_IMAGES,
    MARIADB_COMMAND,
    MYSQL_COMMAND,
    POSTGRES_COMMAND,
    docker_unavailable_reason,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


@pytest.mark.parametrize(
    ("service", "image_key", "command"),
    [
        ("postgres", "postgres", POSTGRES_COMMAND),
        ("mysql", "mysql", MYSQL_COMMAND),
        ("mariadb", "mariadb", MARIADB_COMMAND),
    ],
)
def test_compose_matches_container_provider(service: str, image_key: str, command: tuple[str, ...]) -> None:
    spec = _compose()[service]
    assert spec["image"] == CONTAINER_IMAGES[image_key]
    assert tuple(spec["command"]) == command
    assert all(p.startswith("127.0.0.1:") for p in spec["ports"]), "test databases listen on loopback only"


def test_dockerfile_entrypoint_is_the_airbyte_entrypoint() -> None:
    env = re.search(r'AIRBYTE_ENTRYPOINT="([^"]+)"', DOCKERFILE)
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', DOCKERFILE, re.MULTILINE)
    assert env is not None
    assert entry is not None
    assert env.group(1) == entry.group(1)
    assert env.group(1).startswith("/"), "the platform needs an absolute path"
    assert 'io.airbyte.name="dbkit/${CONNECTOR}"' in DOCKERFILE
    assert 'io.airbyte.version="${VERSION}"' in DOCKERFILE
    assert re.search(r"^USER airbyte$", DOCKERFILE, re.MULTILINE)
    assert "mkdir --mode 755 /airbyte" in DOCKERFILE


def test_every_connector_script_is_installed() -> None:
    scripts: dict[str, str] = {}
    for pyproject in sorted((ROOT / "connectors").glob("*/pyproject.toml")):
        scripts.update(tomllib.loads(pyproject.read_text())["project"]["scripts"])
    connectors = [name for name in scripts if name.startswith(("source-", "destination-"))]
    assert "source-sqlite" in connectors
    assert "destination-sqlite" in connectors
    for name in connectors:
        assert shutil.which(name) or (Path(__import__("sys").executable).parent / name).exists(), name


@pytest.mark.docker
@pytest.mark.slow
def test_connector_image_builds_and_answers_spec() -> None:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Docker engine: {reason}")
    tag = "dbkit/source-sqlite:test"
    subprocess.run(
        [
            "docker",
            "build",
            "-f",
            "docker/Dockerfile",
            "--build-arg",
            "CONNECTOR=source-sqlite",
            "-t",
            tag,
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    out = subprocess.run(
        ["docker", "run", "--rm", "-i", tag, "spec"], capture_output=True, check=True, text=True
    )
    assert '"type":"SPEC"' in out.stdout
    labels = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "dbkit/source-sqlite" in labels
