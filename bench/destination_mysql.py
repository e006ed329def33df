"""Benchmark: ``destination-mysql write`` against MySQL's own bulk load, in the same run.

    .venv/bin/python bench/destination_mysql.py [--records 1000000] [--runs 1] [--insert-compare]
        [--parallel-loads 2,3] [--before CHECKOUT] [--port 3306]

Generates (once, cached under ``bench/data/``) ``--records`` RECORD messages of one stream
``orders`` (integers, exact decimals, strings with quotes, commas, backslashes, newlines and
non-ASCII text, booleans, dates, timestamps with and without a zone, objects, NULLs), a STATE
every 10,000 records and a final COMPLETE, and renders the very same rows (with the four
``_airbyte_*`` values) as the CSV that ``LOAD DATA`` reads. Also a second file of the same size
for a second dedup run: 10% updates of the first file's keys (cursor a day later), 90% new keys.

Then, in the database ``bench_destination_mysql`` of the local service (127.0.0.1:3306, root), it times
as whole processes:

(a) the floor: ``mysql --local-infile -e "LOAD DATA LOCAL INFILE 'rows.csv' ..."`` into a table
    with the columns and types the destination creates;
(b) ``destination-mysql write`` in append mode (stdin from the messages file);
(c) append_dedup (key ``id``, cursor ``updated_at``) into an empty table;
(d) append_dedup of the second file into the table (c) left.

It prints seconds, rows/s, MB/s (of the CSV), the ratio of rows/s to the floor's and the peak RSS
of the connector process (``wait4``), and checks every result before believing its time: the
row count, one row per key for dedup, and a checksum of every data column and
``_airbyte_extracted_at`` / ``_airbyte_meta`` / ``_airbyte_generation_id`` against the floor's
tables (for (d): the second file's rows over the first's).

``--insert-compare`` also times, in this process, the connector's loading path (Arrow batch ->
CSV -> LOAD DATA LOCAL from a stream) against PyMySQL ``executemany`` of multi-row INSERTs of the
same rows (10,000 per statement), on 200,000 rows of the floor table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pymysql  # type: ignore[import-untyped]

HOST, PORT, USER, DATABASE = "127.0.0.1", 3306, "root", "bench_destination_mysql"
BIN = Path(sys.executable).parent
DATA = Path(__file__).resolve().parent / "data"
STREAM = "orders"
FORMAT_VERSION = 3
EMITTED_AT = 1_764_000_000_000
SYNC_ID = 7
GENERATION = 1
EMPTY_META = '{"changes":[],"sync_id":7}'
TEXT = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
UTC_COMMENT = "COMMENT 'airbyte_type=timestamp_with_timezone'"

# (field, JSON schema, MySQL type the destination gives it)
COLUMNS: list[tuple[str, dict[str, Any], str]] = [
    ("id", {"type": "integer"}, "BIGINT"),
    (
        "updated_at",
        {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        f"DATETIME(6) {UTC_COMMENT}",
    ),
    ("customer_id", {"type": ["null", "integer"]}, "BIGINT"),
    ("amount", {"type": ["null", "number"]}, "DECIMAL(65,30)"),
    ("quantity", {"type": ["null", "integer"]}, "BIGINT"),
    ("name", {"type": ["null", "string"]}, TEXT),
    ("email", {"type": ["null", "string"]}, TEXT),
    ("note", {"type": ["null", "string"]}, TEXT),
    ("paid", {"type": ["null", "boolean"]}, "BOOLEAN"),
    ("birth_date", {"type": ["null", "string"], "format": "date"}, "DATE"),
    (
        "local_time",
        {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "DATETIME(6)",
    ),
    ("address", {"type": ["null", "object"], "properties": {}}, "JSON"),
    ("status", {"type": ["null", "string"]}, TEXT),
]
META = [
    ("_airbyte_raw_id", "VARCHAR(36) NOT NULL"),
    ("_airbyte_extracted_at", f"DATETIME(6) NOT NULL {UTC_COMMENT}"),
    ("_airbyte_meta", "JSON NOT NULL"),
    ("_airbyte_generation_id", "BIGINT"),
]
NAMES = ["José Álvarez", "Zoë O'Brien", "李雷", 'Say "hi" Ltd', "emoji 😀 shop", "comma, inc", "back\\slash",
         "line\nbreak", "Ελένη", "Владимир"]  # fmt: skip
STATUSES = ["new", "paid", "shipped", "cancelled"]


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu: float  # CPU seconds of the process (user + system)
    server_cpu: float  # CPU seconds of the database server meanwhile


# ---------------------------------------------------------------------------- data


def row(key: int, version: int) -> dict[str, Any]:
    h = (key * 2654435761 + version * 40503) % 4294967296
    g = (key * 97 + version * 13) % 1000
    seconds = 1_600_000_000 + key * 37 + version * 86400
    micros = (key * 7919) % 1_000_000
    return {
        "id": key,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z",
        "customer_id": None if g % 17 == 0 else h * 1_000_003 + key,
        "amount": None if g % 13 == 0 else float(f"{h % 10_000_000}.{h % 100:02d}"),
        "quantity": None if g % 11 == 0 else (h % 200) - 20,
        "name": None if g % 23 == 0 else f"{NAMES[h % len(NAMES)]} {key}" + (" v2" if version == 2 else ""),
        "email": None if g % 29 == 0 else f"user{key}@example.com",
        "note": None if g % 3 == 0 else f"Note {h}: " + "lorem ipsum dolor sit amet " * (h % 4),
        "paid": None if g % 31 == 0 else bool(h % 2),
        "birth_date": None if g % 7 == 0 else f"{1950 + h % 60}-{1 + h % 12:02d}-{1 + h % 28:02d}",
        "local_time": f"2024-{1 + g % 12:02d}-{1 + h % 28:02d}T{h % 24:02d}:{g % 60:02d}:00.{micros:06d}",
        "address": None
        if g % 5 == 0
        else {"city": NAMES[g % len(NAMES)], "zip": f"{h % 100000:05d}", "n": g},
        "status": STATUSES[h % 4],
    }


def _csv(value: Any, kind: str) -> str:
    if value is None:
        return "\\N"
    if kind == "bool":
        return "1" if value else "0"
    if kind == "ts":
        return str(value).replace("T", " ").rstrip("Z")
    if kind == "json":
        value = orjson.dumps(value).decode()
    text = str(value).replace("\\", "\\\\")
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


KINDS = {"paid": "bool", "updated_at": "ts", "local_time": "ts", "address": "json"}


def _extracted(millis: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}000"


def generate(records: int, second: bool) -> tuple[Path, Path, Path]:
    """The messages, the CSV of the destination's columns (for the checks) and the CSV of the
    data columns alone (the floor)."""
    stem = f"mysql_{'second' if second else 'first'}_{records}_v{FORMAT_VERSION}"
    messages, csv, data_csv = DATA / f"{stem}.jsonl", DATA / f"{stem}.csv", DATA / f"{stem}.data.csv"
    if messages.exists() and csv.exists() and data_csv.exists():
        return messages, csv, data_csv
    DATA.mkdir(exist_ok=True)
    started = time.monotonic()
    base = EMITTED_AT + (86_400_000 if second else 0)
    with (
        messages.open("wb") as out,
        csv.open("w", encoding="utf-8", newline="") as rows,
        data_csv.open("w", encoding="utf-8", newline="") as data_rows,
    ):
        for n in range(records):
            if second:
                key, version = (n * 10, 2) if n < records // 10 else (records + n, 1)
            else:
                key, version = n, 1
            data = row(key, version)
            emitted = base + n
            out.write(
                orjson.dumps(
                    {"type": "RECORD", "record": {"stream": STREAM, "data": data, "emitted_at": emitted}}
                )
            )
            out.write(b"\n")
            fields = ",".join(_csv(data[name], KINDS.get(name, "")) for name, _, _ in COLUMNS)
            meta = '"' + EMPTY_META.replace('"', '""') + '"'
            rows.write(f"{fields},{n:036d},{_extracted(emitted)},{meta},{GENERATION}\n")
            data_rows.write(f"{fields}\n")
            if (n + 1) % 10_000 == 0 or n == records - 1:
                state = {"type": "STREAM", "stream": {"stream_descriptor": {"name": STREAM},
                         "stream_state": {"n": n}}, "sourceStats": {"recordCount": float(10_000 if (n + 1) % 10_000 == 0 else (n + 1) % 10_000)}}  # fmt: skip
                out.write(orjson.dumps({"type": "STATE", "state": state}) + b"\n")
        status = {"stream_descriptor": {"name": STREAM}, "status": "COMPLETE"}
        out.write(orjson.dumps({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0, "stream_status": status}}))  # fmt: skip
        out.write(b"\n")
    print(f"  generated {messages.name} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return messages, csv, data_csv


def catalog(mode: str) -> dict[str, Any]:
    props = {name: schema for name, schema, _ in COLUMNS}
    dedup = mode == "append_dedup"
    return {
        "streams": [
            {
                "stream": {
                    "name": STREAM,
                    "json_schema": {"type": "object", "properties": props},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                    "source_defined_primary_key": [["id"]],
                },
                "sync_mode": "incremental",
                "destination_sync_mode": mode,
                "cursor_field": ["updated_at"] if dedup else [],
                "primary_key": [["id"]] if dedup else [],
                "generation_id": GENERATION,
                "minimum_generation_id": 0,
                "sync_id": SYNC_ID,
            }
        ]
    }


# ---------------------------------------------------------------------------- database


def connect(database: str | None = DATABASE) -> Any:
    return pymysql.connect(
        host=HOST, port=PORT, user=USER, database=database, local_infile=True, autocommit=True
    )


def sql(*statements: str, database: str | None = DATABASE) -> list[tuple[Any, ...]]:
    conn = connect(database)
    try:
        with conn.cursor() as cursor:
            out: list[tuple[Any, ...]] = []
            for statement in statements:
                cursor.execute(statement)
                out = list(cursor.fetchall())
            return out
    finally:
        conn.close()


def create_floor(name: str, data_only: bool = False) -> None:
    columns = [f"`{n}` {t}" for n, _, t in COLUMNS] + ([] if data_only else [f"`{n}` {t}" for n, t in META])
    sql(f"DROP TABLE IF EXISTS `{name}`", f"CREATE TABLE `{name}` ({', '.join(columns)})")


LOAD = (
    "LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
    "OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
)


def _server_pid() -> int | None:
    """The pid of the server on ``PORT`` (from its pid file; else the first server running)."""
    ((pid_file, datadir),) = sql("SELECT @@pid_file, @@datadir", database=None)
    path = Path(datadir) / pid_file  # an absolute pid_file stays as it is
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        found = subprocess.run(
            ["pgrep", "-x", "mariadbd|mysqld"], capture_output=True, text=True
        ).stdout.split()
        return int(found[0]) if found else None


def _cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    argv: list[str], stdin: Path | None = None, stdout: Path | None = None, env: dict[str, str] | None = None
) -> Run:
    server = _server_pid()
    server_before = _cpu_of(server)
    started = time.monotonic()
    with open(stdin or os.devnull, "rb") as inp, open(stdout or os.devnull, "wb") as out:
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed ({status}); output in {stdout}")
    cpu = usage.ru_utime + usage.ru_stime
    run = Run(seconds, usage.ru_maxrss / 1024, cpu, _cpu_of(server) - server_before)
    print(f"  {Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''}: {seconds:.2f} s, {run.peak_mb:.0f} MB, "
          f"CPU {cpu:.1f} s, server CPU {run.server_cpu:.1f} s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)  # fmt: skip
    return run


def floor(csv: Path, table: str, data_only: bool = False) -> Run:
    """``mysql --local-infile`` loading ``csv`` into a new table ``table`` (of the data columns
    alone with ``data_only``: what a user loading the same rows would run)."""
    create_floor(table, data_only)
    statement = LOAD.format(path=csv, table=table)
    run = timed(
        ["mysql", "--local-infile=1", f"-h{HOST}", f"-P{PORT}", f"-u{USER}", DATABASE, "-e", statement]
    )
    (warnings,) = sql(f"SELECT COUNT(*) FROM `{table}`")
    print(f"  floor table {table}: {warnings[0]} rows", file=sys.stderr)
    return run


def checkout_argv(tree: Path, connectors: list[str], target: str, *args: str) -> list[str]:
    """:func:`bench.checkout.argv`, loaded by its path (run as a script, this file has bench/ as
    its directory, where ``destination_mysql`` would be this file)."""
    spec = importlib.util.spec_from_file_location("bench_checkout", Path(__file__).with_name("checkout.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv: list[str] = module.argv(tree, connectors, target, *args)
    return argv


def write(
    mode: str, messages: Path, workdir: Path, before: Path | None = None, parallel_loads: int | None = None
) -> Run:
    """``destination-mysql write`` (``before``: a checkout of the code before a change, whose
    ``dbkit`` and ``destination_mysql`` then replace this tree's: :mod:`bench.checkout`)."""
    config: dict[str, Any] = {
        "host": HOST,
        "port": PORT,
        "database": DATABASE,
        "username": USER,
        "ssl": False,
    }
    if parallel_loads is not None:
        config["parallel_loads"] = parallel_loads
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "catalog.json").write_text(json.dumps(catalog(mode)))
    args = ["write", "--config", str(workdir / "config.json"), "--catalog", str(workdir / "catalog.json")]
    argv = [str(BIN / "destination-mysql"), *args]
    if before is not None:
        argv = checkout_argv(before, ["destination-mysql"], "destination_mysql:run", *args)
    return timed(argv, messages, workdir / f"out-{mode}.jsonl")


