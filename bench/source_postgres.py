"""Benchmark: ``source-postgres read`` against the database's own bulk path, in the same run.

    .venv/bin/python bench/source_postgres.py [--rows 1000000] [--runs 3] [--memory-check]

Creates (once) a table of ``--rows`` rows mixing the types the connector maps (integers, numeric,
double, boolean, text, varchar, timestamptz, timestamp, date, jsonb, uuid, bytea, an integer
array; NULLs here and there) in the database ``dbkit_bench`` of the local service, then times,
as whole processes, ``--runs`` times each (medians):

- the floor: ``psql -c "\\copy (SELECT * FROM t) TO STDOUT CSV"`` to /dev/null, and the same COPY
  through psycopg into a null sink;
- ``source-postgres read`` (full refresh, checkpoint defaults, stdout to /dev/null), and the same
  table read without its primary key (tuple-id chunks) when ``--ctid`` is given;

and prints rows/s, MB/s of output, the ratio to the floor's rows/s and each run's peak RSS.
``--memory-check`` reads a table three times as large too and prints both peaks (flat memory).
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
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "dbkit_bench"
BIN = Path(sys.executable).parent
SOURCE = str(BIN / "source-postgres")

CREATE = """
CREATE TABLE {table} (
  id        bigint {pk},
  c_int     integer,
  c_num     numeric(18,6),
  c_dbl     double precision,
  c_bool    boolean,
  c_text    text,
  c_vc      varchar(40),
  c_tstz    timestamptz,
  c_ts      timestamp,
  c_date    date,
  c_jsonb   jsonb,
  c_uuid    uuid,
  c_bytes   bytea,
  c_tags    integer[]
);
SET TimeZone = 'UTC';
INSERT INTO {table}
SELECT i,
       ((i * 2654435761) % 4294967296 - 2147483648)::int,
       (((i * 7919) % 1000000000000) / 1000000.0 * CASE WHEN i % 3 = 0 THEN -1 ELSE 1 END)::numeric(18,6),
       CASE WHEN i % 10 = 0 THEN NULL ELSE sin(i) * 10 ^ (i % 12 - 4) END,
       CASE WHEN i % 7 = 0 THEN NULL ELSE i % 2 = 0 END,
       CASE WHEN i % 50 = 0
            THEN left(E'q"uo\\\\te\\ttab\\nnl\\r cr \\u00e9\\u4e2d\\U0001F600 /sl ' || md5(i::text) || md5((i+1)::text),
                      (20 + i % 61)::int)
            ELSE left(repeat(md5(i::text), 3), (20 + i % 61)::int) END,
       'vc-' || left(md5((i * 31)::text), ((i % 29) + 1)::int),
       timestamptz '2020-01-01 00:00:00+00' + (i * 31536123457::bigint % 126144000000000) * interval '1 microsecond',
       timestamp '2015-06-01 12:00:00' + (i * 977) * interval '1 second' + (i % 1000000) * interval '1 microsecond',
       date '2000-01-01' + (i % 20000)::int,
       CASE WHEN i % 11 = 0 THEN NULL
            ELSE jsonb_build_object('k', i % 1000, 's', left(md5(i::text), 6), 'f', i % 5 = 0,
                                    'a', jsonb_build_array(i % 3, 'x')) END,
       md5(i::text)::uuid,
       CASE WHEN i % 4 = 0 THEN NULL ELSE decode(left(md5(i::text), 16), 'hex') END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY[i % 10, i % 100, (i % 7)]::integer[] END
FROM generate_series(1::bigint, {rows}::bigint) AS g(i);
VACUUM (ANALYZE, FREEZE) {table};
"""


@dataclass
class Run:
    seconds: float
    peak_mb: float


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True)


def bench_db() -> psycopg.Connection[tuple[object, ...]]:
    with admin() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DATABASE, autocommit=True)


def ensure_table(table: str, rows: int, primary_key: bool) -> None:
    with bench_db() as conn:
        found = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table]).fetchone()
        if found is not None and int(found[0]) == rows:  # type: ignore[call-overload]
            return
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        print(f"creating {table} ({rows} rows)...", file=sys.stderr, flush=True)
        started = time.monotonic()
        text = CREATE.format(table=table, rows=rows, pk="PRIMARY KEY" if primary_key else "")
        for statement in text.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        print(f"  created in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def timed(argv: list[str], stdout: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None) -> Run:
    """Run a whole process; its wall time and its own peak RSS (wait4's rusage)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return Run(seconds, usage.ru_maxrss / 1024)


def output_bytes(argv: list[str]) -> int:
    """Bytes a command writes to stdout (one extra, untimed run)."""
    total = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 20):
            total += len(block)
    return total


