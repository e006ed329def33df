"""Servers in Docker containers through testcontainers.

testcontainers and docker are imported inside functions only, so importing dbkit.testing.servers
works on machines without them (or without a Docker engine).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Final, TypeVar

from dbkit.testing.servers.base import DatabaseServer, ServerKind
from dbkit.testing.servers.mysql import MySQLServer
from dbkit.testing.servers.postgres import PostgresServer

logger = logging.getLogger(__name__)

# The one place where container images and their versions are pinned.
CONTAINER_IMAGES: Final = MappingProxyType(
    {
        "postgres": "postgres:15",
        "mysql": "mysql:8.0",
        "mariadb": "mariadb:10.11",
    }
)
MYSQL_FLAVOR_ENV_VAR = (
    "DBKIT_TEST_MYSQL_FLAVOR"  # "mysql" (default) or "mariadb": which image serves kind mysql
)
CONTAINER_PASSWORD = "dbkit"  # noqa: S105 - a throwaway container's password, not a secret

# Containers always start with replication on: one container serves every requirement.
POSTGRES_COMMAND: Final = (
    "-c",
    "wal_level=logical",
    "-c",
    "max_replication_slots=10",
    "-c",
    "max_wal_senders=10",
)
MARIADB_COMMAND: Final = ("--log-bin", "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1")
MYSQL_COMMAND: Final = (*MARIADB_COMMAND, "--gtid-mode=ON", "--enforce-gtid-consistency=ON")

_T = TypeVar("_T")


def mysql_container_flavor(flavor: str | None = None) -> str:
    """Which image serves kind "mysql": the argument, else $DBKIT_TEST_MYSQL_FLAVOR, else "mysql"."""
    chosen = (flavor or os.environ.get(MYSQL_FLAVOR_ENV_VAR) or "mysql").strip().lower()
    if chosen not in ("mysql", "mariadb"):
        raise ValueError(f"{MYSQL_FLAVOR_ENV_VAR}/flavor must be 'mysql' or 'mariadb', not {chosen!r}")
    return chosen


def container_spec(kind: ServerKind, mysql_flavor: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(image, command arguments) for a container serving ``kind``."""
    if kind == "postgres":
        return CONTAINER_IMAGES["postgres"], POSTGRES_COMMAND
    flavor = mysql_container_flavor(mysql_flavor)
    return CONTAINER_IMAGES[flavor], MYSQL_COMMAND if flavor == "mysql" else MARIADB_COMMAND


def docker_unavailable_reason(timeout: float = 3.0) -> str | None:
    """None when a Docker engine answers a ping within ``timeout`` seconds, else why not."""
    try:
        importlib.import_module("testcontainers.core.container")
    except ImportError as exc:
        return f"testcontainers is not installed ({exc}); install dbkit[testing]"
    try:
        docker: Any = importlib.import_module("docker")
    except ImportError as exc:
        return f"the docker Python SDK is not installed ({exc})"
    environment = dict(os.environ)
    try:  # honour testcontainers' own host settings (tc.host, DOCKER_HOST, docker context)
        docker_client_module: Any = importlib.import_module("testcontainers.core.docker_client")
        host = docker_client_module.get_docker_host()
        if host:
            environment["DOCKER_HOST"] = host
    except Exception as exc:  # internal API; fall back to docker's own lookup
        logger.debug("testcontainers could not tell the Docker host: %s", exc)
    where = environment.get("DOCKER_HOST") or "the default Docker socket (unix:///var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=max(1, round(timeout)), environment=environment)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Docker engine answered at {where} (timeout {timeout:g}s): {type(exc).__name__}: {exc}"
    return None


def _container_class(kind: ServerKind) -> Any:
    """The testcontainers class: its 4.x layout moved modules from testcontainers.X to .community.X."""
    module_name, class_name = (
        ("postgres", "PostgresContainer") if kind == "postgres" else ("mysql", "MySqlContainer")
    )
    errors: list[str] = []
    for candidate in (f"testcontainers.community.{module_name}", f"testcontainers.{module_name}"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(candidate)
            return getattr(module, class_name)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{candidate}: {exc}")
    raise ImportError(f"testcontainers has no {class_name} ({'; '.join(errors)})")


class ContainerHandle:
    """Stops (and removes) the container when the server is closed."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.container.stop()


def _retry(factory: Callable[[], _T], timeout: float) -> _T:
    """Call ``factory`` until it stops raising (the mapped port can lag behind the log line)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return factory()
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def start_container_server(
    kind: ServerKind, *, mysql_flavor: str | None = None, timeout: float = 120.0
) -> DatabaseServer:
    """Start a container for ``kind`` (logical WAL / row binlog on); return its server once it answers."""
    image, command = container_spec(kind, mysql_flavor)
    cls = _container_class(kind)
    if kind == "postgres":
        container = cls(
            image=image, username="postgres", password=CONTAINER_PASSWORD, dbname="postgres", driver="psycopg"
        )
    else:
        container = cls(
            image=image, dialect="pymysql", username="root", password=CONTAINER_PASSWORD, dbname="test"
        )
    container.with_command(list(command))
    handle = ContainerHandle(container)
    try:
        container.start()  # waits with testcontainers' own strategy (psql inside / "ready for connections")
        host = str(container.get_container_host_ip())
        port = int(container.get_exposed_port(5432 if kind == "postgres" else 3306))
        server_class: type[PostgresServer] | type[MySQLServer] = (
            PostgresServer if kind == "postgres" else MySQLServer
        )
        admin_database = "postgres" if kind == "postgres" else "test"
        server: DatabaseServer = _retry(
            lambda: server_class(
                host=host,
                port=port,
                user="postgres" if kind == "postgres" else "root",
                password=CONTAINER_PASSWORD,
                admin_database=admin_database,
                provider="container",
                handle=handle,
            ),
            timeout,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            handle.close()
        raise
    logger.info("started %s container %s: %r", image, container.get_container_id()[:12], server)
    return server