CHECK_COLUMNS = [n for n, _, _ in COLUMNS] + [
    "_airbyte_extracted_at",
    "_airbyte_meta",
    "_airbyte_generation_id",
]


def checksum(source: str) -> tuple[int, int, int]:
    cols = ", ".join(f"COALESCE(CAST(`{c}` AS CHAR), '~')" for c in CHECK_COLUMNS)
    ((count, keys, crc),) = sql(
        f"SELECT COUNT(*), COUNT(DISTINCT id), SUM(CRC32(CONCAT_WS('|', {cols}))) FROM {source}"
    )
    return int(count), int(keys), int(crc)


EXPECTED_SECOND = (
    "(SELECT * FROM floor2 UNION ALL SELECT * FROM floor WHERE id NOT IN (SELECT id FROM floor2)) e"
)


_EXPECTED: dict[str, tuple[int, int, int]] = {}


def expect(table: str, source: str) -> None:
    """``table`` equals ``source`` (whose checksum is taken once per run: the expected tables
    are loaded from the same CSV every round)."""
    if source not in _EXPECTED:
        _EXPECTED[source] = checksum(source)
    got, want = checksum(f"`{table}`"), _EXPECTED[source]
    if got != want:
        raise SystemExit(f"{table}: (rows, keys, checksum) {got} != expected {want}")
    print(f"  checked {table}: {got[0]:,} rows, {got[1]:,} keys, checksum equal", file=sys.stderr)


