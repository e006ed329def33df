"""Password authentication on a real server: both PostgreSQL connectors' ``check`` answers a
wrong password with a message a person can act on, and never prints the password.

The throwaway server (local binaries) asks the role ``reader`` for a SCRAM password, while every
other login keeps trust (so the test can set the role up)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbkit.testing.runner import ConnectorRunner
from dbkit.testing.servers import ProviderUnavailable
from dbkit.testing.servers.postgres import PostgresServer, start_local_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RIGHT = "Right-horse-battery-7"
WRONG = "Wr0ng-staple-horse-9"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    try:
        server = start_local_postgres(hba=["host all reader 127.0.0.1/32 scram-sha-256"])
    except ProviderUnavailable as exc:
        pytest.skip(f"no throwaway PostgreSQL: {exc}")
    try:
        with psycopg.connect(
            host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("CREATE ROLE reader LOGIN PASSWORD {}").format(sql.Literal(RIGHT)))
            conn.execute("GRANT CREATE ON SCHEMA public TO reader")
            conn.execute("CREATE TABLE public.things (id integer PRIMARY KEY)")
            conn.execute("GRANT SELECT ON public.things TO reader")
        yield server
    finally:
        server.close()


def _config(server: PostgresServer, password: str) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "database": "postgres",
        "username": "reader",
        "password": password,
        "ssl_mode": {"mode": "disable"},
    }


@pytest.mark.parametrize("command", ["source-postgres", "destination-postgres"])
def test_check_names_a_wrong_password_and_hides_it(
    server: PostgresServer, command: str, tmp_path: Path
) -> None:
    runner = ConnectorRunner(command, workdir=tmp_path)
    refused = runner.check(_config(server, WRONG))
    status = refused.connection_status
    assert status["status"] == "FAILED"
    assert "password authentication failed" in status["message"]
    assert "check the username and password" in status["message"]
    assert WRONG not in refused.output_text()

    accepted = runner.check(_config(server, RIGHT))
    assert accepted.connection_status["status"] == "SUCCEEDED", accepted.connection_status
    assert RIGHT not in accepted.output_text()


def test_read_with_a_wrong_password_is_a_config_error(server: PostgresServer, tmp_path: Path) -> None:
    runner = ConnectorRunner("source-postgres", workdir=tmp_path)
    catalog = {
        "streams": [
            {
                "stream": {
                    "name": "things",
                    "namespace": "public",
                    "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
                    "supported_sync_modes": ["full_refresh"],
                },
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
        ]
    }
    result = runner.read(_config(server, WRONG), catalog)
    assert result.exit_code not in (0, None)
    (error,) = result.errors()
    assert error["failure_type"] == "config_error"
    assert "password authentication failed" in error["message"]
    assert WRONG not in result.output_text()
