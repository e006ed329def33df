"""`dbkit sync` of source-mysql CDC into destination-postgres (append_dedup): after the snapshot,
rounds of inserts, updates (of the key too) and deletes, writes running during a sync, an ALTER
TABLE between changes (binlog_row_metadata FULL), and an idle run, the destination table equals
the source table row for row with no key twice."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit.testing.suites import PEOPLE, CdcSuite, people_table

from .test_cdc import MySqlCdc

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_dbkit_sync_keeps_a_dedup_table_equal_to_the_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = MySqlCdc(request, tmp_path)
    people_table().create(source)
    source_config = tmp_path / "source.json"
    source_config.write_text(json.dumps(source.cdc_config()))
    warehouse = request.getfixturevalue("postgres_db")
    dest: dict[str, Any] = {"host": warehouse.host, "port": warehouse.port, "database": warehouse.database,
                            "username": warehouse.user, "ssl_mode": {"mode": "disable"}}  # fmt: skip
    if warehouse.password:
        dest["password"] = warehouse.password
    dest_config = tmp_path / "dest.json"
    dest_config.write_text(json.dumps(dest))
    state_file = tmp_path / "state.json"
    namespace = source.database.database

    def sync() -> None:
        code = subprocess.run(
            [
                str(Path(sys.executable).with_name("dbkit")), "sync",
                "--source", "source-mysql", "--source-config", str(source_config),
                "--destination", "destination-postgres", "--destination-config", str(dest_config),
                "--state-file", str(state_file), "--streams", PEOPLE, "--no-progress",
            ],
            check=False,
            timeout=300,
        ).returncode  # fmt: skip
        assert code == 0

    def destination_rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(**warehouse.connection_params()) as conn:
            rows = conn.execute(
                f'SELECT id, name, seq, note FROM "{namespace}"."{PEOPLE}" ORDER BY id'
            ).fetchall()
        return [tuple(r) for r in rows]

    def source_rows() -> list[tuple[Any, ...]]:
        (rows,) = source.run(f"SELECT id, name, seq, note FROM {source.qualified(PEOPLE)} ORDER BY id")
        return [tuple(r) for r in rows]

    def check(round_: str) -> None:
        got = destination_rows()
        assert got == source_rows(), f"{round_}: the destination differs from the source"
        assert len({r[0] for r in got}) == len(got), f"{round_}: a key twice"

    suite = CdcSuite()
    sync()
    check("snapshot")
    suite.change_everything(source, 1000)
    sync()
    check("changes")

    # writes while a sync runs: whatever the sync does not read, the next one does
    stop = threading.Event()

    def write() -> None:
        n = 0
        people = source.qualified(PEOPLE)
        while not stop.is_set() and n < 200:
            source.run(
                f"INSERT INTO {people} (id, name, seq, note) VALUES ({5000 + n}, 'w', {n}, NULL)",
                f"UPDATE {people} SET seq = seq + 1 WHERE id = 1",
            )
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        sync()
    finally:
        stop.set()
        writer.join()
    sync()
    check("concurrent writes")

    # an ALTER TABLE between changes: rows on both sides of it decode against their own columns
    source.run("SET GLOBAL binlog_row_metadata = FULL")
    try:
        source.run(
            f"UPDATE {source.qualified(PEOPLE)} SET note = 'before the alter' WHERE id = 0",
            f"ALTER TABLE {source.qualified(PEOPLE)} ADD COLUMN extra INT DEFAULT 7 AFTER id",
            f"UPDATE {source.qualified(PEOPLE)} SET note = 'after the alter' WHERE id = 4",
            f"ALTER TABLE {source.qualified(PEOPLE)} DROP COLUMN extra",
            f"DELETE FROM {source.qualified(PEOPLE)} WHERE id = 5",
        )
        sync()
        check("alter table")
    finally:
        source.run("SET GLOBAL binlog_row_metadata = NO_LOG")
    sync()
    check("idle")