def report(label: str, runs: list[Run], floors: list[Run], records: int, megabytes: float) -> None:
    """One line: medians over the rounds; the ratio is taken within each round (its median and
    every round's)."""
    seconds = statistics.median(r.seconds for r in runs)
    rate = records / seconds
    ratios = [f.seconds / r.seconds for r, f in zip(runs, floors, strict=True)]
    each = " / ".join(f"{x:.2f}" for x in ratios)
    print(
        f"| {label} | {seconds:.2f} | {rate:,.0f} | {megabytes / seconds:.1f} | "
        f"**{statistics.median(ratios):.2f}** ({each}) | {max(r.peak_mb for r in runs):.0f} | "
        f"{statistics.median(r.cpu for r in runs):.1f} | {statistics.median(r.server_cpu for r in runs):.1f} |",
        flush=True,
    )


# ---------------------------------------------------------------------------- INSERT vs LOAD DATA


def insert_compare(rows: int) -> None:
    """The connector's LOAD DATA path vs multi-row INSERTs, in this process, same rows."""
    import pyarrow as pa

    here = Path(__file__).resolve().parent  # this script's name shadows the package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from destination_mysql.connection import StreamingConnection, load_stream
    from destination_mysql.loading import to_csv

    conn = StreamingConnection(
        host=HOST, port=PORT, user=USER, database=DATABASE, local_infile=True, charset="utf8mb4"
    )
    names = [n for n, _, _ in COLUMNS] + [n for n, _ in META]
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM floor LIMIT {rows}")
        values = list(cursor.fetchall())
    table = pa.Table.from_pylist([dict(zip(names, v, strict=True)) for v in values])
    for name in ("cmp_insert", "cmp_load"):
        create_floor(name)
    quoted = ", ".join(f"`{n}`" for n in names)
    started = time.monotonic()
    with conn.cursor() as cursor:
        for start in range(0, len(values), 10_000):
            cursor.executemany(
                f"INSERT INTO cmp_insert ({quoted}) VALUES ({', '.join(['%s'] * len(names))})",
                values[start : start + 10_000],
            )
    conn.commit()
    insert_seconds = time.monotonic() - started
    started = time.monotonic()
    with conn.cursor() as cursor:
        chunks = (to_csv(table.slice(s, 10_000)) for s in range(0, table.num_rows, 10_000))
        load_stream(cursor, f"LOAD DATA LOCAL INFILE {{file}} INTO TABLE cmp_load CHARACTER SET utf8mb4 "
                    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
                    f"LINES TERMINATED BY '\\n' ({quoted})", chunks)  # fmt: skip
    conn.commit()
    load_seconds = time.monotonic() - started
    conn.close()
    for name in ("cmp_insert", "cmp_load"):
        (count,) = sql(f"SELECT COUNT(*) FROM {name}")
        assert count[0] == len(values), (name, count)
    print(f"\n{len(values):,} rows in this process: executemany multi-row INSERT {len(values) / insert_seconds:,.0f} "
          f"rows/s ({insert_seconds:.2f} s); Arrow CSV -> LOAD DATA LOCAL stream {len(values) / load_seconds:,.0f} "
          f"rows/s ({load_seconds:.2f} s): x{insert_seconds / load_seconds:.1f}")  # fmt: skip


