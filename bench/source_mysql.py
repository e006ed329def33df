"""Benchmark: ``source-mysql read`` (full refresh) against ``mariadb --batch`` in the same run, and
binlog CDC of many changes against ``mariadb-binlog`` decoding the same binlog.

Usage (from the repository root; MariaDB on 127.0.0.1:3306, user root, no password)::

    .venv/bin/python bench/source_mysql.py [--rows 1000000] [--runs 3] [--chunks 1,2] [--cdc-changes 1000000]
    .venv/bin/python bench/source_mysql.py --drop     # remove the cached bench database

Full refresh: creates once (kept in ``dbkit_bench_mysql``) a table of ``--rows`` rows mixing the
types the connector maps (bigint key, int, bigint unsigned, decimal(18,6), double, float,
tinyint(1), varchar with escapes and non-ASCII, text, datetime(6), timestamp, date, time, enum,
set, bit(8), varbinary, JSON; NULLs here and there), then times, as whole processes, ``--runs``
times each (medians): the floor ``mariadb --batch -e 'SELECT * FROM t' > /dev/null``, and
``source-mysql read`` to /dev/null with each ``max_parallel_chunks`` of ``--chunks``, with the
CPU seconds of each process and of the server. One more, untimed, connector read checks the output (one
RECORD per row, every id once, a final STATE) and gives the output size for MB/s. Peak memory
is the process's ``VmHWM``, polled every 20 ms.

CDC (``--cdc-changes N``, 0 to skip): starts a throwaway MariaDB with a row binlog (dbkit.testing),
reads an empty table's snapshot, inserts/updates/deletes N rows in transactions of 1,000 rows,
then times the CDC read of those changes (every change checked) against the floor
``mariadb-binlog --read-from-remote-server --base64-output=DECODE-ROWS --verbose`` of the same
binlog range to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pymysql  # type: ignore[import-untyped]

HOST, PORT, USER, DATABASE = "127.0.0.1", 3306, "root", "dbkit_bench_mysql"
BIN = Path(sys.executable).parent
SOURCE = str(BIN / "source-mysql")
TABLE = "bench_rows"  # the 1,000,000-row table; other sizes: bench_rows_<rows>

CREATE = """
CREATE TABLE {table} (
  id       BIGINT PRIMARY KEY,
  c_int    INT,
  c_ubig   BIGINT UNSIGNED,
  c_dec    DECIMAL(18,6),
  c_dbl    DOUBLE,
  c_flt    FLOAT,
  c_bool   TINYINT(1),
  c_vc     VARCHAR(80) CHARACTER SET utf8mb4,
  c_text   TEXT CHARACTER SET utf8mb4,
  c_dt     DATETIME(6),
  c_ts     TIMESTAMP NULL,
  c_date   DATE,
  c_time   TIME,
  c_enum   ENUM('red','green','blue'),
  c_set    SET('a','b','c'),
  c_bit    BIT(8),
  c_bin    VARBINARY(16),
  c_json   JSON
) ENGINE=InnoDB
"""

FILL = """
INSERT INTO {table}
SELECT seq,
       CAST((seq * 2654435761) % 4294967296 AS SIGNED) - 2147483648,
       CAST(18446744073709551615 - seq * 12345 AS UNSIGNED),
       IF(seq % 3 = 0, -1, 1) * (seq * 7919 % 1000000000000) / 1000000.0,
       IF(seq % 10 = 0, NULL, SIN(seq) * POW(10, seq % 12 - 4)),
       IF(seq % 9 = 0, NULL, COS(seq) * 1000),
       IF(seq % 7 = 0, NULL, seq % 2),
       IF(seq % 50 = 0, CONCAT('q"uo\\\\te\\ttab\\nnl é中😀 ', MD5(seq)), LEFT(REPEAT(MD5(seq), 2), 20 + seq % 41)),
       IF(seq % 13 = 0, NULL, REPEAT(MD5(seq), 1 + seq % 3)),
       TIMESTAMP'2015-06-01 12:00:00' + INTERVAL seq * 977 SECOND + INTERVAL seq % 1000000 MICROSECOND,
       IF(seq % 11 = 0, NULL, TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq * 31 SECOND),
       DATE'2000-01-01' + INTERVAL seq % 20000 DAY,
       SEC_TO_TIME(seq % 86400),
       ELT(1 + seq % 3, 'red', 'green', 'blue'),
       IF(seq % 4 = 0, '', ELT(1 + seq % 3, 'a', 'a,b', 'b,c')),
       seq % 256,
       IF(seq % 4 = 0, NULL, UNHEX(LEFT(MD5(seq), 16))),
       IF(seq % 11 = 0, NULL, JSON_OBJECT('k', seq % 1000, 's', LEFT(MD5(seq), 6), 'a', JSON_ARRAY(seq % 3, 'x')))
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_{rows}) AS g
"""


def connect(database: str | None = DATABASE, **kwargs: Any) -> Any:
    return pymysql.connect(host=HOST, port=PORT, user=USER, database=database, autocommit=True, **kwargs)


def table_name(rows: int) -> str:
    return TABLE if rows == 1_000_000 else f"{TABLE}_{rows}"


def ensure_table(rows: int) -> str:
    """The name of the cached table of ``rows`` rows (created if missing)."""
    table = table_name(rows)
    with connect(None) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (DATABASE, table),
        )
        if cur.fetchone()[0]:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            if cur.fetchone()[0] == rows:
                return table
            cur.execute(f"DROP TABLE {table}")
        print(f"creating {table} ({rows} rows)...", file=sys.stderr, flush=True)
        started = time.monotonic()
        cur.execute(CREATE.format(table=table))
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(FILL.format(table=table, rows=rows))
        cur.execute(f"ANALYZE TABLE {table}")
        print(f"  created in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return table


class Peak:
    """The peak RSS (``VmHWM``) of a child process, polled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.kb = max(self.kb, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.kb / 1024


class Run(NamedTuple):
    seconds: float
    peak_mb: float
    cpu_s: float  # the process's user + system CPU seconds
    server_cpu_s: float | None  # the server's, when its process is on this machine and readable


def server_pid() -> int | None:
    """The pid of the MariaDB service (its ``pid_file``), if this user can read it."""
    try:
        with connect(None) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@pid_file")
            path = cur.fetchone()[0]
        pid = int(Path(path).read_text().strip())
        cpu_seconds(pid)
        return pid
    except (OSError, ValueError, pymysql.MySQLError):
        return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], stdout: Any = subprocess.DEVNULL, server: int | None = None) -> Run:
    """Seconds, peak MB and CPU seconds of one process (and of the server during it)."""
    server_before = cpu_seconds(server) if server is not None else None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
    peak = Peak(proc.pid)
    _, err = proc.communicate()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    server_cpu = (
        cpu_seconds(server) - server_before if server is not None and server_before is not None else None
    )
    mb = peak.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Run(seconds, mb, cpu, server_cpu)


