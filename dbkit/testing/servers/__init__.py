"""Real PostgreSQL and MySQL/MariaDB servers for tests.

    from dbkit.testing.servers import ServerRequirements, get_server

    server = get_server("postgres", ServerRequirements(logical_replication=True))
    db = server.create_database()      # fresh, uniquely named; db.url is a SQLAlchemy URL
    ...
    server.drop_database(db.name)

Servers come from the first provider that can meet the requirements: a URL in the environment, a
Docker container, a throwaway server from local binaries, or the local default service (see
``providers``). Importing this package needs neither Docker nor testcontainers.
"""

from __future__ import annotations

from dbkit.testing.servers.base import (
    DatabaseServer,
    NoServerAvailable,
    ProviderUnavailable,
    ServerKind,
    ServerRequirements,
    TestDatabase,
    unique_database_name,
)
from dbkit.testing.servers.containers import CONTAINER_IMAGES
from dbkit.testing.servers.local_process import LocalServerError, LocalServerProcess
from dbkit.testing.servers.mysql import MySQLServer, start_local_mysql
from dbkit.testing.servers.postgres import PostgresServer, start_local_postgres
from dbkit.testing.servers.providers import (
    DEFAULT_PROVIDER_ORDER,
    PROVIDER_ENV_VAR,
    PROVIDERS,
    URL_ENV_VARS,
    ContainerProvider,
    EnvUrlProvider,
    LocalBinariesProvider,
    LocalServiceProvider,
    ServerProvider,
    close_cached_servers,
    find_server,
    get_server,
    resolve_providers,
)

__all__ = [
    "CONTAINER_IMAGES",
    "DEFAULT_PROVIDER_ORDER",
    "PROVIDERS",
    "PROVIDER_ENV_VAR",
    "URL_ENV_VARS",
    "ContainerProvider",
    "DatabaseServer",
    "EnvUrlProvider",
    "LocalBinariesProvider",
    "LocalServerError",
    "LocalServerProcess",
    "LocalServiceProvider",
    "MySQLServer",
    "NoServerAvailable",
    "PostgresServer",
    "ProviderUnavailable",
    "ServerKind",
    "ServerProvider",
    "ServerRequirements",
    "TestDatabase",
    "close_cached_servers",
    "find_server",
    "get_server",
    "resolve_providers",
    "start_local_mysql",
    "start_local_postgres",
    "unique_database_name",
]
