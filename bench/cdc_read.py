"""Benchmark: ``source-postgres read`` in CDC mode against ``pg_recvlogical``, in the same run.

Usage (from the repository root; needs the PostgreSQL 15 binaries, not the shared service)::

    .venv/bin/python bench/cdc_read.py [--rows 1000000] [--runs 1]

Starts a throwaway PostgreSQL with ``wal_level=logical`` from the local binaries
(``dbkit.testing``'s server code; the shared service on 5432 has ``wal_level=replica``), makes a
table of 14 mixed-type columns (bigint key, integer, numeric, double, boolean, text, varchar,
timestamptz, timestamp, date, jsonb, uuid, bytea, integer[]; NULLs here and there) and a
publication of it, and creates the slots, all before any change: one per floor run (each
``pg_recvlogical`` run confirms what it read, so a slot serves one run) and one for the connector
(a CDC read confirms nothing until the next read starts from a state the destination echoed, so
every run reads the same changes from it). A first connector read of the empty table gives the
GLOBAL state the timed reads start from. Then ``--rows`` row changes are written: half inserts
(multi-row transactions of ``--insert-txn`` rows), 30% updates of three columns and 20% deletes
(transactions of ``--other-txn`` rows).

Each run reads every change up to the WAL position after the writes, as a whole process:

- the floor: ``pg_recvlogical --start --no-loop -E <end> -o proto_version=1 -o
  publication_names=... -f /dev/null`` (what a user would run to read the slot);
- ``source-postgres read`` with ``replication_method: CDC``, from the saved state, stdout read
  by this script, which counts bytes, RECORD lines and deletes, and checks the final STATE and
  stream status (the counts are ``bytes.count`` over 1 MB blocks: negligible CPU).

Prints seconds, row changes/s, MB/s of each tool's own output (pgoutput payloads for the floor,
counted in one more, untimed run; protocol lines for the connector), the ratio of rows/s to the
floor's, the peak RSS of each process (``VmHWM``, sampled every 20 ms), the CPU seconds of the
process and of its walsender, and the load average before and after. Needs no data in the repo.
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
from typing import Any

import orjson
import psycopg

from dbkit.testing.servers import ServerRequirements, find_server
from dbkit.testing.servers.postgres import find_postgres_bindir

BIN = Path(sys.executable).parent
SOURCE = str(BIN / "source-postgres")
PUBLICATION = "bench_pub"
CONNECTOR_SLOT = "bench_connector"
TICK = os.sysconf("SC_CLK_TCK")

TABLE = """
CREATE TABLE t (
  id        bigint PRIMARY KEY,
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
)
"""

ROW = """
SELECT i,
       ((i * 2654435761) % 4294967296 - 2147483648)::int,
       (((i * 7919) % 1000000000000) / 1000000.0 * CASE WHEN i % 3 = 0 THEN -1 ELSE 1 END)::numeric(18,6),
       CASE WHEN i % 10 = 0 THEN NULL ELSE sin(i) * 10 ^ (i % 12 - 4) END,
       CASE WHEN i % 7 = 0 THEN NULL ELSE i % 2 = 0 END,
       CASE WHEN i % 50 = 0
            THEN left(E'q"uo\\\\te\\ttab\\nnl\\r cr \\u00e9\\u4e2d\\U0001F600 /sl ' || md5(i::text), (20 + i % 61)::int)
            ELSE left(repeat(md5(i::text), 3), (20 + i % 61)::int) END,
       'vc-' || left(md5((i * 31)::text), ((i % 29) + 1)::int),
       timestamptz '2020-01-01 00:00:00+00' + (i * 31536123457::bigint % 126144000000000) * interval '1 microsecond',
       timestamp '2015-06-01 12:00:00' + (i * 977) * interval '1 second' + (i % 1000000) * interval '1 microsecond',
       date '2000-01-01' + (i % 20000)::int,
       CASE WHEN i % 11 = 0 THEN NULL
            ELSE jsonb_build_object('k', i % 1000, 's', left(md5(i::text), 6), 'f', i % 5 = 0) END,
       md5(i::text)::uuid,
       CASE WHEN i % 4 = 0 THEN NULL ELSE decode(left(md5(i::text), 16), 'hex') END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY[i % 10, i % 100, (i % 7)]::integer[] END
