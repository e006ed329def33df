"""The Python API against a real PostgreSQL: ``dbkit.read`` of source-postgres into Arrow (its
values exact, typed, resumed from the state file) and ``dbkit.sync`` PostgreSQL -> SQLite."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

import dbkit
from dbkit.testing.servers import TestDatabase

pytestmark = pytest.mark.postgres


def config(db: TestDatabase) -> dict[str, Any]:
    c: dict[str, Any] = {"host": db.host, "port": db.port, "database": db.database, "username": db.user}
    c["ssl_mode"] = {"mode": "disable"}
    if db.password:
        c["password"] = db.password
    return c


def make_orders(db: TestDatabase) -> None:
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE orders (
                id bigint PRIMARY KEY, amount numeric(20, 4), placed date, paid boolean,
                detail jsonb, updated_at timestamptz NOT NULL);
            INSERT INTO orders
            SELECT g, g * 1.2345, date '2024-01-01' + g, g % 2 = 0, jsonb_build_object('n', g),
                   timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
            FROM generate_series(1, 1000) AS g;
            INSERT INTO orders VALUES (0, 12345678901.0001, NULL, NULL, NULL, '2023-12-31 23:00:00-05');
            """
        )


def test_read_into_arrow_and_resume(postgres_db: TestDatabase, tmp_path: Path) -> None:
    make_orders(postgres_db)
    state = tmp_path / "state.json"
    table = dbkit.read("source-postgres", config(postgres_db), streams="orders", state=state, in_process=True)
    assert table.num_rows == 1001
    assert table.schema.metadata == {b"dbkit.stream": b"public.orders"}
    types = {f.name: f.type for f in table.schema}
    assert types["id"] == pa.int64()
    assert types["amount"] == pa.string()  # exact decimal text
    assert (types["placed"], types["paid"]) == (pa.date32(), pa.bool_())
    assert types["updated_at"] == pa.timestamp("us", tz="UTC")
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows[0]["amount"] == "12345678901.0001"
    assert rows[0]["updated_at"] == dt.datetime(2024, 1, 1, 4, 0, tzinfo=dt.UTC)
    assert (rows[0]["placed"], rows[0]["paid"], rows[0]["detail"]) == (None, None, None)
    assert (rows[7]["amount"], rows[7]["placed"], rows[7]["paid"]) == ("8.6415", dt.date(2024, 1, 8), False)
    assert json.loads(rows[7]["detail"]) == {"n": 7}
    # a full refresh of source-postgres sends Arrow frames (the incremental read, JSON lines):
    # the same table
    whole = dbkit.read(
        "source-postgres", config(postgres_db), streams="orders", full_refresh=True, in_process=True
    )
    columns = [c for c in table.column_names if not c.startswith("_airbyte_")]
    assert whole.select(columns).sort_by("id").equals(table.select(columns).sort_by("id"))

    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute("INSERT INTO orders VALUES (1001, 1.5, NULL, true, NULL, '2025-01-01 00:00:00+00')")
        conn.execute("UPDATE orders SET paid = true, updated_at = '2025-01-02 00:00:00+00' WHERE id = 3")
    changes = dbkit.read(
        "source-postgres", config(postgres_db), streams="orders", state=state, in_process=True
    )
    assert sorted(changes.column("id").to_pylist()) == [3, 1001]


def test_sync_postgres_into_sqlite(postgres_db: TestDatabase, tmp_path: Path) -> None:
    make_orders(postgres_db)
    warehouse = tmp_path / "wh.db"
    result = dbkit.sync(
        source="source-postgres",
        source_config=config(postgres_db),
        destination=f"sqlite:///{warehouse}",
        state=tmp_path / "state.json",
        in_process=True,
    )
    orders = result.stream("public.orders")
    assert (result.status, orders.mode, orders.records_read, orders.records_acknowledged) == (
        "succeeded",
        "incremental dedup",
        1001,
        1001,
    )
    with closing(sqlite3.connect(warehouse)) as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM orders").fetchone() == (1001, 500500)
    assert result.to_json()["totals"]["records_acknowledged"] == 1001
