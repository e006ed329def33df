"""Benchmark: ``dbkit sync`` SQLite -> SQLite in dedup mode, against SQLite copying the same table.

    .venv/bin/python bench/destination_sqlite.py [--rows 20000,100000] [--keep DIR]

For each ``--rows`` size it makes a source database with one table ``orders`` (integer primary
key, text with quotes and non-ASCII, a real, an integer, a date, a JSON text, ``updated_at``), then
times as whole processes:

(a) the floor: ``sqlite3``'s own copy into a new database, ``ATTACH`` + ``CREATE TABLE ... AS
    SELECT`` + the primary key index (what a user would run instead to copy the table);
(b) ``dbkit sync --full-refresh`` (overwrite);
(c) ``dbkit sync`` with the default modes (incremental, ``append_dedup`` on the key) into an empty
    database;
(d) the same connection again after 10% of the source rows were updated (cursor later): the
    incremental read brings those rows, the dedup merges them into the full table.

The syncs run ``--in-process`` (both connectors in the runner's process), so the peak RSS printed
(``wait4``) covers reading, loading and merging. Each result is checked: the destination's row
count and a checksum of the data columns equal the source's. A dedup write that is linear in its
batch (not in the table) shows as (d) taking about a tenth of (c), and as (c)'s rows/s staying
level from the small size to the large one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
DBKIT = str(BIN / "dbkit")
COLUMNS = "id, name, amount, quantity, ordered_on, details, updated_at"


def make_source(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT, amount REAL, quantity INTEGER, "
        "ordered_on TEXT, details TEXT, updated_at TEXT)"
    )
    conn.executemany(
        f"INSERT INTO orders ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (
                i,
                f"customer {i} O'Brien \u00e9\u00e8 \u6771\u4eac" if i % 7 else None,
                i * 1.25,
                i % 1000,
                f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                f'{{"sku": "A-{i}", "tags": ["x", "y"], "n": {i % 97}}}',
                f"2024-06-01T00:00:{i % 60:02d}",
            )
            for i in range(rows)
        ),
    )
    conn.commit()
    conn.close()


def update_tenth(path: Path) -> int:
    conn = sqlite3.connect(path)
    changed = conn.execute(
        "UPDATE orders SET amount = amount + 1, updated_at = '2024-07-01T00:00:00' WHERE id % 10 = 0"
    ).rowcount
    conn.commit()
    conn.close()
    return changed


def timed(args: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{errors[-3000:]}")
    return seconds, usage.ru_maxrss * 1024


def checksum(path: Path, table: str) -> tuple[int, str]:
    """Row count and a digest of every data column, row by row in key order (numbers compared as
    numbers: a REAL 5.0 the destination keeps as its JSON number 5 is the same value)."""
    digest = hashlib.sha256()
    conn = sqlite3.connect(path)
    count = 0
    for row in conn.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id"):
        count += 1
        digest.update(repr((row[0], row[1], float(row[2]), *row[3:])).encode())
    conn.close()
    return count, digest.hexdigest()


def floor(source: Path, target: Path) -> tuple[float, int]:
    script = (
        f"ATTACH '{source}' AS s; CREATE TABLE orders AS SELECT {COLUMNS} FROM s.orders; "
        "CREATE UNIQUE INDEX orders_id ON orders (id);"
    )
    code = f"import sqlite3; c = sqlite3.connect({str(target)!r}); c.executescript({script!r}); c.commit()"
    return timed([sys.executable, "-c", code])


def sync(source: Path, target: Path, state: Path, *extra: str) -> tuple[float, int]:
    args = [DBKIT, "sync", "--source", f"sqlite:///{source}", "--destination", f"sqlite:///{target}"]
    return timed([*args, "--state-file", str(state), "--in-process", "--no-progress", *extra])


def report(label: str, rows: int, seconds: float, rss: int, floor_rate: float) -> None:
    rate = rows / seconds
    print(
        f"  {label:<34} {seconds:8.2f} s {rate:>11,.0f} rows/s  ratio {rate / floor_rate:5.2f}  "
        f"peak {rss / 2**20:6.0f} MB"
    )


def run(rows: int, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.db"
    make_source(source, rows)
    expected = checksum(source, "orders")
    size = source.stat().st_size
    print(f"{rows:,} rows ({size / 2**20:.1f} MB source database)")

    seconds, rss = floor(source, work / "floor.db")
    floor_rate = rows / seconds
    report("floor: sqlite3 ATTACH + CREATE AS", rows, seconds, rss, floor_rate)

    seconds, rss = sync(source, work / "full.db", work / "full.json", "--full-refresh")
    assert checksum(work / "full.db", "orders") == expected, "full refresh: wrong rows"
    report("dbkit sync --full-refresh", rows, seconds, rss, floor_rate)

    seconds, rss = sync(source, work / "dedup.db", work / "dedup.json")
    assert checksum(work / "dedup.db", "orders") == expected, "dedup: wrong rows"
    report("dbkit sync (dedup), empty target", rows, seconds, rss, floor_rate)

    changed = update_tenth(source)
    expected = checksum(source, "orders")
    seconds, rss = sync(source, work / "dedup.db", work / "dedup.json")
    assert checksum(work / "dedup.db", "orders") == expected, "dedup merge: wrong rows"
    report(f"dbkit sync (dedup), {changed:,} updated", changed, seconds, rss, floor_rate)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="20000,100000", help="comma-separated table sizes")
    parser.add_argument("--keep", type=Path, help="work here and keep the databases")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="dbkit-bench-sqlite-"))
    try:
        for rows in (int(r) for r in args.rows.split(",")):
            run(rows, base / str(rows))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
