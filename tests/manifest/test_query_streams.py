"""Custom SQL streams of a manifest, on a real PostgreSQL: discovered from the driver's description
of the SELECT, read like a table (resumable full refresh, tie-safe cursor incremental), resumed
after SIGKILL without loss, and their mistakes named in the manifest."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit.testing import ConnectorRunner, RunResult, TestDatabase, configured_catalog

pytestmark = pytest.mark.postgres

DBKIT = str(Path(sys.executable).parent / "dbkit")
STREAM = "order_lines"
MANIFEST = """\
version: 1
name: source-orders-sql
connection:
  driver: postgresql+psycopg
  host: "{{ config.host }}"
  port: "{{ config.port }}"
  database: "{{ config.database }}"
  username: "{{ config.username }}"
  password: "{{ config.password }}"
spec:
  fields:
    host: {type: string}
    port: {type: integer}
    database: {type: string}
    username: {type: string}
    password: {type: string, secret: true, required: false}
tables:
  enabled: false
streams:
  - name: order_lines
    namespace: reports
    sql: |
      SELECT o.id, o.updated_at, c.name AS customer, o.amount * 2 AS doubled, 'a:b' AS colon
      FROM orders o JOIN customers c ON c.id = o.customer_id
      WHERE o.amount > 0 -- 50% off: written as is
    primary_key: [id]
    cursor: updated_at
