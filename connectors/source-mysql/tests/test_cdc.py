"""source-mysql's binlog change data capture passes the CDC suite on a throwaway MariaDB with a
row-format binlog (started by dbkit.testing from the machine's binaries)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
import pymysql
import pytest

from dbkit.testing import ConnectorRunner, RunResult
from dbkit.testing.suites import CdcHarness, CdcSuite, MysqlSourceHarness
from source_mysql.cdc.reader import ACKNOWLEDGED

pytestmark = [pytest.mark.slow]


class AcknowledgementsSeen:
    """A runner whose reads note the positions the connector logged as acknowledged."""

    def __init__(self, harness: MySqlCdc, runner: ConnectorRunner) -> None:
        self._harness = harness
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def read(self, *args: Any, **kwargs: Any) -> RunResult:
        result = self._runner.read(*args, **kwargs)
        for line in result.logs():
            if ACKNOWLEDGED in line:
                self._harness.acknowledgements.append(orjson.loads(line.split(ACKNOWLEDGED, 1)[1]))
        return result


class MySqlCdc(MysqlSourceHarness, CdcHarness):
    command = "source-mysql"
    server_fixture: ClassVar[str] = "mysql_server_binlog"
    position_column: ClassVar[str] = "_ab_cdc_cursor"

    def cdc_config(self, **overrides: Any) -> dict[str, Any]:
        method = {"method": "CDC", "initial_waiting_seconds": 120}
        return self.config(**{"replication_method": method, **overrides})

    def server_connection(self) -> Any:
        conn = pymysql.connect(**self.database.connection_params(), autocommit=True)
        self.request.addfinalizer(conn.close)
        return conn

    def run(self, *statements: str) -> list[Any]:
        out: list[Any] = []
        with self.server_connection().cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                out.append(cur.fetchall())
        return out

    def capture(self, *tables: str) -> None:
        """Every table's changes reach the binlog (ROW format, full images: the server's settings)."""

    def runner(self, **options: Any) -> ConnectorRunner:
        return AcknowledgementsSeen(self, super().runner(**options))

    def acknowledged(self) -> Mapping[str, Any] | None:
        """The binlog keeps no reader's position: acknowledging is the reader's LOG line naming
        the position (:meth:`MySqlCdcReader.acknowledge`), which the runner collects here."""
        return self.acknowledgements[-1] if self.acknowledgements else None

    @property
    def acknowledgements(self) -> list[Mapping[str, Any]]:
        if not hasattr(self, "_acks"):
            self._acks: list[Mapping[str, Any]] = []
        return self._acks

    def lose_log(self) -> None:
        """The binlog the saved position points into is gone: rotate, then purge up to the new file."""
        self.run("FLUSH BINARY LOGS")
        ((row,),) = self.run("SHOW MASTER STATUS")
        deadline = time.monotonic() + 30
        while True:  # MariaDB keeps a file until its binlog checkpoint is written
            self.run(f"PURGE BINARY LOGS TO '{row[0]}'")
            (logs,) = self.run("SHOW BINARY LOGS")
            if len(logs) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [r[0] for r in logs] == [row[0]], f"the binlogs before {row[0]} were not purged: {logs}"


class TestMySqlCdc(CdcSuite):
    harness = MySqlCdc
