"""The embedded default: ``dbkit sync`` with no connector arguments, twice."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dbkit.runner.demo import INCREMENTAL, SIZES, TABLES, VIEWS, create_source, row_counts
from dbkit.runner.demo_activity import simulate_activity

RunDbkit = Callable[..., subprocess.CompletedProcess[str]]
SameTables = Callable[[Path, Path, Sequence[str]], None]
StateOf = Callable[[Path], dict[str, Any]]
EntryOf = Callable[[dict[str, Any], str], dict[str, Any]]


def newest(db: Path, table: str) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return str(conn.execute(f"SELECT max(updated_at) FROM {table}").fetchone()[0])


def changed_since(db: Path, table: str, since: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE updated_at > ?", (since,)).fetchone()[0])


@pytest.mark.slow
def test_the_demo_syncs_everything_then_only_what_changed(
    tmp_path: Path, dbkit: RunDbkit, same_tables: SameTables, state_of: StateOf, entry_of: EntryOf
) -> None:
    demo = tmp_path / "demo"
    first = dbkit("sync", "--demo-dir", str(demo), cwd=tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "Created the demo source" in output
    source, warehouse, state = demo / "source.db", demo / "warehouse.db", demo / "state.json"
    counts = row_counts(source)
    for table, size in SIZES.items():
        assert counts[table] == size
    assert 25_000 <= counts["order_items"] <= 35_000
    assert row_counts(warehouse) == counts  # every table and the view, with as many rows as the source
    doc = state_of(state)
    for table in INCREMENTAL:
        entry = entry_of(doc, table)
        assert (entry["sync_mode"], entry["destination_sync_mode"]) == ("incremental", "append_dedup")
        assert entry["last_sync"]["records_read"] == counts[table]
    assert entry_of(doc, "events")["destination_sync_mode"] == "overwrite"  # no key, no cursor
    assert entry_of(doc, "active_customers")["destination_sync_mode"] == "overwrite"

    before = {table: newest(source, table) for table in INCREMENTAL}
    second = dbkit("sync", "--demo-dir", str(demo), cwd=tmp_path)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "Simulated activity in" in output
    assert "customers: " in output
    assert "inserted" in output
    assert "updated" in output
    doc = state_of(state)
    assert doc["sync_count"] == 2
    for table in INCREMENTAL:
        changed = changed_since(source, table, before[table])
        assert changed > 0
        last = entry_of(doc, table)["last_sync"]
        assert (last["sync_id"], last["records_read"], last["records_acknowledged"]) == (2, changed, changed)
        assert f"{table:<24} COMPLETE  {changed:,} record" in output
    assert entry_of(doc, "events")["last_sync"]["records_read"] == row_counts(source)["events"]
    same_tables(source, warehouse, [*TABLES, *VIEWS])


def test_the_demo_data_is_deterministic_and_varied(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    create_source(a)
    create_source(b)
    dumps = []
    for db in (a, b):
        with closing(sqlite3.connect(db)) as conn:
            dumps.append(list(conn.iterdump()))
    assert dumps[0] == dumps[1]
    with closing(sqlite3.connect(a)) as conn:
        nulls = conn.execute(
            "SELECT count(*) FILTER (WHERE country IS NULL), count(*) FILTER (WHERE preferences IS NULL), "
            "count(*) FILTER (WHERE avatar IS NOT NULL) FROM customers"
        ).fetchone()
        assert nulls[0] > 0
        assert nulls[1] > 0
        assert nulls[2] > 0
        values = [r[0] for r in conn.execute("SELECT lifetime_value FROM customers")]
        assert {type(v) for v in values} == {int, float}  # NUMERIC affinity: '12.00' is stored as 12
        assert all(Decimal(str(v)) == Decimal(str(v)).quantize(Decimal("0.01")) for v in values)
        orphans = conn.execute(
            "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0
        assert conn.execute("SELECT count(*) FROM events WHERE customer_id IS NULL").fetchone()[0] > 0


def test_simulated_activity_inserts_and_updates_with_a_newer_cursor(tmp_path: Path) -> None:
    db = tmp_path / "source.db"
    create_source(db)
    counts = row_counts(db)
    before = {table: newest(db, table) for table in INCREMENTAL}
    # a clock behind the data: the activity still gets a newer updated_at
    activity = simulate_activity(db, now=dt.datetime(2000, 1, 1))
    assert activity.at > max(before.values())
    after = row_counts(db)
    for table in INCREMENTAL:
        assert changed_since(db, table, before[table]) == activity.changed(table)
        assert after[table] == counts[table] + activity.inserted.get(table, 0)
    assert after["events"] == counts["events"] + activity.inserted["events"]
    assert activity.updated["customers"] > 0
    assert activity.updated["orders"] > 0
    assert activity.inserted["order_items"] >= activity.inserted["orders"]
    assert any(line.startswith("orders: ") for line in activity.lines())
