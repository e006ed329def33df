"""source-sqlite's trigger-kept change log passes the CDC acceptance suite."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

import pytest

from dbkit.protocol import StreamDescriptor
from dbkit.source import FullRefreshState, GlobalState
from dbkit.testing.suites import CdcHarness, CdcSuite, SqliteSourceHarness
from source_sqlite import SqliteChangeLog, install_change_log, truncate_table


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

    def test_a_state_another_connector_wrote_is_migrated_by_the_reader(
        self, source: SqliteCdc, people: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``CdcReader.migrate_state`` turns a foreign shared state into dbkit's: no snapshot of
        a stream it calls done, the changes after its position read."""
        with sqlite3.connect(source.path) as conn:
            conn.execute("UPDATE dbkit_people SET name = 'before' WHERE id = 1")
            (mark,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_dbkit_changes'").fetchone()
            conn.execute("UPDATE dbkit_people SET name = 'after' WHERE id = 2")
        conn.close()
        people_stream = StreamDescriptor("dbkit_people", source.namespace)
        seen: list[Any] = []

        def migrate(reader: Any, shared: Any, streams: Any) -> GlobalState:
            seen.append(dict(shared))
            return GlobalState(position={"id": mark}, streams={people_stream: FullRefreshState.done()})

        monkeypatch.setattr(SqliteChangeLog, "migrate_state", migrate)
        foreign = {"type": "GLOBAL", "global": {"shared_state": {"state": {"k": "{}"}}, "stream_states": []}}
        messages = self.read_in_process(
            source, source.cdc_config(), self.catalog(source), [foreign], lambda: None, monkeypatch
        )
        assert seen == [{"state": {"k": "{}"}}]
        records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
        assert [(r["id"], r["name"]) for r in records] == [(2, "after")]
        last = [m["state"] for m in messages if m["type"] == "STATE"][-1]
        assert last["global"]["shared_state"]["mode"] == "cdc"