def summary(runs: list[Run]) -> dict[str, Any]:
    """Medians of seconds and CPU, every run's seconds, the peak memory."""
    servers = [r.server_cpu_s for r in runs if r.server_cpu_s is not None]
    return {
        "seconds": [round(r.seconds, 2) for r in runs],
        "cpu_s_median": round(statistics.median(r.cpu_s for r in runs), 2),
        "server_cpu_s_median": round(statistics.median(servers), 2) if servers else None,
        "peak_mb": round(max(r.peak_mb for r in runs), 1),
    }


def write_json(directory: Path, name: str, doc: Any) -> str:
    path = directory / f"{name}.json"
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def catalog_for(config_path: str, stream_name: str, namespace: str, mode: str) -> dict[str, Any]:
    out = subprocess.run([SOURCE, "discover", "--config", config_path], capture_output=True, check=True)
    for line in out.stdout.splitlines():
        message = orjson.loads(line)
        if message["type"] == "CATALOG":
            for stream in message["catalog"]["streams"]:
                if stream["name"] == stream_name and stream.get("namespace") == namespace:
                    return {
                        "streams": [
                            {
                                "stream": stream,
                                "sync_mode": mode,
                                "destination_sync_mode": "append_dedup"
                                if mode == "incremental"
                                else "overwrite",
                                "primary_key": [["id"]],
                                "cursor_field": stream.get("default_cursor_field") or [],
                            }
                        ]
                    }
    raise SystemExit(f"stream {stream_name} not discovered")