"""
BASE = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)


@pytest.fixture
def orders(postgres_db: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(**postgres_db.connection_params(), autocommit=True)
    conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
    conn.execute("INSERT INTO customers VALUES (1, 'ada'), (2, 'grace')")
    conn.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, "
        "amount numeric(12,2) NOT NULL, updated_at timestamp)"
    )
    yield conn
    conn.close()


def add_orders(conn: psycopg.Connection[Any], ids: range, per_tick: int = 2) -> None:
    """Orders with ``per_tick`` of them sharing each updated_at (ties at every cursor value)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s)",
            [(i, 1 + i % 2, f"{i}.25", BASE + dt.timedelta(seconds=i // per_tick)) for i in ids],
        )


def manifest(tmp_path: Path, text: str = MANIFEST) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return path


def runner(path: Path, tmp_path: Path) -> ConnectorRunner:
    workdir = tmp_path / "runs"
    workdir.mkdir(exist_ok=True)
    return ConnectorRunner([DBKIT, "run", str(path)], workdir=workdir)


def config(db: TestDatabase, **overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"host": db.host, "port": db.port, "database": db.database, "username": db.user}
    if db.password:
        out["password"] = db.password
    return {**out, **overrides}


def catalog(run: ConnectorRunner, cfg: dict[str, Any], incremental: bool) -> dict[str, Any]:
    stream = run.discover(cfg).raise_on_failure().stream(STREAM, "reports")
    if incremental:
        dedup = "append_dedup"
        return configured_catalog(
            [stream], sync_mode="incremental", cursor_field=["updated_at"], destination_sync_mode=dedup
        )
    return configured_catalog([stream])


def ids_before_each_state(messages: list[dict[str, Any]]) -> list[tuple[list[int], dict[str, Any]]]:
    seen: list[int] = []
    out = []
    for message in messages:
        if message["type"] == "RECORD":
            seen.append(message["record"]["data"]["id"])
        elif message["type"] == "STATE":
            out.append((list(seen), message["state"]))
    return out


def failed_read(
    orders: psycopg.Connection[Any], db: TestDatabase, tmp_path: Path, text: str
) -> tuple[RunResult, dict[str, Any]]:
    """A full refresh of the manifest ``text`` on orders 1 to 3, which fails (exit code 1) with
    one error, a config_error: the read's result and that error."""
    add_orders(orders, range(1, 4))
    run = runner(manifest(tmp_path, text), tmp_path)
    cfg = config(db)
    result = run.read(cfg, catalog(run, cfg, incremental=False))
    assert result.exit_code == 1
    (error,) = result.errors()
    assert error["failure_type"] == "config_error"
    return result, error


def test_discover_describes_the_select(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    stream = runner(manifest(tmp_path), tmp_path).discover(config(postgres_db)).raise_on_failure().catalog
    assert [s["name"] for s in stream] == [STREAM]  # tables.enabled: false: no table streams
    (only,) = stream
    properties = only["json_schema"]["properties"]
    assert properties["id"] == {"type": "integer"}  # the key: never NULL
    assert properties["updated_at"]["airbyte_type"] == "timestamp_without_timezone"
    assert properties["customer"]["type"] == ["string", "null"]
    assert properties["doubled"]["type"] == ["number", "null"]
    assert only["namespace"] == "reports"
    assert only["source_defined_primary_key"] == [["id"]]
    assert only["default_cursor_field"] == ["updated_at"]
    assert only["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert only["is_resumable"] is True


@pytest.mark.slow
def test_full_refresh_resumes_from_every_state(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    add_orders(orders, range(1, 10))
    run = runner(manifest(tmp_path), tmp_path)
    cfg = config(postgres_db, checkpoint_records=3)
    cat = catalog(run, cfg, incremental=False)
    first = run.read(cfg, cat).raise_on_failure()
    records = first.records(STREAM)
    assert [r["id"] for r in records] == list(range(1, 10))
    assert records[0] == {
        "id": 1,
        "updated_at": "2024-01-02T03:04:05.123456",
        "customer": "grace",
        "doubled": 2.5,
        "colon": "a:b",
    }
    points = ids_before_each_state(first.messages)
    assert len(points) >= 3
    for before, state in points[:-1:2]:
        resumed = [r["id"] for r in run.read(cfg, cat, [state]).raise_on_failure().records(STREAM)]
        assert before + resumed == list(range(1, 10)), f"resuming from {state} lost or repeated rows"


@pytest.mark.slow
def test_incremental_with_ties_loses_and_repeats_nothing(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    add_orders(orders, range(1, 10), per_tick=3)  # three orders per updated_at value
    run = runner(manifest(tmp_path), tmp_path)
    cfg = config(postgres_db, checkpoint_records=2)
    cat = catalog(run, cfg, incremental=True)
    first = run.read(cfg, cat).raise_on_failure()
    assert sorted(r["id"] for r in first.records(STREAM)) == list(range(1, 10))
    points = ids_before_each_state(first.messages)
    assert len(points) >= 4
    for before, state in points[1:-1:2]:
        resumed = [r["id"] for r in run.read(cfg, cat, [state]).raise_on_failure().records(STREAM)]
        assert sorted(before + resumed) == list(range(1, 10)), f"resuming from {state} lost or repeated rows"
    final = points[-1][1]
    assert run.read(cfg, cat, [final]).raise_on_failure().records(STREAM) == []
    # a late order at the last cursor value (same microsecond), and one moved forward
    orders.execute("INSERT INTO orders VALUES (100, 1, 5, %s)", [BASE + dt.timedelta(seconds=3)])
    orders.execute("UPDATE orders SET updated_at = %s WHERE id = 4", [BASE + dt.timedelta(days=1)])
    again = run.read(cfg, cat, [final]).raise_on_failure()
    assert sorted(r["id"] for r in again.records(STREAM)) == [4, 100]


@pytest.mark.slow
def test_a_killed_read_resumes_without_loss(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    """SIGKILL (the process group) after the third STATE, then a read from the last STATE seen:
    every row is read, and the rows before that STATE exactly once."""
    total = 3000
    add_orders(orders, range(1, total + 1))
    run = runner(manifest(tmp_path), tmp_path)
    cfg = config(postgres_db, checkpoint_records=200)
    cat = catalog(run, cfg, incremental=True)
    killed = run.read(cfg, cat, kill_after_states=3)
    assert killed.killed, "the read ended before its third state"
    emitted = [r["id"] for r in killed.records(STREAM)]
    covered, last = ids_before_each_state(killed.messages)[-1]
    assert 0 < len(covered) < total
    resumed = [r["id"] for r in run.read(cfg, cat, [last]).raise_on_failure().records(STREAM)]
    assert not set(range(1, total + 1)) - set(emitted) - set(resumed), "rows lost across the kill"
    assert not set(covered) & set(resumed), "rows before the last state were read again"
    assert sorted(covered + resumed) == list(range(1, total + 1))


def test_a_null_key_stops_the_read(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    text = MANIFEST.replace("SELECT o.id,", "SELECT NULLIF(o.id, 2) AS id,")
    result, error = failed_read(orders, postgres_db, tmp_path, text)
    assert "primary key (id) is NULL" in error["message"]
    assert "manifest.yaml:" in error["message"]
    assert result.statuses(STREAM) == ["STARTED", "INCOMPLETE"]


def test_a_failing_select_is_a_config_error_naming_its_place(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    text = MANIFEST.replace("FROM orders o", "FROM no_such_orders o")
    run = runner(manifest(tmp_path, text), tmp_path)
    status = run.check(config(postgres_db)).connection_status
    assert status["status"] == "FAILED"
    assert "custom SQL stream 'order_lines' (manifest.yaml:20 (streams[0]))" in status["message"]
    assert "no_such_orders" in status["message"]
    discovered = run.discover(config(postgres_db))
    assert discovered.exit_code == 1
    (error,) = discovered.errors()
    assert error["failure_type"] == "config_error"
    assert "the SELECT failed" in error["message"]


def test_an_sqlstate_rule_classifies_a_failing_read(
    orders: psycopg.Connection[Any], postgres_db: TestDatabase, tmp_path: Path
) -> None:
    """A division by zero (SQLSTATE 22012) mid-read: the manifest's rule makes it a config_error
    with its hint; the stream is INCOMPLETE."""
    text = MANIFEST.replace("'a:b' AS colon", "1 / (o.id - 2) AS colon") + (
        "errors:\n"
        '  - sqlstate: "22"\n'
        "    failure_type: config_error\n"
        "    hint: the query computes something impossible for some row\n"
    )
    result, error = failed_read(orders, postgres_db, tmp_path, text)
    assert error["message"].startswith(
        "the query computes something impossible for some row: division by zero"
    )
    assert result.statuses(STREAM) == ["STARTED", "INCOMPLETE"]
