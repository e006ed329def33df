"""Benchmark: ``source-postgres discover`` of a schema with thousands of tables.

Usage (from the repository root, PostgreSQL on 127.0.0.1:5432, user postgres, trust auth)::

    .venv/bin/python bench/discover_postgres.py [--tables 5000] [--views 500] [--runs 3] [--keep]

Creates a fresh database (``dbkit_bench_discover``, dropped first if it exists) holding
``--tables`` tables with 3 to 17 columns each of a mix of types (integers, numeric(p,s), double,
text, varchar(n), boolean, date, timestamptz, jsonb, uuid, bytea, integer arrays, an enum, a
domain), two tables out of three with a primary key (some of them composite), and ``--views``
views over them; then times ``source-postgres discover`` as a whole process ``--runs`` times and
prints each run's seconds, the median, the peak RSS and the number of streams in the catalog
(which must be tables + views). The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "dbkit_bench_discover"
SOURCE = str(Path(sys.executable).parent / "source-postgres")
BATCH = 200  # statements per round trip (each batch is one transaction: its locks stay few)

COLUMN_TYPES = [
    "integer",
    "bigint",
    "numeric(12,2)",
    "double precision",
    "text",
    "varchar(40)",
    "boolean",
    "date",
    "timestamptz",
    "jsonb",
    "uuid",
    "bytea",
    "integer[]",
    "mood",
    "positive_int",
]


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True)


def drop_database() -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def table_ddl(i: int) -> str:
    """Table ``t<i>``: an ``id``, then 2 to 16 more columns of rotating types; a primary key on
    two tables of three (every seventh one on two columns)."""
    columns = ["id bigint NOT NULL"]
    columns.extend(f"c{j} {COLUMN_TYPES[(i + j) % len(COLUMN_TYPES)]}" for j in range(2 + i % 15))
    if i % 3 != 2:
        key = "id, c0" if i % 7 == 0 else "id"
        if i % 7 == 0:
            columns[1] += " NOT NULL"
        columns.append(f"PRIMARY KEY ({key})")
    return f"CREATE TABLE t{i} ({', '.join(columns)})"


def create(tables: int, views: int) -> None:
    drop_database()
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DATABASE, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute("CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0)")
        statements = [table_ddl(i) for i in range(tables)]
        statements += [
            f"CREATE VIEW v{k} AS SELECT id, c0, c1 FROM t{k * tables // views}" for k in range(views)
        ]
        statements.append("ANALYZE")
        for start in range(0, len(statements), BATCH):
            # several statements in one simple-query message: one round trip, one transaction
            conn.execute(";\n".join(statements[start : start + BATCH]).encode(), prepare=False)


def discover(config: Path) -> tuple[float, float, int]:
    """One ``discover`` process: its seconds, peak RSS (MB) and number of streams."""
    with tempfile.TemporaryFile() as errors:
        started = time.monotonic()
        proc = subprocess.Popen(
            [SOURCE, "discover", "--config", str(config)], stdout=subprocess.PIPE, stderr=errors
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if proc.returncode != 0:
            errors.seek(0)
            raise SystemExit(
                f"discover failed ({proc.returncode}): {errors.read().decode(errors='replace')[-2000:]}"
            )
    streams = [
        json.loads(line)["catalog"]["streams"]
        for line in out.splitlines()
        if line.startswith(b'{"type":"CATALOG"')
    ]
    if len(streams) != 1:
        raise SystemExit(f"discover wrote {len(streams)} CATALOG messages")
    return seconds, usage.ru_maxrss / 1024, len(streams[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=5000)
    parser.add_argument("--views", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    print(
        f"creating {args.tables} tables and {args.views} views in {DATABASE}...", file=sys.stderr, flush=True
    )
    started = time.monotonic()
    create(args.tables, args.views)
    print(f"  created in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    try:
        with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DATABASE) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE c.relkind = 'r'), count(*) FILTER (WHERE c.relkind = 'v'),"
                " (SELECT count(*) FROM pg_attribute AS a JOIN pg_class AS r ON r.oid = a.attrelid"
                "   JOIN pg_namespace AS s ON s.oid = r.relnamespace"
                "  WHERE s.nspname = 'public' AND r.relkind IN ('r', 'v') AND a.attnum > 0),"
                " (SELECT count(*) FROM pg_index AS i JOIN pg_class AS r ON r.oid = i.indrelid"
                "   JOIN pg_namespace AS s ON s.oid = r.relnamespace WHERE s.nspname = 'public' AND i.indisprimary)"
                " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            ).fetchone()
            version = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        n_tables, n_views, n_columns, n_keys = (int(str(v)) for v in row)
        print(
            f"# source-postgres discover: {n_tables} tables ({n_keys} with a primary key) + {n_views} views,"
            f" {n_columns} columns; nproc={os.cpu_count()} PostgreSQL {version[0] if version else '?'}"
            f" load={'/'.join(f'{v:.2f}' for v in os.getloadavg())}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.json"
            config.write_text(
                json.dumps(
                    {
                        "host": HOST,
                        "port": PORT,
                        "database": DATABASE,
                        "username": USER,
                        "ssl_mode": {"mode": "disable"},
                    }
                )
            )
            runs = [discover(config) for _ in range(args.runs)]
        for seconds, peak, streams in runs:
            print(f"| discover | {seconds:.2f} s | {streams} streams | peak RSS {peak:.0f} MB |", flush=True)
        counts = {streams for _, _, streams in runs}
        if counts != {n_tables + n_views}:
            raise SystemExit(f"expected {n_tables + n_views} streams, got {sorted(counts)}")
        print(
            f"# median {statistics.median(s for s, _, _ in runs):.2f} s for {n_tables + n_views} streams"
            f" (load after={'/'.join(f'{v:.2f}' for v in os.getloadavg())})"
        )
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