FROM generate_series(lo, hi) AS g(i)
"""

FILL = f"""
CREATE PROCEDURE fill(inserts bigint, updates bigint, deletes bigint, per_insert bigint, per_other bigint)
LANGUAGE plpgsql AS $$
DECLARE lo bigint; hi bigint;
BEGIN
  lo := 1;
  WHILE lo <= inserts LOOP
    hi := least(lo + per_insert - 1, inserts);
    INSERT INTO t {ROW};
    COMMIT;
    lo := hi + 1;
  END LOOP;
  lo := 1;
  WHILE lo <= updates LOOP
    hi := least(lo + per_other - 1, updates);
    UPDATE t SET c_int = c_int + 1, c_text = 'updated ' || c_text, c_tstz = c_tstz + interval '1 hour'
      WHERE id BETWEEN lo AND hi;
    COMMIT;
    lo := hi + 1;
  END LOOP;
  lo := inserts - deletes + 1;
  WHILE lo <= inserts LOOP
    hi := least(lo + per_other - 1, inserts);
    DELETE FROM t WHERE id BETWEEN lo AND hi;
    COMMIT;
    lo := hi + 1;
  END LOOP;
END $$
"""


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu: float  # the process's user + system seconds (wait4)
    walsender_cpu: float  # its walsender's, sampled from /proc
    output_bytes: int
    records: int = -1
    deletes: int = -1
    tail: bytes = b""  # the last 1 MB of a counted output


class Sampler:
    """While a command runs, every 20 ms: its peak RSS (``VmHWM``, once it has exec'd) and the CPU
    seconds of the server's walsenders (found in ``pg_stat_activity``: this server is the bench's
    own, so every walsender is the run's)."""

    def __init__(self, server_params: dict[str, Any]) -> None:
        self._conn = psycopg.connect(**server_params, autocommit=True)
        self._pid: int | None = None
        self._cmdline = b""
        self.peak_kb = 0
        self.walsenders: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self, pid: int) -> None:
        with open("/proc/self/cmdline", "rb") as f:
            self._cmdline = f.read()
        self._pid = pid
        self._thread.start()

    def _poll(self) -> None:
        tick = 0
        pids: list[int] = []
        while not self._stop.is_set():
            if tick % 5 == 0:
                pids = [
                    int(r[0])
                    for r in self._conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'"
                    ).fetchall()
                ]
            tick += 1
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    self.walsenders[pid] = (int(fields[11]) + int(fields[12])) / TICK
                except OSError:
                    pass
            try:
                with open(f"/proc/{self._pid}/cmdline", "rb") as f:
                    if f.read() != self._cmdline:  # exec'd: its own memory from here on
                        with open(f"/proc/{self._pid}/status") as s:
                            for line in s:
                                if line.startswith("VmHWM:"):
                                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                pass
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def timed(argv: list[str], server_params: dict[str, Any], *, count: bool) -> Run:
    """Run a whole process; stdout to /dev/null, or (``count``) read here: its bytes, RECORD lines,
    deletes, and the last 1 MB kept for the checks."""
    sampler = Sampler(server_params)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE if count else subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    sampler.start(proc.pid)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()
    total = records = deletes = 0
    tail = b""
    if count:
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 20):
            total += len(block)
            joined = tail[-64:] + block  # a marker split between two blocks is counted once
            records += joined.count(b'{"type":"RECORD"') - tail[-64:].count(b'{"type":"RECORD"')
            deletes += joined.count(b'"_ab_cdc_deleted_at":"') - tail[-64:].count(b'"_ab_cdc_deleted_at":"')
            tail = (tail + block)[-(1 << 20) :]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    sampler.stop()
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        text = b"".join(errors).decode(errors="replace")
        raise SystemExit(f"{argv[0]} failed with status {status}: {text[-3000:]}")
    return Run(
        seconds,
        sampler.peak_kb / 1024 if sampler.peak_kb else usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        sum(sampler.walsenders.values()),
        total,
        records if count else -1,
        deletes if count else -1,
        tail,
    )


