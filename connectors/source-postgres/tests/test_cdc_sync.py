"""`dbkit sync` of source-postgres CDC into destination-postgres (append_dedup, hard deletes), on
the throwaway wal_level=logical server: after the initial snapshot and after each round of
inserts, updates (of the key too), deletes and an idle run, the destination table equals the
source table row for row with no key twice, and the slot's confirmed_flush_lsn moves forward only
to positions the destination acknowledged (the state file's). The second test takes one
connection through every scenario of the issue (changes during a sync, SIGKILL mid-snapshot and
mid-stream, a terminated walsender, a truncate and its refresh, a column added, a lost slot and
its resync, idle runs) with the same checks after each."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit.testing.suites import PEOPLE, CdcSuite, people_table

from .test_cdc_read import PostgresCdc

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_dbkit_sync_keeps_a_dedup_table_equal_to_the_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from source_postgres.cdc import parse_lsn

    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    source_config = tmp_path / "source.json"
    source_config.write_text(json.dumps(source.cdc_config(replication_method={
        "method": "CDC", "replication_slot": source.slot, "publication": source.publication,
        "initial_waiting_seconds": 5})))  # fmt: skip
    # the destination is another database (records keep their namespace, `public`)
    warehouse = request.getfixturevalue("postgres_db")
    dest: dict[str, Any] = {"host": warehouse.host, "port": warehouse.port, "database": warehouse.database,
                            "username": warehouse.user, "ssl_mode": {"mode": "disable"}}  # fmt: skip
    if warehouse.password:
        dest["password"] = warehouse.password
    dest_config = tmp_path / "dest.json"
    dest_config.write_text(json.dumps(dest))
    state_file = tmp_path / "state.json"

    def sync() -> None:
        code = subprocess.run(
            [
                str(Path(sys.executable).with_name("dbkit")), "sync",
                "--source", "source-postgres", "--source-config", str(source_config),
                "--destination", "destination-postgres", "--destination-config", str(dest_config),
                "--state-file", str(state_file), "--streams", PEOPLE, "--no-progress",
            ],
            check=False,
            timeout=300,
        ).returncode  # fmt: skip
        assert code == 0

    def destination_rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(**warehouse.connection_params()) as conn:
            rows = conn.execute(f'SELECT id, name, seq, note FROM public."{PEOPLE}" ORDER BY id').fetchall()
        return [tuple(r) for r in rows]

    def source_rows() -> list[tuple[Any, ...]]:
        rows = source.connect().execute(
            f"SELECT id, name, seq, note FROM {source.qualified(PEOPLE)} ORDER BY id"
        )
        return [tuple(r) for r in rows.fetchall()]

    def acknowledged_lsn() -> int:
        doc = json.loads(state_file.read_text())
        text = json.dumps(doc)
        assert '"GLOBAL"' in text or "shared_state" in text, "a CDC sync keeps a GLOBAL state"
        shared = _find(doc, "shared_state")
        return int(shared["position"]["lsn"])

    confirmed: list[int] = []
    for round_ in range(4):
        if round_ in (1, 2):
            CdcSuite().change_everything(source, 1000 * round_)
        sync()
        got = destination_rows()
        assert got == source_rows(), f"round {round_}: the destination differs from the source"
        assert len({r[0] for r in got}) == len(got), "a key twice"
        slot = source.slot_row()
        assert slot is not None
        now = parse_lsn(slot["confirmed"])
        # the slot is confirmed at the start of a sync, to the state the destination echoed before
        assert now <= acknowledged_lsn(), "the slot was confirmed past what the destination acknowledged"
        assert not confirmed or now >= confirmed[-1], "the slot's confirmed position went back"
        confirmed.append(now)
    assert confirmed[-1] > confirmed[0], "acknowledged positions were never confirmed to the slot"


def _find(doc: Any, key: str) -> Any:
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for value in doc.values():
            found = _find(value, key)
            if found is not None:
                return found
    if isinstance(doc, list):
        for value in doc:
            found = _find(value, key)
            if found is not None:
                return found
    return None


class SyncRig:
    """One CDC connection from the logical server into destination-postgres, run with `dbkit sync`
    as a process (its own process group, so a SIGKILL takes the connectors with it)."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.source = PostgresCdc(request, tmp_path)
        self.warehouse = request.getfixturevalue("postgres_db")
        self.tmp = tmp_path
        self.state_file = tmp_path / "state.json"
        self.confirmed: list[int] = []
        self.method: dict[str, Any] = {}
        self._watch: Any = None

    def configure(self, **method: Any) -> None:
        s = self.source
        self.method = {"method": "CDC", "replication_slot": s.slot, "publication": s.publication,
                       "initial_waiting_seconds": 5, **method}  # fmt: skip
        (self.tmp / "source.json").write_text(
            json.dumps(s.cdc_config(replication_method=self.method, checkpoint_records=2000))
        )
        w = self.warehouse
        dest: dict[str, Any] = {"host": w.host, "port": w.port, "database": w.database,
                                "username": w.user, "ssl_mode": {"mode": "disable"}}  # fmt: skip
        if w.password:
            dest["password"] = w.password
        (self.tmp / "dest.json").write_text(json.dumps(dest))

    def command(self, *extra: str) -> list[str]:
        return [
            str(Path(sys.executable).with_name("dbkit")), "sync",
            "--source", "source-postgres", "--source-config", str(self.tmp / "source.json"),
            "--destination", "destination-postgres", "--destination-config", str(self.tmp / "dest.json"),
            "--state-file", str(self.state_file), "--streams", PEOPLE, "--no-progress", *extra,
        ]  # fmt: skip

    def sync(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*extra), check=False, timeout=300, capture_output=True, text=True)

    def sync_ok(self, *extra: str) -> None:
        done = self.sync(*extra)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def killed_sync(self, when: str) -> None:
        """A sync SIGKILLed (with its connectors) once ``when`` holds: "rows" (the destination
        has rows of this sync) or "read" (the source read began)."""
        before = self.destination_count() if when == "rows" else 0
        proc = subprocess.Popen(
            self.command(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if when == "rows" and self.destination_count() != before:
                    break
                if when == "read" and self.source_reading():
                    break
                time.sleep(0.02)
            assert proc.poll() is None, "the sync ended before it could be killed: make it longer"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL

    def source_reading(self) -> bool:
        if self._watch is None:
            self._watch = self.source.connect()
        row = self._watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND (backend_type = 'walsender' OR query ILIKE '%%FROM%%dbkit_people%%')"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
        return bool(row and row[0])

    def destination_count(self) -> int:
        with psycopg.connect(**self.warehouse.connection_params()) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (f'public."{PEOPLE}"',)).fetchone()
            if not exists or exists[0] is None:
                return 0
            row = conn.execute(f'SELECT count(*) FROM public."{PEOPLE}"').fetchone()
        return int(row[0]) if row else 0

    def destination_rows(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(**self.warehouse.connection_params()) as conn:
            rows = conn.execute(f'SELECT id, name, seq, note FROM public."{PEOPLE}" ORDER BY id').fetchall()
        return [tuple(r) for r in rows]

    def source_rows(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(**self.source.database.connection_params()) as conn:
            rows = conn.execute(
                f"SELECT id, name, seq, note FROM {self.source.qualified(PEOPLE)} ORDER BY id"
            )
            return [tuple(r) for r in rows.fetchall()]

    def check(self, scenario: str) -> None:
        from source_postgres.cdc import parse_lsn

        got = self.destination_rows()
        want = self.source_rows()
        assert len({r[0] for r in got}) == len(got), f"{scenario}: a key twice in the destination"
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            extra = sorted(set(got) - set(want))[:5]
            raise AssertionError(f"{scenario}: destination differs: missing {missing}, extra {extra}")
        slot = self.source.slot_row()
        assert slot is not None, f"{scenario}: no slot"
        now = parse_lsn(slot["confirmed"])
        acknowledged = int(_find(json.loads(self.state_file.read_text()), "shared_state")["position"]["lsn"])
        assert now <= acknowledged, (
            f"{scenario}: the slot was confirmed past what the destination acknowledged"
        )
        if self.confirmed and now < self.confirmed[-1]:
            raise AssertionError(f"{scenario}: the slot's confirmed position went back")
        self.confirmed.append(now)

    def insert(self, start: int, count: int) -> None:
        self.source.execute(
            f"INSERT INTO {self.source.qualified(PEOPLE)} (id, name, seq, note) "
            "SELECT i, 'name ' || i, i % 50, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END "
            f"FROM generate_series({start}, {start + count - 1}) AS i"
        )

    def churn(self, statements: int, base: int) -> None:
        """``statements`` single-row transactions: updates of existing rows and inserts."""
        table = self.source.qualified(PEOPLE)
        conn = self.source.connect()
        for i in range(statements):
            if i % 3 == 0:
                conn.execute(f"INSERT INTO {table} (id, name, seq, note) VALUES (%s, 'churn', %s, NULL)",
                             (base + i, i))  # fmt: skip
            else:
                conn.execute(f"UPDATE {table} SET seq = seq + 1, note = %s WHERE id = %s",
                             (f"c{base}-{i}", (i * 7919) % 20_000))  # fmt: skip


def test_dbkit_sync_stays_equal_through_every_scenario(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rig = SyncRig(request, tmp_path)
    source = rig.source
    people_table().create(source)
    rig.insert(1000, 20_000)
    source.capture(PEOPLE)
    rig.configure()
    table = source.qualified(PEOPLE)

    # SIGKILL mid-snapshot, then the initial snapshot resumed
    rig.killed_sync("rows")
    rig.sync_ok()
    rig.check("snapshot after a SIGKILL mid-snapshot")

    # changes between syncs: inserts, updates (of the key too), deletes
    CdcSuite().change_everything(source, 100_000)
    rig.sync_ok()
    rig.check("changes between syncs")

    # changes during a sync: the next sync brings the rest
    writer = threading.Thread(target=rig.churn, args=(1500, 200_000))
    writer.start()
    rig.sync_ok()
    writer.join()
    rig.sync_ok()
    rig.check("changes during a sync")

    # SIGKILL mid-stream
    rig.churn(6000, 300_000)
    rig.killed_sync("read")
    rig.sync_ok()
    rig.check("changes after a SIGKILL mid-stream")

    # the walsender terminated mid-read: a failed sync, then a rerun
    rig.churn(6000, 400_000)
    stop = threading.Event()

    def terminate() -> None:
        conn = source.connect()
        while not stop.is_set():
            row = conn.execute(  # the read's walsender (check's replication connection is another)
                "SELECT count(pg_terminate_backend(s.active_pid)) FROM pg_replication_slots AS s "
                "JOIN pg_stat_activity AS a ON a.pid = s.active_pid "
                "WHERE s.slot_name = %s AND a.backend_type = 'walsender'",
                (source.slot,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)

    killer = threading.Thread(target=terminate)
    killer.start()
    failed = rig.sync()
    stop.set()
    killer.join()
    assert failed.returncode != 0, "the sync must fail when its walsender is terminated"
    rig.sync_ok()
    rig.check("after a terminated walsender")

    # a column added mid-stream: its values arrive, the old columns stay equal
    source.execute(f"ALTER TABLE {table} ADD COLUMN extra text")
    source.execute(f"UPDATE {table} SET extra = 'x' || id WHERE id < 50")
    rig.sync_ok()
    rig.check("a column added")
    with psycopg.connect(**rig.warehouse.connection_params()) as conn:
        extra = conn.execute(f'SELECT id, extra FROM public."{PEOPLE}" WHERE extra IS NOT NULL ORDER BY id')
        got = extra.fetchall()
    want = source.connect().execute(f"SELECT id, extra FROM {table} WHERE extra IS NOT NULL ORDER BY id")
    assert got == want.fetchall(), "the added column's values must reach the destination"
    assert got

    # a truncate stops the read until the stream is refreshed
    source.execute(f"TRUNCATE {table}")
    rig.insert(500_000, 300)
    stopped = rig.sync()
    assert stopped.returncode != 0
    assert "--refresh" in stopped.stdout + stopped.stderr
    rig.sync_ok("--refresh", PEOPLE)
    rig.check("a truncate and its refresh")

    # idle syncs move the acknowledged position forward
    for _ in range(2):
        source.execute("CREATE TABLE IF NOT EXISTS public.busy (a int)", "INSERT INTO public.busy VALUES (1)")
        rig.sync_ok()
        rig.check("an idle sync")
    assert rig.confirmed[-1] > rig.confirmed[-3], "idle syncs must let the slot move"

    # a lost slot: a config error, then a resync when the config asks for one
    source.lose_log()
    source.execute(f"UPDATE {table} SET note = 'after the slot' WHERE id % 5 = 0")
    lost = rig.sync()
    assert lost.returncode != 0
    assert "slot" in lost.stdout + lost.stderr
    rig.configure(invalid_cdc_cursor_position_behavior="Re-sync data")
    rig.confirmed.clear()  # a new slot: its positions start afresh
    rig.sync_ok()
    rig.check("a lost slot resynced")
