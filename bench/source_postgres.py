"""Benchmark: ``source-postgres read`` against the database's own bulk path, in the same run.

Usage (from the repository root, PostgreSQL on 127.0.0.1:5432, user postgres, trust auth)::

    .venv/bin/python bench/source_postgres.py [--rows 1000000] [--runs 3] [--memory-check] [--ctid]
    .venv/bin/python bench/source_postgres.py --drop      # remove the cached bench database

Creates (once: kept for the next run, ``--drop`` removes it) a table of ``--rows`` rows mixing
the types the connector maps (integers, numeric, double, boolean, text, varchar, timestamptz,
timestamp, date, jsonb, uuid, bytea, an integer array; NULLs here and there) in the database
``dbkit_bench`` of the local service, then times, as whole processes, ``--runs`` times each
(medians):

- the floor: ``psql -c "\\copy (SELECT * FROM t) TO STDOUT CSV"`` to /dev/null, and the same COPY
  through psycopg into a null sink;
- ``source-postgres read`` (full refresh, checkpoint defaults, stdout to /dev/null), and the same
  table read without its primary key (tuple-id chunks) when ``--ctid`` is given.

For each it prints seconds, rows/s, MB/s of output, the ratio to the floor's rows/s, the peak
RSS of the process (``VmHWM``, see :class:`Sampler`) and the CPU seconds it used: its own and,
when this machine's ``/proc`` shows the server's backends, theirs (sampled every 20 ms). On a
shared machine the wall-clock ratio moves with the other load; the CPU columns much less.
One more, untimed, run of each connector read checks its output: exactly one RECORD per row of
the table (every id once, their sum the table's), a final STATE, stream status COMPLETE.
``--memory-check`` then reads the table and one three times as large (created once, kept) and
prints both peaks: memory is bounded by the chunk, not the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
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
    cpu: float  # the process's own user + system seconds
    server_cpu: float | None  # the server backends' user + system seconds, when /proc shows them


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True)


def bench_db() -> psycopg.Connection[tuple[object, ...]]:
    with admin() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DATABASE, autocommit=True)


def drop_db() -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def ensure_table(table: str, rows: int, primary_key: bool) -> None:
    with bench_db() as conn:
        found = conn.execute(
            "SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = c.oid AND attname = 'id') = 1"
            " AND (SELECT count(*) FROM pg_index WHERE indrelid = c.oid AND indisprimary) = %s"
            " FROM pg_class AS c WHERE c.oid = to_regclass(%s)",
            [1 if primary_key else 0, f"public.{table}"],
        ).fetchone()
        if found is not None and found[0]:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            if count is not None and count[0] == rows:
                return
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        print(f"creating {table} ({rows} rows)...", file=sys.stderr, flush=True)
        started = time.monotonic()
        text = CREATE.format(table=table, rows=rows, pk="PRIMARY KEY" if primary_key else "")
        for statement in text.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        print(f"  created in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


class Sampler:
    """While a command runs, every 20 ms: the CPU seconds of the server's backends for
    :data:`DATABASE` (``/proc/<pid>/stat``) and the command's own peak RSS (``VmHWM`` of
    ``/proc/<pid>/status``, once it has exec'd: until ``exec`` a child shares its parent's
    memory, and ``wait4``'s ``ru_maxrss`` counts the parent's). A backend's or the command's
    last 20 ms may be missed. None for what this machine's ``/proc`` does not show."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.before = self.backends()
        self.peak_kb: int | None = None
        self._child: tuple[int, bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        with open("/proc/self/cmdline", "rb") as f:
            self._child = (pid, f.read())

    @staticmethod
    def backends() -> dict[int, float]:
        marker = f" {DATABASE} ".encode()
        out: dict[int, float] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
                if not cmdline.startswith(b"postgres: ") or marker not in cmdline:
                    continue
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(name)] = (int(fields[11]) + int(fields[12])) / Sampler.TICK
        return out

    def _child_peak(self) -> None:
        if self._child is None:
            return
        pid, cmdline = self._child
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == cmdline:
                    return  # not exec'd yet (psql execs twice: Debian's wrapper, then psql)
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        kb = int(line.split()[1])
                        self.peak_kb = max(self.peak_kb or 0, kb)
        except OSError:
            return

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._child_peak()
            for pid, seconds in self.backends().items():
                self.seen[pid] = max(self.seen.get(pid, 0.0), seconds)
            self._stop.wait(0.02)

    def stop(self) -> float | None:
        """Stop sampling; the backends' CPU seconds."""
        self._stop.set()
        self._thread.join()
        if not self.seen:
            return None
        return sum(seconds - self.before.get(pid, 0.0) for pid, seconds in self.seen.items())


def timed(argv: list[str]) -> Run:
    """Run a whole process, stdout to /dev/null: its wall time, peak RSS and CPU (``wait4``'s
    rusage) and its backends' CPU."""
    sampler = Sampler()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler.watch(proc.pid)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    server = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}: {errors.decode(errors='replace')[-2000:]}")
    peak_mb = sampler.peak_kb / 1024 if sampler.peak_kb is not None else usage.ru_maxrss / 1024
    return Run(seconds, peak_mb, usage.ru_utime + usage.ru_stime, server)


def output_bytes(argv: list[str]) -> int:
    """Bytes a command writes to stdout (one extra, untimed run)."""
    total = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 20):
            total += len(block)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {proc.returncode}")
    return total