def check_output(path: Path, rows: int) -> tuple[int, int]:
    """(records, bytes) of a read's output; every id once, a final STATE."""
    ids = 0
    total = 0
    records = 0
    states = 0
    with path.open("rb") as f:
        for line in f:
            if line.startswith(b'{"type":"RECORD"'):
                records += 1
                total += orjson.loads(line)["record"]["data"]["id"]
            elif b'"type":"STATE"' in line[:20]:
                states += 1
    ids = rows * (rows + 1) // 2
    if records != rows or total != ids or states == 0:
        raise SystemExit(f"the read is wrong: {records} records (want {rows}), id sum {total} (want {ids})")
    return records, path.stat().st_size


def full_refresh(rows: int, runs: int, chunks: list[int]) -> None:
    """The floor and ``source-mysql read`` with each ``max_parallel_chunks`` of ``chunks``, in
    turn, ``runs`` rounds; each read's output checked once first."""
    table = ensure_table(rows)
    work = Path(tempfile.mkdtemp(prefix="dbkit-bench-mysql-"))
    base = {"host": HOST, "port": PORT, "database": DATABASE, "username": USER, "password": ""}
    config = write_json(work, "config", base)
    catalog = write_json(work, "catalog", catalog_for(config, table, DATABASE, "full_refresh"))
    reads_argv = {}
    size = records = 0
    for n in chunks:
        config_n = write_json(work, f"config-{n}", {**base, "max_parallel_chunks": n})
        reads_argv[n] = [SOURCE, "read", "--config", config_n, "--catalog", catalog]
        out = work / "out.jsonl"
        with out.open("wb") as f:
            timed(reads_argv[n], stdout=f)
        records, size = check_output(out, rows)
        out.unlink()
    floor_argv = [
        "mariadb",
        "--batch",
        "-h",
        HOST,
        "-P",
        str(PORT),
        "-u",
        USER,
        DATABASE,
        "-e",
        f"SELECT * FROM {table}",
    ]
    server = server_pid()
    load_before = os.getloadavg()
    floors: list[Run] = []
    reads: dict[int, list[Run]] = {n: [] for n in chunks}
    for _ in range(runs):
        floors.append(timed(floor_argv, server=server))
        for n in chunks:
            reads[n].append(timed(reads_argv[n], server=server))
    floor_s = statistics.median(r.seconds for r in floors)
    doc: dict[str, Any] = {
        "bench": "source-mysql full refresh",
        "rows": rows,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "floor": summary(floors),
        "floor_rows_per_s": round(rows / floor_s),
        "output_mb": round(size / 1e6, 1),
        "checked_records": records,
    }
    for n in chunks:
        read_s = statistics.median(r.seconds for r in reads[n])
        doc[f"read_max_parallel_chunks_{n}"] = {
            **summary(reads[n]),
            "rows_per_s": round(rows / read_s),
            "mb_per_s": round(size / 1e6 / read_s, 1),
            "ratio": round(floor_s / read_s, 3),
        }
    print(json.dumps(doc, indent=1))


