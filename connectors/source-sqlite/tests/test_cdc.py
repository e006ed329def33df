"""source-sqlite's trigger-kept change log passes the CDC acceptance suite."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from dbkit.testing.suites import CdcHarness, CdcSuite, SqliteSourceHarness
from source_sqlite import install_change_log, truncate_table


class SqliteCdc(SqliteSourceHarness, CdcHarness):
    def cdc_config(self, **overrides: Any) -> dict[str, Any]:
        return self.config(
            **{"replication_method": {"method": "CDC", "initial_waiting_seconds": 5}, **overrides}
        )

    def capture(self, *tables: str) -> None:
        with sqlite3.connect(self.path) as conn:
            install_change_log(conn, list(tables))

    def acknowledged(self) -> Mapping[str, Any] | None:
        with sqlite3.connect(self.path) as conn:
            (purged,) = conn.execute("SELECT max(purged_through) FROM _dbkit_changes_meta").fetchone()
        return {"id": purged}

    def truncate_table(self, table: str) -> None:
        with sqlite3.connect(self.path) as conn:
            truncate_table(conn, table)
        conn.close()

    def lose_log(self) -> None:
        with sqlite3.connect(self.path) as conn:
            (last,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_dbkit_changes'").fetchone()
            conn.execute("DELETE FROM _dbkit_changes")
            conn.execute("UPDATE _dbkit_changes_meta SET purged_through = ?", (last,))


class TestSqliteCdc(CdcSuite):
    harness = SqliteCdc