@dataclass
class Expected:
    rows: int
    min_id: int
    max_id: int
    sum_id: int


def expected(table: str) -> Expected:
    with bench_db() as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*), min(id), max(id), sum(id) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return Expected(*(int(v) for v in row))  # type: ignore[call-overload]


def verify_read(argv: list[str], table: str, want: Expected) -> int:
    """One untimed run of a connector read: every row exactly once, a final STATE, COMPLETE.
    Returns the bytes it wrote."""
    seen = bytearray(want.max_id - want.min_id + 1)  # one byte per possible id: the bench stays small
    distinct = duplicates = outside = id_sum = 0
    records = total = 0
    statuses: list[str] = []
    states = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            total += len(line)
            message = orjson.loads(line)
            kind = message["type"]
            if kind == "RECORD":
                records += 1
                i = message["record"]["data"]["id"] - want.min_id
                if not 0 <= i < len(seen):
                    outside += 1
                elif seen[i]:
                    duplicates += 1
                else:
                    seen[i] = 1
                    distinct += 1
                    id_sum += i + want.min_id
            elif kind == "STATE":
                states += 1
            elif kind == "TRACE" and message["trace"].get("type") == "STREAM_STATUS":
                statuses.append(message["trace"]["stream_status"]["status"])
    problems = []
    if proc.returncode != 0:
        problems.append(f"exit status {proc.returncode}")
    if records != want.rows:
        problems.append(f"{records} RECORD messages for {want.rows} rows")
    if distinct != want.rows or duplicates or outside:
        problems.append(
            f"{distinct} distinct ids ({duplicates} repeated, {outside} unknown) for {want.rows} rows"
        )
    if id_sum != want.sum_id:
        problems.append("the ids read are not the table's")
    if not states:
        problems.append("no STATE")
    if not statuses or statuses[-1] != "COMPLETE":
        problems.append(f"stream statuses {statuses}")
    if problems:
        raise SystemExit(f"{table}: the connector's output is wrong: {'; '.join(problems)}")
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
    servers = [r.server_cpu for r in results if r.server_cpu is not None]
    return (
        Run(
            statistics.median(r.seconds for r in results),
            max(r.peak_mb for r in results),
            statistics.median(r.cpu for r in results),
            statistics.median(servers) if servers else None,
        ),
        results,
    )


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


HEADER = (
    "| what | seconds | rows/s | MB/s | ratio (rows/s) | peak RSS | CPU s: process | CPU s: server | runs (s) |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="max_parallel_chunks")
    parser.add_argument("--ctid", action="store_true", help="also read the table without a primary key")
    parser.add_argument("--memory-check", action="store_true", help="also read a table 3x as large")
    parser.add_argument("--drop", action="store_true", help="drop the bench database and exit")
    args = parser.parse_args()
    if args.drop:
        drop_db()
        return

    table = f"bench_mixed_{args.rows}"
    ensure_table(table, args.rows, primary_key=True)
    targets = [(table, "source-postgres read (primary key: key-range chunks)")]
    if args.ctid:
        ensure_table(f"{table}_nopk", args.rows, primary_key=False)
        targets.append((f"{table}_nopk", "source-postgres read (no key: tuple-id chunks)"))
    with bench_db() as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(f"# source-postgres benchmark, {args.rows} rows x 14 columns, {args.runs} runs each (medians)")
    print(f"# nproc={os.cpu_count()} PostgreSQL {version[0] if version else '?'} load before={load()}")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        floor_rows: float | None = None
        floor_bytes = output_bytes(psql_floor(table))
        commands: list[tuple[str, list[str], str | None]] = [
            ("floor: psql \\copy (SELECT *) TO STDOUT CSV", psql_floor(table), None),
            ("floor: psycopg COPY ... (FORMAT csv), null sink", psycopg_floor(table), None),
            *[(label, connector(t, workdir, args.parallel), t) for t, label in targets],
        ]
        for name, argv, checked in commands:
            size = floor_bytes if checked is None else verify_read(argv, checked, expected(checked))
            run, all_runs = median_run(argv, args.runs)
            rows_per_s = args.rows / run.seconds
            if floor_rows is None:
                floor_rows = rows_per_s
            server = f"{run.server_cpu:.2f}" if run.server_cpu is not None else "n/a"
            print(
                f"| {name} | {run.seconds:.2f} | {rows_per_s / 1000:.0f}k | {size / run.seconds / 1e6:.0f} "
                f"| {rows_per_s / floor_rows:.2f} | {run.peak_mb:.0f} MB | {run.cpu:.2f} | {server} | "
                + " / ".join(f"{r.seconds:.2f}" for r in all_runs)
                + " |",
                flush=True,
            )
        if args.memory_check:
            big = f"bench_mixed_{args.rows * 3}"
            ensure_table(big, args.rows * 3, primary_key=True)
            for t in (table, big):
                argv = connector(t, workdir, args.parallel)
                verify_read(argv, t, expected(t))
                run = timed(argv)
                print(
                    f"# memory: {t}: {run.seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB (output checked)",
                    flush=True,
                )
    print(f"# load after={load()}")
    print("# the floor's MB/s is its CSV output's; the connector's, its protocol output's (checked untimed)")


if __name__ == "__main__":
    main()
