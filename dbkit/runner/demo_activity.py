"""Simulated activity in the demo database (:mod:`dbkit.runner.demo`) between two syncs.

:func:`simulate_activity` changes it the way an application would: new orders with their items,
a new customer, updated customers, orders and product prices (each with a newer ``updated_at``),
new events. Nothing is deleted. Only these changes use the wall clock.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from dbkit.runner.demo import (
    COUNTRIES,
    EVENT_KINDS,
    INCREMENTAL,
    NEXT_STATUS,
    TABLES,
    connect,
    customer_row,
    money,
)

ACTIVITY_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class Activity:
    """What :func:`simulate_activity` changed, per table: rows inserted and rows updated."""

    at: str
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def changed(self, table: str) -> int:
        return self.inserted.get(table, 0) + self.updated.get(table, 0)

    def lines(self) -> list[str]:
        out = []
        for table in TABLES:
            parts = []
            if self.inserted.get(table):
                parts.append(f"{self.inserted[table]} inserted")
            if self.updated.get(table):
                parts.append(f"{self.updated[table]} updated")
            if parts:
                out.append(f"{table}: {', '.join(parts)}")
        return out


def simulate_activity(path: Path, now: dt.datetime | None = None) -> Activity:
    """Insert and update rows in the demo database at ``path``, as an application would.

    Every inserted or updated row gets one ``updated_at`` later than any value in the database
    (the wall clock, or just after the newest value if the clock is behind). Deterministic for a
    given database content and ``now``. Deletes nothing.
    """
    with connect(path) as conn:
        newest = max(
            conn.execute(f"SELECT max(updated_at) FROM {t}").fetchone()[0] or "" for t in INCREMENTAL
        )
        moment = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if newest:
            latest = dt.datetime.fromisoformat(newest)
            if moment <= latest:
                moment = latest + dt.timedelta(milliseconds=1)
        stamp = moment.strftime(ACTIVITY_FORMAT)
        max_order = conn.execute("SELECT max(id) FROM orders").fetchone()[0] or 0
        max_customer = conn.execute("SELECT max(id) FROM customers").fetchone()[0] or 0
        n_products = conn.execute("SELECT max(id) FROM products").fetchone()[0] or 0
        n_events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        rng = random.Random(max_order * 7919 + n_events)  # noqa: S311
        activity = Activity(at=stamp)

        # a new customer or two
        new_customers = rng.randint(1, 2)
        rows = [customer_row(rng, max_customer + i, moment) for i in range(1, new_customers + 1)]
        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?)", [(*r[:-1], stamp) for r in rows]
        )
        activity.inserted["customers"] = new_customers

        # customers who changed: country, activity flag, lifetime value
        ids = rng.sample(range(1, max_customer + 1), min(max_customer, rng.randint(5, 12)))
        for cid in ids:
            conn.execute(
                "UPDATE customers SET country = ?, is_active = ?, lifetime_value = ?, updated_at = ?"
                " WHERE id = ?",
                (
                    rng.choice(COUNTRIES) if rng.random() > 0.1 else None,
                    1 if rng.random() < 0.9 else 0,
                    money(Decimal(rng.randint(0, 3_000_000)) / 100),
                    stamp,
                    cid,
                ),
            )
        activity.updated["customers"] = len(ids)

        # new orders, with their items
        prices = dict(conn.execute("SELECT id, price FROM products").fetchall())
        new_orders = rng.randint(3, 8)
        items = 0
        for oid in range(max_order + 1, max_order + 1 + new_orders):
            lines = []
            for line_no in range(1, rng.randint(1, 4) + 1):
                pid = rng.randint(1, n_products)
                price = Decimal(str(prices[pid]))
                lines.append((oid, line_no, pid, rng.randint(1, 3), money(price), None, stamp))
            total = sum((Decimal(str(line[4])) * int(str(line[3])) for line in lines), Decimal(0))
            customer = rng.randint(1, max_customer + new_customers)
            conn.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)",
                (oid, customer, "pending", money(total), "USD", stamp, None, None, stamp),
            )
            conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?,?)", lines)
            items += len(lines)
        activity.inserted["orders"] = new_orders
        activity.inserted["order_items"] = items

        # orders moving on: pending -> paid -> shipped -> delivered
        candidates = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM orders WHERE status IN ('pending', 'paid', 'shipped') AND id <= ?"
                " ORDER BY id",
                (max_order,),
            )
        ]
        moved = rng.sample(candidates, min(len(candidates), rng.randint(5, 15)))
        for oid in moved:
            status = conn.execute("SELECT status FROM orders WHERE id = ?", (oid,)).fetchone()[0]
            following = NEXT_STATUS[status]
            conn.execute(
                "UPDATE orders SET status = ?, shipped_at = coalesce(shipped_at, ?), updated_at = ?"
                " WHERE id = ?",
                (following, stamp if following == "shipped" else None, stamp, oid),
            )
        activity.updated["orders"] = len(moved)

        # a price change or two
        repriced = rng.sample(range(1, n_products + 1), min(n_products, rng.randint(1, 3)))
        for pid in repriced:
            conn.execute(
                "UPDATE products SET price = ?, updated_at = ? WHERE id = ?",
                (money(Decimal(rng.randint(199, 49_999)) / 100), stamp, pid),
            )
        activity.updated["products"] = len(repriced)

        # the event log grows (a full refresh table: read whole every time)
        new_events = rng.randint(10, 30)
        conn.executemany(
            "INSERT INTO events VALUES (?,?,?,?)",
            [
                (
                    stamp,
                    rng.choice(EVENT_KINDS),
                    rng.randint(1, max_customer),
                    json.dumps({"ms": rng.randint(5, 900)}),
                )
                for _ in range(new_events)
            ],
        )
        activity.inserted["events"] = new_events
    return activity
