"""Where test servers come from, the ordered finder that picks one, and the per-process cache.

Default order (the first provider that can meet the requirements wins):

1. ``env``: the URL in $DBKIT_TEST_POSTGRES_URL / $DBKIT_TEST_MYSQL_URL (must already meet them);
2. ``container``: a testcontainers container, when a Docker engine answers (configured to meet them);
3. ``local-binaries``: a throwaway server started from locally installed binaries (configured to meet them);
4. ``local-service``: the default service on 127.0.0.1, if it answers (must already meet them).

$DBKIT_TEST_SERVER_PROVIDER (comma-separated names) or a ``providers`` argument replaces that order;
the argument wins over the environment variable.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar, Final

import psycopg
import pymysql  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dbkit.testing.servers.base import (
    DatabaseServer,
    NoServerAvailable,
    ProviderUnavailable,
    ServerKind,
    ServerRequirements,
    check_kind,
)
from dbkit.testing.servers.containers import (
    MYSQL_FLAVOR_ENV_VAR,
    container_spec,
    docker_unavailable_reason,
    start_container_server,
)
from dbkit.testing.servers.mysql import MySQLServer, find_mysql_binaries, start_local_mysql
from dbkit.testing.servers.postgres import PostgresServer, find_postgres_bindir, start_local_postgres

logger = logging.getLogger(__name__)

PROVIDER_ENV_VAR: Final = "DBKIT_TEST_SERVER_PROVIDER"
URL_ENV_VARS: Final[Mapping[ServerKind, str]] = MappingProxyType(
    {"postgres": "DBKIT_TEST_POSTGRES_URL", "mysql": "DBKIT_TEST_MYSQL_URL"}
)
DEFAULT_PROVIDER_ORDER: Final = ("env", "container", "local-binaries", "local-service")

_DEFAULT_PORTS: Final[Mapping[ServerKind, int]] = MappingProxyType({"postgres": 5432, "mysql": 3306})
_DEFAULT_USERS: Final[Mapping[ServerKind, str]] = MappingProxyType({"postgres": "postgres", "mysql": "root"})
_URL_BACKENDS: Final[Mapping[ServerKind, tuple[str, ...]]] = MappingProxyType(
    {"postgres": ("postgresql",), "mysql": ("mysql", "mariadb")}
)
_CONNECT_ERRORS = (psycopg.Error, pymysql.err.MySQLError, OSError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _server_class(kind: ServerKind) -> type[PostgresServer] | type[MySQLServer]:
    return PostgresServer if kind == "postgres" else MySQLServer


def _check_requirements(
    server: DatabaseServer, requirements: ServerRequirements, what: str
) -> DatabaseServer:
    unmet = server.unmet_requirements(requirements)
    if unmet:
        server.close()
        raise ProviderUnavailable(f"{what} does not meet the requirements: {'; '.join(unmet)}")
    return server


class ServerProvider(ABC):
    """One way of getting a server. ``provide`` returns one or raises ProviderUnavailable with the reason."""

    name: ClassVar[str]

    def precheck(self, kind: ServerKind) -> str | None:
        """A cheap reason this provider cannot work at all here (None when it might)."""
        return None

    @abstractmethod
    def provide(self, kind: ServerKind, requirements: ServerRequirements) -> DatabaseServer: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class EnvUrlProvider(ServerProvider):
    """A server someone else runs, named by a SQLAlchemy URL in the environment (its query is ignored)."""

    name = "env"

    def precheck(self, kind: ServerKind) -> str | None:
        var = URL_ENV_VARS[kind]
        return None if os.environ.get(var, "").strip() else f"{var} is not set"

    def provide(self, kind: ServerKind, requirements: ServerRequirements) -> DatabaseServer:
        reason = self.precheck(kind)
        if reason:
            raise ProviderUnavailable(reason)
        var = URL_ENV_VARS[kind]
        try:
            url = make_url(os.environ[var].strip())
        except ArgumentError as exc:
            raise ProviderUnavailable(f"{var} is not a SQLAlchemy URL: {exc}") from None
        backend = url.get_backend_name()
        if backend not in _URL_BACKENDS[kind]:
            expected = " or ".join(_URL_BACKENDS[kind])
            raise ProviderUnavailable(f"{var} is a {backend} URL; expected {expected}")
        what = f"the server in {var} ({url.render_as_string(hide_password=True)})"
        try:
            server = _server_class(kind)(
                host=url.host or "localhost",
                port=url.port or _DEFAULT_PORTS[kind],
                user=url.username or _DEFAULT_USERS[kind],
                password=url.password or "",
                admin_database=url.database or ("postgres" if kind == "postgres" else None),
                provider=self.name,
            )
        except _CONNECT_ERRORS as exc:
            raise ProviderUnavailable(f"{what} did not answer: {_one_line(exc)}") from exc
        return _check_requirements(server, requirements, what)


class ContainerProvider(ServerProvider):
    """A fresh container through testcontainers, when a Docker engine answers."""

    name = "container"

    def __init__(
        self, *, mysql_flavor: str | None = None, ping_timeout: float = 3.0, start_timeout: float = 180.0
    ) -> None:
        self.mysql_flavor = mysql_flavor
        self.ping_timeout = ping_timeout
        self.start_timeout = start_timeout

    def precheck(self, kind: ServerKind) -> str | None:
        return docker_unavailable_reason(self.ping_timeout)

    def provide(self, kind: ServerKind, requirements: ServerRequirements) -> DatabaseServer:
        reason = self.precheck(kind)
        if reason:
            raise ProviderUnavailable(reason)
        image, _ = container_spec(kind, self.mysql_flavor)
        try:
            server = start_container_server(kind, mysql_flavor=self.mysql_flavor, timeout=self.start_timeout)
        except Exception as exc:  # docker/testcontainers raise many kinds; report, do not crash the finder
            logger.warning("Docker answered but the %s container did not start", image, exc_info=True)
            raise ProviderUnavailable(
                f"Docker answered but the {image} container did not start: {_one_line(exc)}"
            ) from exc
        return _check_requirements(server, requirements, f"the {image} container")


class LocalBinariesProvider(ServerProvider):
    """A throwaway server started from the locally installed binaries, configured for the requirements."""

    name = "local-binaries"

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout

    def precheck(self, kind: ServerKind) -> str | None:
        try:
            if kind == "postgres":
                find_postgres_bindir()
            else:
                find_mysql_binaries()
        except ProviderUnavailable as exc:
            return str(exc)
        return None

    def provide(self, kind: ServerKind, requirements: ServerRequirements) -> DatabaseServer:
        server: DatabaseServer
        if kind == "postgres":
            server = start_local_postgres(requirements, timeout=self.start_timeout)
        else:
            server = start_local_mysql(requirements, timeout=self.start_timeout)
        return _check_requirements(server, requirements, "the throwaway server")


class LocalServiceProvider(ServerProvider):
    """The machine's own service on its default port (postgres/trust, root/no password), if it answers."""

    name = "local-service"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        postgres_port: int = 5432,
        mysql_port: int = 3306,
        connect_timeout: float = 3.0,
    ) -> None:
        self.host = host
        self.ports: dict[ServerKind, int] = {"postgres": postgres_port, "mysql": mysql_port}
        self.connect_timeout = connect_timeout

    def provide(self, kind: ServerKind, requirements: ServerRequirements) -> DatabaseServer:
        port = self.ports[kind]
        what = f"the local {kind} service on {self.host}:{port}"
        try:
            server = _server_class(kind)(
                host=self.host,
                port=port,
                user=_DEFAULT_USERS[kind],
                admin_database="postgres" if kind == "postgres" else "test",
                provider=self.name,
                connect_timeout=self.connect_timeout,
            )
        except _CONNECT_ERRORS as exc:
            raise ProviderUnavailable(f"{what} did not answer: {_one_line(exc)}") from exc
        return _check_requirements(server, requirements, what)


