"""Issue 14's evidence for the next step: the ADBC PostgreSQL driver, read into Arrow and ingested
into another database, against ``pg_dump -t | psql`` of the same table, in the same run.

Not a dbkit path: a probe of what binary COPY -> Arrow -> binary COPY costs when both ends are C++
(``adbc-driver-postgresql`` is not a dbkit dependency; install it into the venv to run this)::

    .venv/bin/pip install adbc-driver-postgresql
    .venv/bin/python -m bench.adbc_probe --runs 2

It uses ``source_postgres.py``'s table (``bench_mixed_1000000`` in ``dbkit_bench``; run that
benchmark once to create it). Each round copies the table with ``pg_dump | psql`` into a fresh
database, then with ADBC (``fetch_record_batch`` streamed into ``adbc_ingest(mode="create")``)
into another, and prints both times; then it checks that the ADBC copy has every row once and the
same text of the numeric and text columns as the source.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

BASE = "postgresql://postgres@127.0.0.1:5432"
TABLE = "bench_mixed_1000000"
CHECK = "SELECT count(*), count(DISTINCT id), md5(string_agg(c_num::text || coalesce(c_text, ''), ',' ORDER BY id)) FROM {}"


def admin(*statements: str) -> None:
    with psycopg.connect(f"{BASE}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def fresh(name: str) -> None:
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}", "CHECKPOINT")


def floor() -> float:
    fresh("dbkit_adbc_floor")
    start = time.perf_counter()
    dump = subprocess.Popen(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-t", f"public.{TABLE}", "dbkit_bench"],
        stdout=subprocess.PIPE,
    )
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "dbkit_adbc_floor"],
        stdin=dump.stdout,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    if dump.wait() != 0:
        raise SystemExit("pg_dump failed")
    return time.perf_counter() - start


def adbc() -> float:
    import adbc_driver_postgresql.dbapi as pg

    fresh("dbkit_adbc_copy")
    start = time.perf_counter()
    source: Any
    with pg.connect(f"{BASE}/dbkit_bench") as source, source.cursor() as cur:
        cur.execute(f"SELECT * FROM {TABLE}")
        with pg.connect(f"{BASE}/dbkit_adbc_copy") as target, target.cursor() as out:
            out.adbc_ingest(TABLE, cur.fetch_record_batch(), mode="create")
            target.commit()
    return time.perf_counter() - start


def checksum(database: str) -> tuple[Any, ...]:
    with psycopg.connect(f"{BASE}/{database}") as conn:
        row = conn.execute(CHECK.format(TABLE)).fetchone()
    assert row is not None
    return tuple(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for round_no in range(1, args.runs + 1):
        load = Path("/proc/loadavg").read_text().split()[0]
        f, a = floor(), adbc()
        print(
            f"round {round_no} (load {load}): pg_dump | psql {f:.2f} s, ADBC read -> ingest {a:.2f} s: {f / a:.2f}x"
        )
    same = checksum("dbkit_adbc_copy") == checksum("dbkit_bench")
    print(f"ADBC copy equals the source (count, distinct ids, md5 of numeric and text): {same}")
    admin(
        "DROP DATABASE IF EXISTS dbkit_adbc_floor WITH (FORCE)",
        "DROP DATABASE IF EXISTS dbkit_adbc_copy WITH (FORCE)",
    )


if __name__ == "__main__":
    main()
