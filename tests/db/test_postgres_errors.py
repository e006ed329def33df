"""classify_postgres_error turns real psycopg connect failures into messages a user can act on."""

from __future__ import annotations

import psycopg
import pytest

from dbkit.db.postgres import classify_postgres_error
from dbkit.errors import ConfigError, TransientError
from dbkit.testing.fixtures import server_or_skip
from dbkit.testing.servers.base import ServerRequirements

pytestmark = pytest.mark.postgres


def _connect_error(**params: object) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(connect_timeout=5, **params).close()  # type: ignore[arg-type]
    return caught.value


def _service() -> tuple[str, int]:
    server = server_or_skip("postgres", ServerRequirements(), providers=("local-service",))
    return server.host, server.port


def test_ssl_required_by_a_server_without_ssl_names_the_ssl_mode() -> None:
    host, port = _service()
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres") as conn:
        if conn.execute("SHOW ssl").fetchone() != ("off",):
            pytest.skip("the local service has SSL on; this case needs a server without SSL")
    exc = _connect_error(host=host, port=port, user="postgres", dbname="postgres", sslmode="require")
    found = classify_postgres_error(exc, "PostgreSQL at here")
    assert isinstance(found, ConfigError)
    assert "does not support SSL" in found.message
    assert "disable, allow or prefer" in found.message


def test_a_missing_database_is_a_config_error_naming_it() -> None:
    host, port = _service()
    exc = _connect_error(host=host, port=port, user="postgres", dbname="dbkit_no_such_db")
    found = classify_postgres_error(exc, "PostgreSQL at here")
    assert isinstance(found, ConfigError)
    assert "dbkit_no_such_db" in found.message


def test_a_refused_port_is_transient() -> None:
    exc = _connect_error(host="127.0.0.1", port=1, user="postgres", dbname="postgres")
    found = classify_postgres_error(exc, "PostgreSQL at here")
    assert isinstance(found, TransientError)
    assert "check the host, port and firewall" in found.message