def cdc(changes: int, runs: int) -> None:
    from dbkit.testing.servers.base import ServerRequirements
    from dbkit.testing.servers.mysql import start_local_mysql

    server = start_local_mysql(ServerRequirements(binlog=True))
    try:
        port = server.port
        work = Path(tempfile.mkdtemp(prefix="dbkit-bench-mysql-cdc-"))
        conn = pymysql.connect(host=HOST, port=port, user=USER, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute(
                "CREATE TABLE bench.t (id BIGINT PRIMARY KEY, n INT, d DECIMAL(18,6), f DOUBLE, "
                "s VARCHAR(64), ts DATETIME(6), j LONGTEXT CHECK (JSON_VALID(j)))"
            )
        config_doc = {
            "host": HOST,
            "port": port,
            "database": "bench",
            "username": USER,
            "password": "",
            "replication_method": {"method": "CDC", "initial_waiting_seconds": 120},
        }
        config = write_json(work, "config", config_doc)
        catalog = write_json(work, "catalog", catalog_for(config, "t", "bench", "incremental"))
        first = work / "first.jsonl"
        with first.open("wb") as f:
            timed([SOURCE, "read", "--config", config, "--catalog", catalog], stdout=f)
        state = [
            orjson.loads(line)["state"] for line in first.read_bytes().splitlines() if b'"STATE"' in line[:20]
        ][-1]
        state_path = write_json(work, "state", [state])
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            start_file, start_pos = cur.fetchone()[:2]
            batch = 1000
            inserted = 0
            print(f"writing {changes} changes...", file=sys.stderr, flush=True)
            while inserted < changes:
                n = min(batch, changes - inserted)
                values = ",".join(
                    f"({inserted + i}, {inserted + i}, {(inserted + i) / 7:.6f}, {(inserted + i) * 1.1}, "
                    f"'{'s' * (i % 40)}-{inserted + i}', '2024-01-01 00:00:00.{i:06d}', '{{\"k\": {i}}}')"
                    for i in range(n)
                )
                cur.execute(f"INSERT INTO bench.t VALUES {values}")
                inserted += n
            cur.execute("SHOW MASTER STATUS")
            end_file, end_pos = cur.fetchone()[:2]
        read = [SOURCE, "read", "--config", config, "--catalog", catalog, "--state", state_path]
        out = work / "out.jsonl"
        with out.open("wb") as f:
            timed(read, stdout=f)
        records = sum(1 for line in out.open("rb") if line.startswith(b'{"type":"RECORD"'))
        if records != changes:
            raise SystemExit(f"the CDC read is wrong: {records} records (want {changes})")
        size = out.stat().st_size
        out.unlink()
        floor_argv = [
            "mariadb-binlog",
            "--read-from-remote-server",
            "-h",
            HOST,
            "-P",
            str(port),
            "-u",
            USER,
            "--base64-output=DECODE-ROWS",
            "--verbose",
            f"--start-position={start_pos}",
            f"--stop-position={end_pos}",
            start_file,
        ]
        if start_file != end_file:
            raise SystemExit("the changes span binlog files; use fewer")
        floors, reads = [], []
        for _ in range(runs):
            floors.append(timed(floor_argv))
            reads.append(timed(read))
        floor_s = statistics.median(r.seconds for r in floors)
        read_s = statistics.median(r.seconds for r in reads)
        print(
            json.dumps(
                {
                    "bench": "source-mysql binlog CDC (inserts, 1,000-row transactions)",
                    "changes": changes,
                    "load": os.getloadavg(),
                    "floor": summary(floors),
                    "read": summary(reads),
                    "floor_changes_per_s": round(changes / floor_s),
                    "read_changes_per_s": round(changes / read_s),
                    "ratio": round(floor_s / read_s, 3),
                    "read_mb_per_s": round(size / 1e6 / read_s, 1),
                    "checked_records": records,
                },
                indent=1,
            )
        )
        conn.close()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cdc-changes", type=int, default=0)
    parser.add_argument("--skip-full-refresh", action="store_true")
    parser.add_argument(
        "--chunks", default="2", help="max_parallel_chunks of the reads, comma-separated (e.g. 1,2)"
    )
    parser.add_argument("--drop", action="store_true")
    args = parser.parse_args()
    if args.drop:
        with connect(None) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        return
    if not args.skip_full_refresh:
        full_refresh(args.rows, args.runs, [int(n) for n in args.chunks.split(",")])
    if args.cdc_changes:
        cdc(args.cdc_changes, args.runs)


if __name__ == "__main__":
    main()
