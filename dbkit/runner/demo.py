"""The embedded default of ``dbkit sync``: a small shop database.

:func:`create_source` writes a SQLite database with related tables of realistic shape (mixed
types, NULLs, exact decimals, JSON, blobs, an ``updated_at`` cursor, a composite primary key, a
table without a primary key and a view). The data is deterministic: a seeded random generator and
a fixed base time, so two machines create the same file.

:func:`dbkit.runner.demo_activity.simulate_activity` changes it between two syncs, with the helpers
and vocabulary of this module.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SEED = 20240101
BASE = dt.datetime(2024, 1, 1, 9, 0, 0)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

SIZES = {"customers": 2_000, "products": 200, "orders": 10_000, "events": 5_000}

SCHEMA = """
CREATE TABLE customers (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    email          TEXT NOT NULL,
    country        TEXT,
    signup_date    DATE NOT NULL,
    is_active      BOOLEAN NOT NULL,
    lifetime_value NUMERIC NOT NULL,
    preferences    JSON,
    avatar         BLOB,
    updated_at     DATETIME NOT NULL
);
CREATE TABLE products (
    id         INTEGER PRIMARY KEY,
    sku        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    category   TEXT NOT NULL,
    price      NUMERIC NOT NULL,
    weight_kg  REAL,
    in_stock   BOOLEAN NOT NULL,
    updated_at DATETIME NOT NULL
);
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    status      TEXT NOT NULL,
    total       NUMERIC NOT NULL,
    currency    TEXT NOT NULL,
    ordered_at  DATETIME NOT NULL,
    shipped_at  DATETIME,
    notes       TEXT,
    updated_at  DATETIME NOT NULL
);
CREATE TABLE order_items (
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    line_no    INTEGER NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products (id),
    quantity   INTEGER NOT NULL,
    unit_price NUMERIC NOT NULL,
    discount   REAL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
-- an append-only log without a primary key and without an updated_at column: a full refresh table
CREATE TABLE events (
    occurred_at DATETIME NOT NULL,
    kind        TEXT NOT NULL,
    customer_id INTEGER,
    payload     JSON
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW active_customers AS
    SELECT id, name, email, country, signup_date FROM customers WHERE is_active = 1;
"""

TABLES = ("customers", "products", "orders", "order_items", "events")
VIEWS = ("active_customers",)
INCREMENTAL = ("customers", "products", "orders", "order_items")

_FIRST = (  # noqa: SIM905
    "Ada Alan Grace Linus Margaret Dennis Barbara Ken Frances Edsger Radia Tim Hedy Guido "
    "Sophie John Mary Ahmed Yuki Priya Chen Olga Mateo Amara Lars Ines Kwame Noor Diego Elif"
).split()
_LAST = (  # noqa: SIM905
    "Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson Allen Dijkstra Perlman "
    "Berners-Lee Lamarr van-Rossum Wilson Smith Garcia Khan Tanaka Patel Wei Ivanova Rossi "
    "Okafor Berg Costa Mensah Haddad Silva Yilmaz"
).split()
COUNTRIES = ("US", "FR", "DE", "GB", "JP", "IN", "BR", "NG", "CA", "ES", "IT", "SE")
_CATEGORIES = ("books", "garden", "kitchen", "toys", "tools", "audio", "sports", "office")
_ADJECTIVES = (
    "Compact",
    "Deluxe",
    "Classic",
    "Smart",
    "Eco",
    "Pro",
    "Mini",
    "Heavy-duty",
    "Travel",
    "Vintage",
)
_NOUNS = ("Lamp", "Kettle", "Drill", "Notebook", "Speaker", "Backpack", "Chair", "Puzzle", "Planter", "Mug")
_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}
EVENT_KINDS = ("page_view", "search", "add_to_cart", "checkout", "login", "logout")
CENT = Decimal("0.01")


def _ts(moment: dt.datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def money(value: Decimal) -> str:
    """Exact text of an amount; SQLite's NUMERIC affinity stores it as INTEGER or REAL, which
    holds these (at most 15 significant digits) exactly."""
    return str(value.quantize(CENT))


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the demo database in one transaction, committed when the block succeeds."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:  # one transaction, committed on success
            yield conn


# ------------------------------------------------------------------------------------ creation


def customer_row(rng: random.Random, cid: int, updated: dt.datetime) -> tuple[object, ...]:
    """A random ``customers`` row with id ``cid``, in column order."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    preferences = None
    if rng.random() < 0.7:
        preferences = json.dumps(
            {
                "newsletter": rng.random() < 0.5,
                "language": rng.choice(["en", "fr", "de", "ja", "pt"]),
                "categories": rng.sample(_CATEGORIES, rng.randint(0, 3)),
            },
            separators=(",", ":"),
        )
    avatar = rng.randbytes(rng.randint(8, 48)) if rng.random() < 0.1 else None
    value = Decimal(rng.randint(0, 2_500_000)) / 100
    return (
        cid,
        f"{first} {last}",
        f"{first}.{last}{cid}@example.com".lower(),
        rng.choice(COUNTRIES) if rng.random() > 0.08 else None,
        (BASE.date() - dt.timedelta(days=rng.randint(0, 1500))).isoformat(),
        1 if rng.random() < 0.85 else 0,
        money(value),
        preferences,
        avatar,
        _ts(updated),
    )


def create_source(path: Path) -> dict[str, int]:
    """Create the demo database at ``path`` (which must not exist); returns rows per table."""
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)  # noqa: S311 - deterministic data, not security
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with connect(tmp) as conn:
        conn.executescript(SCHEMA)
        span = 180 * 24 * 3600  # updated_at values fall in the first half of 2024

        def when() -> dt.datetime:
            return BASE + dt.timedelta(seconds=rng.randint(0, span))

        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?)",
            [customer_row(rng, cid, when()) for cid in range(1, SIZES["customers"] + 1)],
        )
        prices: dict[int, Decimal] = {}
        products = []
        for pid in range(1, SIZES["products"] + 1):
            price = Decimal(rng.randint(199, 49_999)) / 100
            prices[pid] = price
            products.append(
                (
                    pid,
                    f"SKU-{pid:05d}",
                    f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
                    rng.choice(_CATEGORIES),
                    money(price),
                    round(rng.uniform(0.05, 25.0), 3) if rng.random() > 0.15 else None,
                    1 if rng.random() < 0.9 else 0,
                    _ts(when()),
                )
            )
        conn.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?)", products)
        orders, items = [], []
        for oid in range(1, SIZES["orders"] + 1):
            ordered = when()
            updated = ordered + dt.timedelta(seconds=rng.randint(0, 7 * 24 * 3600))
            status = rng.choices(_STATUSES, weights=(5, 10, 15, 65, 5))[0]
            shipped = (
                ordered + dt.timedelta(hours=rng.randint(2, 96))
                if status in ("shipped", "delivered")
                else None
            )
            total = Decimal(0)
            for line_no in range(1, rng.randint(1, 5) + 1):
                pid = rng.randint(1, SIZES["products"])
                quantity = rng.randint(1, 4)
                discount = rng.choice([None, None, None, 0.05, 0.1, 0.25])
                line = prices[pid] * quantity * (1 - Decimal(str(discount or 0)))
                total += line.quantize(CENT)
                items.append((oid, line_no, pid, quantity, money(prices[pid]), discount, _ts(updated)))
            orders.append(
                (
                    oid,
                    rng.randint(1, SIZES["customers"]),
                    status,
                    money(total),
                    "EUR" if rng.random() < 0.3 else "USD",
                    _ts(ordered),
                    _ts(shipped) if shipped else None,
                    rng.choice(["gift wrap", "leave at the door", "call before delivery"])
                    if rng.random() < 0.05
                    else None,
                    _ts(updated),
                )
            )
        conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", orders)
        conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?,?)", items)
        events = []
        for _ in range(SIZES["events"]):
            kind = rng.choice(EVENT_KINDS)
            payload = (
                json.dumps({"path": f"/p/{rng.randint(1, 200)}", "ms": rng.randint(5, 900)})
                if rng.random() < 0.8
                else None
            )
            events.append(
                (
                    _ts(when()),
                    kind,
                    rng.randint(1, SIZES["customers"]) if rng.random() < 0.7 else None,
                    payload,
                )
            )
        conn.executemany("INSERT INTO events VALUES (?,?,?,?)", events)
        conn.execute("ANALYZE")  # statistics: the row estimates behind dbkit sync's progress bars
    tmp.replace(path)
    return row_counts(path)


def row_counts(path: Path) -> dict[str, int]:
    """Rows per table and view of a demo database."""
    with closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in (*TABLES, *VIEWS)}


# ------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps its files."""

    directory: Path

    @property
    def source(self) -> Path:
        return self.directory / "source.db"

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse.db"

    @property
    def state(self) -> Path:
        return self.directory / "state.json"
