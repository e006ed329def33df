"""URLs of ``dbkit sync`` against the real servers (the mapping itself: tests/test_urls.py).

The local PostgreSQL and MariaDB run without SSL: ``sslmode=disable`` and ``prefer`` (MySQL:
``PREFERRED``) connect, ``require`` (``REQUIRED``) is a config_error that says what to choose. A
MariaDB user whose password holds reserved characters logs in through a URL with the password
percent-encoded, and with ``/ ? # :`` written as they are; with an unencoded ``@`` the URL is
refused before anything connects, and no piece of the password is printed.
"""

from __future__ import annotations

import secrets
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest

from dbkit import cli
from dbkit.runner.registry import resolve
from dbkit.testing.servers.base import TestDatabase


def url_config(url: str) -> dict[str, Any]:
    config = resolve(url, "source").url_config
    assert config is not None
    return config


def sync(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = ["sync", "--source", url, "--destination", f"sqlite:///{tmp_path / 'w.db'}"]
    argv += ["--state-file", str(tmp_path / "state.json"), "--no-progress", "--in-process"]
    code = cli.main(argv)
    return code, capsys.readouterr().err


def warehouse_ids(tmp_path: Path, table: str) -> list[int]:
    with sqlite3.connect(tmp_path / "w.db") as conn:
        return sorted(row[0] for row in conn.execute(f'SELECT id FROM "{table}"'))


# ================================================================================= PostgreSQL


@pytest.mark.postgres
@pytest.mark.slow  # one sync and two connector runs
def test_postgres_sslmode_against_a_server_without_ssl(
    postgres_db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str], connector_runner: Any
) -> None:
    db = postgres_db
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        assert conn.execute("SHOW ssl").fetchone() == ("off",), "this test needs a server without SSL"
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    base = f"postgresql://{db.user}@{db.host}:{db.port}/{db.database}"
    runner = connector_runner("source-postgres")
    # disable: a whole sync, with libpq parameters and a list setting in the same URL
    code, err = sync(f"{base}?sslmode=disable&application_name=dbkit-url&schemas=public", tmp_path, capsys)
    assert code == 0, err
    assert warehouse_ids(tmp_path, "items") == [1, 2]
    # prefer: connects in the clear to a server without SSL
    status = runner.check(url_config(f"{base}?sslmode=prefer&connect_timeout=5")).connection_status
    assert status["status"] == "SUCCEEDED", status
    # require: refused by the server's lack of SSL, as something the user must change
    result = runner.discover(url_config(f"{base}?sslmode=require"))
    assert result.exit_code != 0
    (error,) = result.errors()
    assert error["failure_type"] == "config_error", error
    assert "the server does not support SSL" in error["message"]
    assert "sslmode" in error["message"]


# ================================================================================= MariaDB

PASSWORD_CHARACTERS = "Kp/Zq?Rb#Lm:Hn"  # written raw: SQLAlchemy's parser reads them as the password


@pytest.fixture
def mariadb_user(mysql_db: TestDatabase) -> Iterator[tuple[str, str]]:
    """A user whose password holds ``@ : / ? # %`` and a space, granted the test database."""
    user = f"dbkit_url_{secrets.token_hex(3)}"
    password = f"{PASSWORD_CHARACTERS}@Tail%41 99"
    params = mysql_db.connection_params()
    with pymysql.connect(**params, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT ALL ON `{mysql_db.database}`.* TO '{user}'@'%'")
        cursor.execute(f"CREATE TABLE `{mysql_db.database}`.items (id int PRIMARY KEY, name text)")
        cursor.execute(f"INSERT INTO `{mysql_db.database}`.items VALUES (1, 'a'), (2, 'b')")
    yield user, password
    with pymysql.connect(**params, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def pieces(secret: str) -> set[str]:
    encoded = urllib.parse.quote(secret, safe="")
    return {s[i : i + 4] for s in (secret, encoded) for i in range(len(s) - 3)}


@pytest.mark.mysql
@pytest.mark.slow  # a sync, three connector runs
def test_mariadb_password_with_reserved_characters_and_ssl_modes(
    mysql_db: TestDatabase,
    mariadb_user: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    connector_runner: Any,
) -> None:
    user, password = mariadb_user
    where = f"{mysql_db.host}:{mysql_db.port}/{mysql_db.database}"
    encoded = f"mysql://{user}:{urllib.parse.quote(password, safe='')}@{where}"
    code, err = sync(encoded, tmp_path, capsys)
    assert code == 0, err
    assert warehouse_ids(tmp_path, "items") == [1, 2]
    runner = connector_runner("source-mysql")
    # '/ ? # :' need no encoding: the password runs to the '@' before the host
    with pymysql.connect(**mysql_db.connection_params(), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD_CHARACTERS,))
    raw = f"mysql://{user}:{PASSWORD_CHARACTERS}@{where}"
    status = runner.check(url_config(f"{raw}?ssl_mode=PREFERRED")).connection_status
    assert status["status"] == "SUCCEEDED", status
    # REQUIRED against a server without SSL: a config_error saying what to choose
    result = runner.discover(url_config(f"{raw}?ssl_mode=REQUIRED"))
    (error,) = result.errors()
    assert error["failure_type"] == "config_error", error
    assert "ssl_mode preferred" in error["message"]
    # an unencoded '@': refused before anything connects, and nothing of the password shown
    code, err = sync(f"mysql://{user}:{password}@{where}", tmp_path / "x", capsys)
    assert code == 2
    assert "percent-encode" in err
    leaked = sorted(p for p in pieces(password) if p in err)
    assert not leaked, err