def floor_argv(bindir: Path, params: dict[str, Any], slot: str, end: int, out: str) -> list[str]:
    return [
        str(bindir / "pg_recvlogical"),
        *("-h", str(params["host"]), "-p", str(params["port"]), "-U", str(params["user"])),
        *("-d", str(params["dbname"]), "-S", slot, "--start", "--no-loop", "-E", format_lsn(end)),
        *("-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}", "-f", out),
    ]


def connector_files(workdir: Path, params: dict[str, Any]) -> tuple[Path, Path]:
    config = {
        "host": params["host"],
        "port": params["port"],
        "database": params["dbname"],
        "username": params["user"],
        "ssl_mode": {"mode": "disable"},
        "replication_method": {
            "method": "CDC",
            "replication_slot": CONNECTOR_SLOT,
            "publication": PUBLICATION,
            "initial_waiting_seconds": 30,
        },
    }
    if params.get("password"):
        config["password"] = params["password"]
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    discovered = subprocess.run(
        [SOURCE, "discover", "--config", str(config_path)], capture_output=True, check=True
    ).stdout
    streams = next(
        json.loads(line)["catalog"]["streams"] for line in discovered.splitlines() if b'"CATALOG"' in line
    )
    chosen = [s for s in streams if s["name"] == "t"]
    assert len(chosen) == 1, f"discover found no single stream t: {[s['name'] for s in streams]}"
    catalog = {
        "streams": [
            {
                "stream": chosen[0],
                "sync_mode": "incremental",
                "destination_sync_mode": "append_dedup",
                "primary_key": [["id"]],
            }
        ]
    }
    catalog_path = workdir / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    return config_path, catalog_path


def last_state(output: bytes) -> dict[str, Any]:
    states = [orjson.loads(line) for line in output.splitlines() if line.startswith(b'{"type":"STATE"')]
    if not states:
        raise SystemExit("the connector wrote no STATE")
    state: dict[str, Any] = states[-1]["state"]
    return state


