"""docker/compose.yaml matches the container provider; every connector script is installed
(the Dockerfile: tests/image/)."""

from __future__ import annotations

import shutil
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
)

ROOT = Path(__file__).resolve().parents[2]


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


def test_every_connector_script_is_installed() -> None:
    scripts: dict[str, str] = {}
    for pyproject in sorted((ROOT / "connectors").glob("*/pyproject.toml")):
        scripts.update(tomllib.loads(pyproject.read_text())["project"]["scripts"])
    connectors = [name for name in scripts if name.startswith(("source-", "destination-"))]
    assert "source-sqlite" in connectors
    assert "destination-sqlite" in connectors
    for name in connectors:
        assert shutil.which(name) or (Path(__import__("sys").executable).parent / name).exists(), name
