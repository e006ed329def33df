"""destination-mysql passes the destination acceptance suite on the MariaDB / MySQL server of the
environment (the local service here: MariaDB 10.11)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit.testing.suites import DestinationSuite, MysqlDestinationHarness
from destination_mysql import MySqlDestination
from destination_mysql.types import COMMENT_PREFIX

NAMESPACES = ("dbkit_ns_a", "dbkit_ns_b")
"""Databases the suite's namespace tests write into (dropped after each test)."""


class Mysql(MysqlDestinationHarness):
    command: ClassVar[str] = "destination-mysql"
    connector_class: ClassVar[type[Any]] = MySqlDestination

    def setup(self, **fixtures: Any) -> None:
        super().setup(**fixtures)
        self.request.addfinalizer(self._drop_namespaces)

    def _drop_namespaces(self) -> None:
        with self.engine.begin() as conn:
            for name in NAMESPACES:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")

    def config(self, **overrides: Any) -> dict[str, Any]:
        return super().config(**{"ssl": False, **overrides})

    def read_table(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Rows as the driver gives them, except that DATETIME values of a column holding UTC
        (``timestamp_with_timezone``) carry their zone."""
        rows = super().read_table(name, namespace)
        with self.engine.connect() as conn:
            utc = set(
                conn.execute(
                    sa.text(
                        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :s "
                        "AND TABLE_NAME = :t AND COLUMN_COMMENT = :c"
                    ),
                    {
                        "s": namespace or self.database.database,
                        "t": name,
                        "c": f"{COMMENT_PREFIX}timestamp_with_timezone",
                    },
                ).scalars()
            )
        for row in rows:
            for column in utc:
                value = row.get(column)
                if isinstance(value, dt.datetime):
                    row[column] = value.replace(tzinfo=dt.UTC)
        return rows


@pytest.mark.mysql
class TestMysqlDestination(DestinationSuite):
    harness = Mysql
