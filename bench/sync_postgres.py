"""Benchmark: ``dbkit sync`` PostgreSQL -> PostgreSQL against ``pg_dump -t | psql``, in the same run.

Usage (from the repository root, PostgreSQL on 127.0.0.1:5432, user postgres, trust auth)::

    .venv/bin/python -m bench.sync_postgres [--rows 1000000] [--runs 3] [--paths floor,arrow,json]

The source table is ``bench.source_postgres``'s mixed-type table (bigint key, integer,
numeric(18,6), double, boolean, text with escapes and non-ASCII, varchar, timestamptz, timestamp,
date, jsonb, uuid, bytea, integer[]; NULLs in most), created once in ``dbkit_bench`` and kept.
Each round runs, as whole processes, one after the other:

- floor: ``pg_dump -t public.<table> dbkit_bench | psql -d dbkit_bench_sync_floor`` (the table
  dropped first);
- ``dbkit sync --full-refresh --protocol arrow`` (source-postgres -> destination-postgres, into
  ``dbkit_bench_sync_arrow``), a fresh state file each time;
- the same with ``--protocol json`` (into ``dbkit_bench_sync_json``);
- with ``--paths ...,arrow-columns``: the Arrow path with ``DBKIT_FRAME_KIND=columns`` (typed
  frames of text, the source's read before native frames; into ``dbkit_bench_sync_arrow_columns``).

For each it prints seconds, rows/s, MB/s (of the source table's heap), the ratio of rows/s to
the floor's of the same round, the peak RSS of every process of the command (the sync runner,
the source, the destination, psql, pg_dump; sampled every 20 ms) and the CPU seconds of the
server backends of the three databases. After the rounds it checks the copies: the floor's
table equals the source (count and an md5 of every column's text), and the Arrow path's and the
JSON path's tables hold the same rows (count, one row per id, and an md5 of every data column's
text) -- the parity of the two paths on the full table.
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
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bench.source_postgres import DATABASE, HOST, PORT, USER, admin, ensure_table

BIN = Path(sys.executable).parent
DBKIT = str(BIN / "dbkit")
TICK = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "floor": "dbkit_bench_sync_floor",
    "arrow": "dbkit_bench_sync_arrow",
    "arrow-columns": "dbkit_bench_sync_arrow_columns",
    "arrow-inprocess": "dbkit_bench_sync_arrow_inprocess",
    "arrow-subprocess": "dbkit_bench_sync_arrow_subprocess",
    "json": "dbkit_bench_sync_json",
}
ENVIRONMENTS = {"arrow-columns": {"DBKIT_FRAME_KIND": "columns"}}
"""Paths that are another path with a setting: ``arrow-columns`` is the Arrow path in typed frames
of text (the source's read before native frames), ``arrow`` the default (native frames, ADBC);
``arrow-inprocess`` is the Arrow path with ``--in-process`` (both connectors threads of the sync's
process: no interpreter started for them), which is also what ``arrow`` does by default since
2026-12-07 (two dbkit connectors installed here); ``arrow-subprocess`` is the Arrow path with
``--subprocess`` (three processes, as ``arrow`` was before)."""


@dataclass
class Run:
    seconds: float
    peaks_mb: dict[str, float] = field(default_factory=dict)
    server_cpu: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of the command's processes


def recreate(database: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def connect(database: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=database, autocommit=True)


class Sampler:
    """Every 20 ms: VmRSS of every process under ``root`` (by command name) and the CPU seconds
    of the server backends of ``databases``."""

    def __init__(self, root: int, databases: list[str]) -> None:
        self.root = root
        self.markers = [f" {d} ".encode() for d in databases]
        self.peaks: dict[str, float] = {}
        self.pid_cpu: dict[int, tuple[str, float]] = {}
        self.backend_cpu: dict[int, float] = {}
        self.before = self._backends()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _backends(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
                if not cmdline.startswith(b"postgres: ") or not any(m in cmdline for m in self.markers):
                    continue
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(name)] = (int(fields[11]) + int(fields[12])) / TICK
        return out

    def _tree(self) -> None:
        children: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        rss: dict[int, float] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/status") as f:
                    status = f.read()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            pid = int(name)
            children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
            names[pid] = fields.get("Name", "?").strip()
            if "VmRSS" in fields:
                rss[pid] = int(fields["VmRSS"].split()[0]) / 1024
        pending = [self.root]
        while pending:
            pid = pending.pop()
            pending.extend(children.get(pid, []))
            if pid in rss:
                label = names[pid]
                self.peaks[label] = max(self.peaks.get(label, 0.0), rss[pid])
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        stat = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.pid_cpu[pid] = (label, (int(stat[11]) + int(stat[12])) / TICK)

    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for label, seconds in self.pid_cpu.values():
            out[label] = out.get(label, 0.0) + seconds
        return out

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._tree()
            for pid, seconds in self._backends().items():
                self.backend_cpu[pid] = max(self.backend_cpu.get(pid, 0.0), seconds)
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(s - self.before.get(pid, 0.0) for pid, s in self.backend_cpu.items())


def timed(command: str | list[str], databases: list[str], env: dict[str, str] | None = None) -> Run:
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        shell=isinstance(command, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    sampler = Sampler(proc.pid, databases)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    code = proc.wait()
    seconds = time.monotonic() - started
    server = sampler.stop()
    if code != 0:
        raise SystemExit(f"{command} failed ({code}): {errors.decode(errors='replace')[-3000:]}")
    return Run(seconds, sampler.peaks, server, sampler.cpu())


def floor_command(table: str) -> str:
    return (
        f"pg_dump -h {HOST} -p {PORT} -U {USER} -t public.{table} {DATABASE}"
        f" | psql -q -X -v ON_ERROR_STOP=1 -h {HOST} -p {PORT} -U {USER} -d {TARGETS['floor']}"
    )


def sync_command(table: str, path: str, workdir: Path) -> list[str]:
    source = {
        "host": HOST,
        "port": PORT,
        "database": DATABASE,
        "username": USER,
        "ssl_mode": {"mode": "disable"},
        "include_tables": [table],
    }
    destination = {
        "host": HOST,
        "port": PORT,
        "database": TARGETS[path],
        "username": USER,
        "ssl_mode": {"mode": "disable"},
    }
    (workdir / "source.json").write_text(json.dumps(source))
    (workdir / f"destination-{path}.json").write_text(json.dumps(destination))
    state = workdir / f"state-{path}.json"
    state.unlink(missing_ok=True)
    return [
        DBKIT,
        "sync",
        "--source",
        "source-postgres",
        "--source-config",
        str(workdir / "source.json"),
        "--destination",
        "destination-postgres",
        "--destination-config",
        str(workdir / f"destination-{path}.json"),
        "--state-file",
        str(state),
        "--full-refresh",
        "--no-progress",
        "--protocol",
        path.split("-")[0],
        *(["--in-process"] if path.endswith("-inprocess") else []),
        *(["--subprocess"] if path.endswith("-subprocess") else []),
    ]


def checksum(database: str, table: str, columns: list[str]) -> tuple[int, int, str]:
    """(rows, distinct ids, md5 of every listed column's text in id order)."""
    cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
    query = sql.SQL(
        "SELECT count(*), count(DISTINCT id), md5(string_agg(md5(concat_ws('|', {})), '' ORDER BY id))"
        " FROM public.{}"
    ).format(cols, sql.Identifier(table))
    with connect(database) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1])), str(row[2])