PROVIDERS: Final[Mapping[str, Callable[[], ServerProvider]]] = MappingProxyType(
    {
        EnvUrlProvider.name: EnvUrlProvider,
        ContainerProvider.name: ContainerProvider,
        LocalBinariesProvider.name: LocalBinariesProvider,
        LocalServiceProvider.name: LocalServiceProvider,
    }
)

ProviderSpec = str | ServerProvider


def resolve_providers(providers: str | Sequence[ProviderSpec] | None = None) -> tuple[ProviderSpec, ...]:
    """The providers to try, in order: the argument, else $DBKIT_TEST_SERVER_PROVIDER, else the default order.

    Names may be given as one comma-separated string; duplicates are dropped, the order is kept, and an
    unknown name raises ValueError.
    """
    if providers is None:
        providers = os.environ.get(PROVIDER_ENV_VAR, "").strip() or DEFAULT_PROVIDER_ORDER
    items: Sequence[ProviderSpec] = providers.split(",") if isinstance(providers, str) else providers
    resolved: list[ProviderSpec] = []
    for item in items:
        entry = item.strip().lower() if isinstance(item, str) else item
        if isinstance(entry, str):
            if not entry:
                continue
            if entry not in PROVIDERS:
                raise ValueError(
                    f"unknown server provider {entry!r} (from {PROVIDER_ENV_VAR} or the providers argument);"
                    f" expected some of: {', '.join(PROVIDERS)}"
                )
        if entry not in resolved:
            resolved.append(entry)
    if not resolved:
        raise ValueError("no server providers given")
    return tuple(resolved)


