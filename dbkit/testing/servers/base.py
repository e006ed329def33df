"""The server interface shared by every engine and provider, and the small types around it."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self

from sqlalchemy.engine import URL

logger = logging.getLogger(__name__)

ServerKind = Literal["postgres", "mysql"]
KINDS: tuple[ServerKind, ...] = ("postgres", "mysql")

# Longest database name both engines accept (PostgreSQL: 63 bytes, MySQL: 64 characters).
MAX_DATABASE_NAME_LENGTH = 63

# Databases that drop_database refuses to touch, whatever the server.
PROTECTED_DATABASES = frozenset(
    {"postgres", "template0", "template1", "mysql", "information_schema", "performance_schema", "sys"}
)


def check_kind(kind: str) -> ServerKind:
    """Return ``kind`` as a ServerKind, or raise ValueError for anything else."""
    for known in KINDS:
        if kind == known:
            return known
    raise ValueError(f"unknown server kind {kind!r}; expected one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class ServerRequirements:
    """What a test needs from a server beyond accepting connections."""

    logical_replication: bool = False
    binlog: bool = False

    def validate_for(self, kind: ServerKind) -> None:
        """Raise ValueError when a requirement makes no sense for this kind of server."""
        if kind == "postgres" and self.binlog:
            raise ValueError("binlog is a MySQL/MariaDB requirement; PostgreSQL servers cannot offer it")
        if kind == "mysql" and self.logical_replication:
            raise ValueError(
                "logical_replication is a PostgreSQL requirement; for MySQL/MariaDB ask for binlog"
            )

    def describe(self) -> str:
        wanted = [name for name in ("logical_replication", "binlog") if getattr(self, name)]
        return ", ".join(wanted) if wanted else "none"


class ProviderUnavailable(Exception):
    """A provider cannot give a server; ``str(exc)`` says why."""


class NoServerAvailable(Exception):
    """No provider could give a server of the wanted kind with the wanted settings."""

    def __init__(
        self,
        kind: str,
        requirements: ServerRequirements,
        reasons: Sequence[tuple[str, str]],
    ) -> None:
        self.kind = kind
        self.requirements = requirements
        self.reasons: tuple[tuple[str, str], ...] = tuple(reasons)
        lines = [f"no {kind} server available (requirements: {requirements.describe()}):"]
        if self.reasons:
            lines.extend(f"  - {provider}: {reason}" for provider, reason in self.reasons)
        else:
            lines.append("  - no provider was tried")
        super().__init__("\n".join(lines))

    def __reduce__(
        self,
    ) -> tuple[type[NoServerAvailable], tuple[str, ServerRequirements, tuple[tuple[str, str], ...]]]:
        return (type(self), (self.kind, self.requirements, self.reasons))


class ServerHandle(Protocol):
    """Whatever keeps an owned server alive (a local process, a container); closing it stops the server."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class TestDatabase:
    """A database created for one test on a DatabaseServer."""

    __test__: ClassVar[bool] = False  # not a pytest test class, even when imported into a test module

    kind: ServerKind
    name: str
    url: str
    host: str
    port: int
    user: str
    password: str
    database: str

    def connection_params(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (postgres) or ``pymysql.connect`` (mysql)."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        params["dbname" if self.kind == "postgres" else "database"] = self.database
        return params


_name_counter = itertools.count(1)
_name_lock = threading.Lock()


def unique_database_name(prefix: str = "t") -> str:
    """A fresh database name: ``dbkit_<prefix>_<pid>_<counter>_<random>``, lower case, ``[a-z0-9_]`` only.

    The pid keeps pytest-xdist workers apart, the counter keeps one process's names apart, and the
    random part keeps apart processes that reuse a pid (or run on other machines against one server).
    """
    clean = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")[:20].rstrip("_") or "t"
    with _name_lock:
        number = next(_name_counter)
    name = f"dbkit_{clean}_{os.getpid()}_{number}_{secrets.token_hex(3)}"
    if len(name) > MAX_DATABASE_NAME_LENGTH:  # only with absurd pids or counters
        name = f"dbkit_{os.getpid()}_{number}_{secrets.token_hex(3)}"[:MAX_DATABASE_NAME_LENGTH]
    return name


class DatabaseServer(ABC):
    """A running database server that tests may create throwaway databases on.

    Engine subclasses (PostgresServer, MySQLServer) do the SQL; providers decide where the server comes
    from. Constructing one connects to the server and probes its version and settings.
    """

    kind: ClassVar[ServerKind]
    driver: ClassVar[str]  # SQLAlchemy drivername used in URLs

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str = "",
        admin_database: str | None = None,
        provider: str,
        handle: ServerHandle | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.admin_database = admin_database
        self.provider = provider
        self.handle = handle
        self.connect_timeout = connect_timeout
        # Filled in by the finder: the providers tried before this one and why they were passed over.
        self.skipped_providers: tuple[tuple[str, str], ...] = ()
        self._closed = False
        self._lock = threading.Lock()
        self._created: set[str] = set()
        self.flavor: str
        self.version: tuple[int, ...]
        self.settings: dict[str, bool]
        self.server_variables: dict[str, str]
        self.flavor, self.version, self.settings, self.server_variables = self._probe()

    # -- engine-specific parts -------------------------------------------------------------------

    @abstractmethod
    def _probe(self) -> tuple[str, tuple[int, ...], dict[str, bool], dict[str, str]]:
        """Return (flavor, version, settings, raw server variables) read from the live server."""

    @abstractmethod
    def _create_database(self, name: str) -> None: ...

    @abstractmethod
    def _drop_database(self, name: str) -> None: ...

    @abstractmethod
    def database_exists(self, name: str) -> bool: ...

    @abstractmethod
    def unmet_requirements(self, requirements: ServerRequirements) -> list[str]:
        """Why this server does not meet ``requirements`` (empty when it does)."""

    @abstractmethod
    def connection_params(self, database: str | None = None) -> dict[str, Any]:
        """Driver keyword arguments for connecting to ``database`` (the admin database when None)."""

    @abstractmethod
    def connect(self, database: str | None = None) -> Any:
        """An autocommit driver connection (psycopg / pymysql) to ``database`` (admin database when None)."""

    # -- shared behaviour ------------------------------------------------------------------------

    def satisfies(self, requirements: ServerRequirements) -> bool:
        return not self.unmet_requirements(requirements)

    def url_for(self, database: str | None) -> str:
        """SQLAlchemy URL (with driver and password) for ``database`` on this server."""
        return URL.create(
            self.driver,
            username=self.user,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    @property
    def admin_url(self) -> str:
        return self.url_for(self.admin_database)

    @property
    def closed(self) -> bool:
        return self._closed

    def create_database(self, prefix: str = "t") -> TestDatabase:
        """Create a fresh, uniquely named database and describe it."""
        self._check_open()
        name = unique_database_name(prefix)
        self._create_database(name)
        with self._lock:
            self._created.add(name)
        return TestDatabase(
            kind=self.kind,
            name=name,
            url=self.url_for(name),
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=name,
        )

    def drop_database(self, name: str) -> None:
        """Drop ``name`` (if it exists), ending other sessions connected to it."""
        self._check_open()
        if not name or name.lower() in PROTECTED_DATABASES or name == self.admin_database:
            raise ValueError(f"refusing to drop database {name!r}")
        self._drop_database(name)
        with self._lock:
            self._created.discard(name)

    def close(self) -> None:
        """Stop the server if this object owns it (throwaway process, container); else drop leftovers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            leftovers = sorted(self._created)
            self._created.clear()
        if self.handle is not None:
            self.handle.close()
            return
        for name in leftovers:  # databases a test forgot to drop on a server we do not own
            try:
                self._drop_database(name)
            except Exception as exc:  # best effort at shutdown
                logger.warning("could not drop leftover database %s on %s: %s", name, self, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        version = ".".join(str(part) for part in self.version)
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} {self.flavor} {version} at {self.host}:{self.port}"
            f" via {self.provider}{state}>"
        )
