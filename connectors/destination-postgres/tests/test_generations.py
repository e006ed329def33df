"""Generation ids as PyAirbyte sends them: destination-postgres driven exactly as PyAirbyte's
``Destination.write`` drives it (issue 10 item 5).

PyAirbyte's ``CatalogProvider`` sets ``generation_id``, ``minimum_generation_id`` and ``sync_id``
to 1 on every stream of every write; its streams are read incrementally and written with
``append`` (a cursor, no primary key) or ``append_dedup`` (a primary key). Read as a new
truncate refresh every time, a second write left ``customers`` 2,002 -> 2 rows and ``orders``
10,008 -> 0. The rule of Airbyte's destinations keeps them: a table already at the generation
is a refresh done, written into directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import BASE_MS, record, state, status

pytestmark = pytest.mark.postgres

CUSTOMERS = {
    "id": json_schema_for(AirbyteType.INTEGER),
    "name": json_schema_for(AirbyteType.STRING),
    "updated_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
}
ORDERS = {
    "order_id": json_schema_for(AirbyteType.INTEGER),
    "customer_id": json_schema_for(AirbyteType.INTEGER),
    "created_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
}


def pyairbyte_catalog() -> dict[str, Any]:
    """The configured catalog PyAirbyte writes to its temporary catalog file: the source's
    discovered streams, incremental, ``append_dedup`` for the stream with a primary key and
    ``append`` for the one with only a cursor, and the generation ids its ``CatalogProvider``
    fills in (1, 1, 1)."""

    def discovered(name: str, properties: dict[str, Any], cursor: str, pk: str | None) -> dict[str, Any]:
        return {
            "name": name,
            "json_schema": {"type": "object", "properties": properties},
            "supported_sync_modes": ["full_refresh", "incremental"],
            "source_defined_cursor": False,
            "default_cursor_field": [cursor],
            "source_defined_primary_key": [[pk]] if pk else [],
            "namespace": "public",
            "is_resumable": True,
        }

    def configured(body: dict[str, Any], mode: str, cursor: str, pk: str | None) -> dict[str, Any]:
        return {
            "stream": body,
            "sync_mode": "incremental",
            "cursor_field": [cursor],
            "destination_sync_mode": mode,
            "primary_key": [[pk]] if pk else [],
            "generation_id": 1,
            "minimum_generation_id": 1,
            "sync_id": 1,
        }

    return {
        "streams": [
            configured(
                discovered("customers", CUSTOMERS, "updated_at", "id"), "append_dedup", "updated_at", "id"
            ),
            configured(discovered("orders", ORDERS, "created_at", None), "append", "created_at", None),
        ]
    }


def ts(second: int) -> str:
    return f"2024-03-01T00:{second // 60 % 60:02d}:{second % 60:02d}.000000+00:00"


def customer(i: int, version: int) -> dict[str, Any]:
    return {"id": i, "name": f"customer {i} v{version}", "updated_at": ts(version)}


def order(i: int) -> dict[str, Any]:
    return {"order_id": i, "customer_id": i % 7, "created_at": ts(i % 3600)}


def source_output(customers: list[dict[str, Any]], orders: list[dict[str, Any]], at: int) -> list[Any]:
    """What the source sends through PyAirbyte to the destination: per stream STARTED, records
    (with the stream's namespace), a STATE every 500 records and at the end, COMPLETE."""
    out: list[Any] = []
    for name, rows, cursor in (("customers", customers, "updated_at"), ("orders", orders, "created_at")):
        out.append(status(name, "STARTED", "public"))
        pending = 0
        for i, row in enumerate(rows):
            out.append(record(name, row, at + i, "public"))
            pending += 1
            if pending == 500:
                out.append(state(name, {cursor: row[cursor]}, pending, "public"))
                pending = 0
        out.append(state(name, {cursor: rows[-1][cursor] if rows else None}, pending, "public"))
        out.append(status(name, "COMPLETE", "public"))
    return out


@pytest.mark.parametrize("raw_tables", [False, True], ids=["typed", "raw_tables"])
def test_pyairbyte_incremental_writes_lose_nothing(pg: Any, raw_tables: bool) -> None:
    cat = pyairbyte_catalog()
    config = {"batch_records": 700, "raw_tables": raw_tables}
    writes = [
        ([customer(i, 1) for i in range(1, 2001)], [order(i) for i in range(1, 10_001)]),
        ([customer(2001, 2), customer(2002, 2), customer(5, 3)], [order(i) for i in range(10_001, 10_009)]),
        ([customer(7, 4)], []),  # no new order
    ]
    customers: dict[int, dict[str, Any]] = {}
    orders: list[int] = []
    customer_records = 0
    for n, (new_customers, new_orders) in enumerate(writes):
        result = pg.write(cat, source_output(new_customers, new_orders, BASE_MS + 100_000 * n), **config)
        result.raise_on_failure()
        customers.update({c["id"]: c for c in new_customers})
        customer_records += len(new_customers)
        orders += [o["order_id"] for o in new_orders]

        got_customers = pg.rows(cat, "customers")
        assert len(got_customers) == len(customers), f"write {n + 1}: customers lost or repeated"
        assert {c["id"]: c["name"] for c in got_customers} == {i: c["name"] for i, c in customers.items()}
        got_orders = pg.rows(cat, "orders")
        assert sorted(o["order_id"] for o in got_orders) == orders, f"write {n + 1}: orders lost or repeated"
        assert {r["_generation"] for r in got_customers + got_orders} == {1}
        if raw_tables:
            for name, count in (("customers", customer_records), ("orders", len(orders))):
                namespace, table = pg.raw_name(cat, name)
                (total,) = pg.query(f'SELECT count(*) FROM "{namespace}"."{table}"')[0]
                assert total == count, f"write {n + 1}: the raw table of {name} lost records"
        assert pg.working_tables() == [], "no temporary table: the writes go into the tables"
    assert len(customers) == 2002
    assert len(orders) == 10_008