def main() -> None:
    global PORT  # one setting for every connection of the run
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1, help="rounds (each runs every line once)")
    parser.add_argument("--insert-compare", action="store_true")
    parser.add_argument("--skip-dedup", action="store_true")
    parser.add_argument("--skip-append", action="store_true")
    parser.add_argument(
        "--port",
        type=int,
        default=PORT,
        help="the server's port on 127.0.0.1 (default 3306, the shared service; e.g. a throwaway "
        "server with a larger buffer pool)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of the code before a change (git worktree): each connector line also runs "
        "with its dbkit and destination_mysql, in the same round",
    )
    parser.add_argument(
        "--parallel-loads",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        help="also run the append line with the destination's parallel_loads set to each of these "
        "(comma-separated), in the same round",
    )
    args = parser.parse_args()
    PORT = args.port
    records = args.records
    first, first_csv, first_data = generate(records, second=False)
    second, second_csv, _ = (None, None, None) if args.skip_dedup else generate(records, second=True)
    sql(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`", database=None)
    workdir = DATA / "mysql_runs"
    workdir.mkdir(exist_ok=True)
    megabytes = first_data.stat().st_size / 1e6
    print(f"{records:,} records; CSV of the data columns {megabytes:.0f} MB (all columns "
          f"{first_csv.stat().st_size / 1e6:.0f} MB); messages {first.stat().st_size / 1e6:.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)  # fmt: skip
    lines: dict[str, list[Run]] = {}
    for n in range(args.runs):
        print(f"round {n + 1}: load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        lines.setdefault("floor", []).append(floor(first_data, "floor_data", data_only=True))
        lines.setdefault("floor_all", []).append(floor(first_csv, "floor"))  # also the expected table
        for tag, tree in [("", None)] + ([(" (before)", args.before)] if args.before else []):
            if not args.skip_append:
                sql(f"DROP TABLE IF EXISTS `{STREAM}`")
                lines.setdefault("append" + tag, []).append(write("append", first, workdir, tree))
                expect(STREAM, "floor")
                for n in [] if tree else args.parallel_loads:
                    sql(f"DROP TABLE IF EXISTS `{STREAM}`")
                    run = write("append", first, workdir, parallel_loads=n)
                    lines.setdefault(f"append (parallel_loads={n})", []).append(run)
                    expect(STREAM, "floor")
            if second is not None and second_csv is not None:
                sql(f"DROP TABLE IF EXISTS `{STREAM}`")
                lines.setdefault("dedup" + tag, []).append(write("append_dedup", first, workdir, tree))
                expect(STREAM, "floor")
                if "floor2" not in lines:
                    lines["floor2"] = [floor(second_csv, "floor2")]
                    sql("ALTER TABLE floor2 ADD UNIQUE KEY (id)")  # for EXPECTED_SECOND's NOT IN
                lines.setdefault("dedup2" + tag, []).append(write("append_dedup", second, workdir, tree))
                expect(STREAM, EXPECTED_SECOND)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(
        f"\nmedians of {args.runs} round(s); MB/s of the data columns' CSV; ratio = floor seconds / seconds"
    )
    print("| run | seconds | rows/s | MB/s | x floor (rounds) | peak RSS MB | CPU s | server CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    floors = lines["floor"]
    labels = {
        "floor": "floor: `mysql` LOAD DATA LOCAL INFILE, data columns",
        "floor_all": "the same, with the four `_airbyte_*` columns",
        "append": "destination-mysql append",
        "dedup": "append_dedup, empty table",
        "dedup2": "append_dedup, second file (10% updates)",
    }
    for key, label in labels.items():
        for tag in ("", " (before)"):
            if key + tag in lines:
                report(label + tag, lines[key + tag], floors, records, megabytes)
        if key == "append":
            for n in args.parallel_loads:
                report(
                    f"{label}, parallel_loads={n}",
                    lines[f"append (parallel_loads={n})"],
                    floors,
                    records,
                    megabytes,
                )
    if args.insert_compare:
        insert_compare(min(200_000, records))


if __name__ == "__main__":
    main()