def psql_floor(table: str) -> list[str]:
    copy = f"\\copy (SELECT * FROM public.{table}) TO STDOUT CSV"
    return ["psql", "-X", "-q", "-h", HOST, "-p", str(PORT), "-U", USER, "-d", DATABASE, "-c", copy]


def psycopg_floor(table: str) -> list[str]:
    code = (
        "import psycopg\n"
        f"c = psycopg.connect(host={HOST!r}, port={PORT}, user={USER!r}, dbname={DATABASE!r})\n"
        f"with c.cursor().copy('COPY (SELECT * FROM public.{table}) TO STDOUT (FORMAT csv)') as cp:\n"
        "    for _ in cp: pass\n"
    )
    return [sys.executable, "-c", code]


def connector(table: str, workdir: Path, parallel: int) -> list[str]:
    config = {
        "host": HOST,
        "port": PORT,
        "database": DATABASE,
        "username": USER,
        "ssl_mode": {"mode": "disable"},
        "include_tables": [table],
        "max_parallel_chunks": parallel,
    }
    (workdir / f"{table}-config.json").write_text(json.dumps(config))
    discovered = subprocess.run(
        [SOURCE, "discover", "--config", str(workdir / f"{table}-config.json")],
        capture_output=True,
        check=True,
    ).stdout
    streams = next(
        json.loads(line)["catalog"]["streams"] for line in discovered.splitlines() if b'"CATALOG"' in line
    )
    catalog = {
        "streams": [
            {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in streams
        ]
    }
    (workdir / f"{table}-catalog.json").write_text(json.dumps(catalog))
    return [
        SOURCE,
        "read",
        "--config",
        str(workdir / f"{table}-config.json"),
        "--catalog",
        str(workdir / f"{table}-catalog.json"),
    ]


def median_run(argv: list[str], runs: int) -> tuple[Run, list[Run]]:
    results = [timed(argv) for _ in range(runs)]
    seconds = statistics.median(r.seconds for r in results)
    return Run(seconds, max(r.peak_mb for r in results)), results


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="max_parallel_chunks")
    parser.add_argument("--ctid", action="store_true", help="also read the table without a primary key")
    parser.add_argument("--memory-check", action="store_true", help="also read a table 3x as large")
    args = parser.parse_args()

    table = f"bench_mixed_{args.rows}"
    ensure_table(table, args.rows, primary_key=True)
    targets = [(table, "source-postgres read (primary key: key-range chunks)")]
    if args.ctid:
        ensure_table(f"{table}_nopk", args.rows, primary_key=False)
        targets.append((f"{table}_nopk", "source-postgres read (no key: tuple-id chunks)"))
    with bench_db() as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(f"# source-postgres benchmark, {args.rows} rows x 14 columns, {args.runs} runs each (medians)")
    print(f"# nproc={os.cpu_count()} PostgreSQL {version[0] if version else '?'} load before={load():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows_floor = None
        lines = []
        for name, argv in [
            ("floor: psql \\copy (SELECT *) TO STDOUT CSV", psql_floor(table)),
            ("floor: psycopg COPY ... (FORMAT csv), null sink", psycopg_floor(table)),
            *[(label, connector(t, workdir, args.parallel)) for t, label in targets],
        ]:
            run, all_runs = median_run(argv, args.runs)
            size = output_bytes(argv)
            rows_per_s = args.rows / run.seconds
            if rows_floor is None:
                rows_floor = rows_per_s
            lines.append(
                f"| {name} | {run.seconds:.2f} s | {rows_per_s / 1000:.0f}k | {size / run.seconds / 1e6:.0f} MB/s "
                f"| {rows_per_s / rows_floor:.2f} | {run.peak_mb:.0f} MB | "
                + " / ".join(f"{r.seconds:.2f}" for r in all_runs)
                + " |"
            )
            print(lines[-1], flush=True)
        if args.memory_check:
            big = f"bench_mixed_{args.rows * 3}"
            ensure_table(big, args.rows * 3, primary_key=True)
            for t in (table, big):
                run = timed(connector(t, workdir, args.parallel))
                print(f"# memory: {t}: {run.seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB", flush=True)
    print(f"# load after={load():.2f}")


if __name__ == "__main__":
    main()