def check_connector(run: Run, want_records: int, want_deletes: int, end: int) -> None:
    """Every change once (RECORD and delete counts), a final GLOBAL STATE at or past the end
    position, the stream COMPLETE."""
    lines = run.tail.splitlines()[1:]  # the first may be cut
    problems = []
    if run.records != want_records:
        problems.append(f"{run.records} RECORD lines for {want_records} row changes")
    if run.deletes != want_deletes:
        problems.append(f"{run.deletes} deletes for {want_deletes}")
    state = last_state(b"\n".join(lines))
    lsn = state["global"]["shared_state"]["position"]["lsn"]
    if lsn < end:
        problems.append(f"the final STATE is at {format_lsn(lsn)}, before the end {format_lsn(end)}")
    statuses = [
        orjson.loads(line)["trace"]["stream_status"]["status"]
        for line in lines
        if line.startswith(b'{"type":"TRACE"') and b'"STREAM_STATUS"' in line
    ]
    if not statuses or statuses[-1] != "COMPLETE":
        problems.append(f"stream statuses {statuses}")
    if problems:
        raise SystemExit(f"the connector's output is wrong: {'; '.join(problems)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="row changes (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs of each (medians), at most 4")
    parser.add_argument("--insert-txn", type=int, default=100, help="rows per insert transaction")
    parser.add_argument("--other-txn", type=int, default=10, help="rows per update / delete transaction")
    parser.add_argument(
        "--profile", metavar="FILE", help="then one more connector read under cProfile, its stats to FILE"
    )
    args = parser.parse_args()
    if not 1 <= args.runs <= 4:
        parser.error("--runs: 1 to 4 (a floor run needs a slot of its own; the server has 10)")
    inserts = args.rows // 2
    updates = args.rows * 3 // 10
    deletes = args.rows - inserts - updates
    if deletes > inserts - updates:
        parser.error("--rows too small")

    bindir = find_postgres_bindir()
    server = find_server(
        "postgres", ServerRequirements(logical_replication=True), providers=["local-binaries"]
    )
    with server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = server.create_database(prefix="cdcbench")
        params = dict(db.connection_params())
        admin = params
        with psycopg.connect(**params, autocommit=True) as pg:
            version = pg.execute("SHOW server_version").fetchone()
            pg.execute(TABLE)
            pg.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE t")
            floor_slots = [f"bench_floor_{i}" for i in range(args.runs + 1)]
            for slot in [*floor_slots, CONNECTOR_SLOT]:
                pg.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
            config, catalog = connector_files(workdir, params)
            read = [SOURCE, "read", "--config", str(config), "--catalog", str(catalog)]
            first = subprocess.run(read, capture_output=True, check=True).stdout
            state_path = workdir / "state.json"
            state_path.write_text(json.dumps([last_state(first)]))
            read += ["--state", str(state_path)]

            started = time.monotonic()
            pg.execute(FILL)
            pg.execute(
                "CALL fill(%s, %s, %s, %s, %s)", [inserts, updates, deletes, args.insert_txn, args.other_txn]
            )
            row = pg.execute("SELECT pg_current_wal_lsn()").fetchone()
            assert row is not None
            end = int(str(row[0]).split("/")[0], 16) << 32 | int(str(row[0]).split("/")[1], 16)
            pg.execute("CHECKPOINT")
            made = time.monotonic() - started
        print(
            f"# CDC read benchmark: {args.rows:,} row changes ({inserts:,} inserts in transactions of "
            f"{args.insert_txn}, {updates:,} updates and {deletes:,} deletes in transactions of "
            f"{args.other_txn}; 14 columns), written in {made:.0f} s"
        )
        print(
            f"# nproc={os.cpu_count()} PostgreSQL {version[0] if version else '?'} (throwaway, wal_level=logical)"
        )
        print(f"# load before={load()}")

        # the floor's output size: one untimed run into a pipe
        sized = timed(floor_argv(bindir, admin, floor_slots[0], end, "-"), admin, count=True)
        floors: list[Run] = []
        connectors: list[Run] = []
        for i in range(args.runs):
            floors.append(
                timed(floor_argv(bindir, admin, floor_slots[i + 1], end, "/dev/null"), admin, count=False)
            )
            run = timed(read, admin, count=True)
            check_connector(run, args.rows, deletes, end)
            connectors.append(run)

        print(
            "| what | seconds | rows/s | MB/s | ratio (rows/s) | peak RSS | CPU s: process | CPU s: walsender | runs (s) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        floor_s = statistics.median(r.seconds for r in floors)
        for label, runs, size in (
            ("floor: `pg_recvlogical` pgoutput -> /dev/null", floors, sized.output_bytes),
            ("`source-postgres read`, CDC", connectors, connectors[0].output_bytes),
        ):
            seconds = statistics.median(r.seconds for r in runs)
            print(
                f"| {label} | {seconds:.2f} | {args.rows / seconds / 1000:.0f}k | {size / seconds / 1e6:.0f} "
                f"| {floor_s / seconds:.2f} | {max(r.peak_mb for r in runs):.0f} MB "
                f"| {statistics.median(r.cpu for r in runs):.2f} "
                f"| {statistics.median(r.walsender_cpu for r in runs):.2f} | "
                + " / ".join(f"{r.seconds:.2f}" for r in runs)
                + " |",
                flush=True,
            )
        print(f"# load after={load()}")
        if args.profile:
            profiled = timed([sys.executable, "-m", "cProfile", "-o", args.profile, *read], admin, count=True)
            check_connector(profiled, args.rows, deletes, end)
            print(f"# profiled read: {profiled.seconds:.2f} s, stats in {args.profile}")
        print(
            f"# output: floor {sized.output_bytes / 1e6:.0f} MB of pgoutput payloads; connector "
            f"{connectors[0].output_bytes / 1e6:.0f} MB of protocol lines ({connectors[0].records:,} RECORDs, "
            f"{connectors[0].deletes:,} deletes, checked)"
        )


if __name__ == "__main__":
    main()