def data_columns(database: str, table: str) -> list[str]:
    with connect(database) as conn:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped AND attname NOT LIKE '\\_airbyte\\_%%' ORDER BY attnum",
            [f"public.{table}"],
        ).fetchall()
    return [str(r[0]) for r in rows]


def heap_mb(table: str) -> float:
    with connect(DATABASE) as conn:
        row = conn.execute("SELECT pg_table_size(%s::regclass)", [f"public.{table}"]).fetchone()
    assert row is not None
    return float(str(row[0])) / 1e6


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--paths",
        default="floor,arrow,json",
        help="comma-separated: floor, arrow, arrow-columns, arrow-inprocess, arrow-subprocess, json",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the checks of the copies")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    table = f"bench_mixed_{args.rows}"
    ensure_table(table, args.rows, primary_key=True)
    size = heap_mb(table)
    print(f"table {table}: {args.rows} rows, {size:.0f} MB of heap; load before {load()}", flush=True)
    results: dict[str, list[Run]] = {p: [] for p in paths}
    with tempfile.TemporaryDirectory(prefix="dbkit-bench-sync-") as tmp:
        workdir = Path(tmp)
        for round_no in range(args.runs):
            for path in paths:
                recreate(TARGETS[path])
                with connect(TARGETS[path]) as conn:
                    conn.execute("CHECKPOINT")
                command: str | list[str] = (
                    floor_command(table) if path == "floor" else sync_command(table, path, workdir)
                )
                run = timed(command, [DATABASE, TARGETS[path]], ENVIRONMENTS.get(path))
                results[path].append(run)
                shown = ", ".join(
                    f"{k} {v:.0f} MB / {run.cpu.get(k, 0.0):.1f} CPU s"
                    for k, v in sorted(run.peaks_mb.items())
                    if v >= 5
                )
                print(
                    f"round {round_no + 1} {path:>5}: {run.seconds:6.2f} s, server CPU {run.server_cpu:5.1f} s,"
                    f" load {load()}; peak RSS: {shown}",
                    flush=True,
                )
    print()
    print(
        "| path | seconds (median) | rows/s | MB/s | ratio to floor | runs (s) | peak RSS | CPU s: server |"
    )
    print("|---|---:|---:|---:|---:|---|---|---:|")
    for path, runs in results.items():
        seconds = statistics.median(r.seconds for r in runs)
        ratios = ""
        if "floor" in results:
            per_round = [f.seconds / r.seconds for f, r in zip(results["floor"], runs, strict=True)]
            ratios = f"**{statistics.median(per_round):.2f}** ({' / '.join(f'{x:.2f}' for x in per_round)})"
        peaks: dict[str, float] = {}
        for r in runs:
            for k, v in r.peaks_mb.items():
                peaks[k] = max(peaks.get(k, 0.0), v)
        peak_text = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(peaks.items()) if v >= 5)
        print(
            f"| {path} | {seconds:.2f} | {args.rows / seconds / 1000:.0f}k | {size / seconds:.0f} | {ratios} |"
            f" {' / '.join(f'{r.seconds:.2f}' for r in runs)} | {peak_text} |"
            f" {statistics.median(r.server_cpu for r in runs):.1f} |"
        )
    print(f"\nload after {load()}")
    if args.no_check:
        return
    source_columns = data_columns(DATABASE, table)
    want = checksum(DATABASE, table, source_columns)
    if "floor" in paths:
        got = checksum(TARGETS["floor"], table, source_columns)
        print(f"floor copy equals the source: {got == want} ({got[0]} rows)")
        if got != want:
            raise SystemExit("the floor's copy differs from the source")
    synced = [p for p in paths if p != "floor"]
    sums = {}
    for path in synced:
        columns = data_columns(TARGETS[path], table)
        if columns != source_columns:
            raise SystemExit(f"{path}: columns {columns} are not the source's {source_columns}")
        sums[path] = checksum(TARGETS[path], table, columns)
        if sums[path][:2] != (want[0], want[0]):
            raise SystemExit(f"{path}: {sums[path][0]} rows, {sums[path][1]} ids; the source has {want[0]}")
    if len(set(sums.values())) > 1:
        raise SystemExit(f"the paths' tables differ: {sums}")
    if sums:
        print(f"synced tables: {want[0]} rows, one per id, every path the same checksum: {sums}")


if __name__ == "__main__":
    main()
