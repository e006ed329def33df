"""The harness of source-mysql's tests: a fresh database on the machine's MariaDB/MySQL service."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, ClassVar

import pymysql
import pytest

from dbkit.testing.suites import MysqlSourceHarness


class MySql(MysqlSourceHarness):
    command: ClassVar[str] = "source-mysql"

    def connect(self) -> Any:
        """An autocommit PyMySQL connection to the fresh database, closed after the test."""
        conn = pymysql.connect(**self.database.connection_params(), autocommit=True, charset="utf8mb4")
        self.request.addfinalizer(conn.close)
        return conn

    def run(self, *statements: str) -> None:
        conn = self.connect()
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def user(self, *grants: str, password: str = "") -> str:
        """A new user (at any host) with the given grants (``{db}`` is this database), dropped
        after the test."""
        name = f"dbkit_u_{secrets.token_hex(4)}"
        account = f"'{name}'@'%'"
        statements = [f"CREATE USER {account} IDENTIFIED BY '{password}'"]
        statements += [f"GRANT {g.format(db=f'`{self.database.database}`')} TO {account}" for g in grants]
        self.run(*statements)
        self.request.addfinalizer(lambda: self.run(f"DROP USER IF EXISTS {account}"))
        return name


class MySqlService(MySql):
    providers = ("local-service",)


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> MySql:
    return MySqlService(request, tmp_path)