def find_server(
    kind: str,
    requirements: ServerRequirements | None = None,
    providers: str | Sequence[ProviderSpec] | None = None,
) -> DatabaseServer:
    """A new server from the first provider that can meet ``requirements``; the caller closes it.

    Raises NoServerAvailable (listing every provider tried and why it was passed over) when none can.
    The returned server's ``skipped_providers`` holds the reasons for the providers tried before it.
    """
    checked_kind = check_kind(kind)
    requirements = requirements or ServerRequirements()
    requirements.validate_for(checked_kind)
    reasons: list[tuple[str, str]] = []
    for spec in resolve_providers(providers):
        provider = PROVIDERS[spec]() if isinstance(spec, str) else spec
        try:
            server = provider.provide(checked_kind, requirements)
        except ProviderUnavailable as exc:
            logger.debug("%s provider passed over for %s: %s", provider.name, checked_kind, exc)
            reasons.append((provider.name, str(exc)))
            continue
        server.skipped_providers = tuple(reasons)
        logger.info("using %r (requirements: %s)", server, requirements.describe())
        return server
    raise NoServerAvailable(checked_kind, requirements, reasons)


# -- per-process cache -------------------------------------------------------------------------------

_cache: dict[tuple[object, ...], DatabaseServer] = {}
_cache_lock = threading.Lock()


def get_server(
    kind: str,
    requirements: ServerRequirements | None = None,
    providers: str | Sequence[ProviderSpec] | None = None,
) -> DatabaseServer:
    """A server shared by the whole process for (kind, requirements, providers); do not close it.

    Owned servers (throwaway processes, containers) are stopped at interpreter exit, or by
    close_cached_servers(). NoServerAvailable is raised as by find_server (and not cached).
    """
    checked_kind = check_kind(kind)
    requirements = requirements or ServerRequirements()
    resolved = resolve_providers(providers)
    # The environment that changes what a provider returns is part of the key.
    environment = (os.environ.get(URL_ENV_VARS[checked_kind]), os.environ.get(MYSQL_FLAVOR_ENV_VAR))
    key: tuple[object, ...] = (checked_kind, requirements, resolved, environment)
    with _cache_lock:
        server = _cache.get(key)
        if server is None or server.closed:
            server = find_server(checked_kind, requirements, resolved)
            _cache[key] = server
        return server


def close_cached_servers() -> None:
    """Close every server get_server handed out (owned ones stop; others drop their leftover databases)."""
    with _cache_lock:
        servers = list(_cache.values())
        _cache.clear()
    for server in servers:
        try:
            server.close()
        except Exception as exc:  # keep closing the others
            logger.warning("could not close %r: %s", server, exc)


atexit.register(close_cached_servers)
