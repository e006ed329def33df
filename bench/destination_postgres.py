"""Benchmark: ``destination-postgres write`` against PostgreSQL's own bulk load, in the same run.

    .venv/bin/python bench/destination_postgres.py [--records 1000000] [--runs 3] [--memory-check]

Generates (once, cached under ``bench/data/``) ``--records`` RECORD messages of one stream
``orders`` with a mixed schema (integers, exact decimals up to 38 digits, strings with quotes,
backslashes, newlines and non-ASCII text, booleans, dates, timestamps with and without a time
zone, nested objects, arrays, NULLs here and there), a STATE every ``--state-every`` records and a
final STREAM_STATUS COMPLETE, plus the configured catalogs, and renders the very same rows as
CSV. Then, in the database ``dbkit_bench_dest`` of the local service, it times as whole processes
(``--runs`` times each, medians; a CHECKPOINT before each):

(a) the floor: ``psql -c "COPY floor FROM STDIN (FORMAT csv)" < rows.csv``: the pre-rendered CSV
    of the same rows, piped through psql into a table with the columns and types the destination
    creates (data columns then ``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``,
    ``_airbyte_generation_id``, every value sent); and, for reference, the same with the data
    columns only;
(b) ``destination-postgres write`` in append mode, stdin from the messages file, stdout to a file;
(c) ``destination-postgres write`` in append_dedup mode (primary key ``id``, cursor
    ``updated_at``) into an empty table;
(d) a second append_dedup run into the table (c) left, with a second file of the same size:
    10% updates (keys ``id % 10 == 0`` of the first file, cursor one day later, other values
    changed), 10% unchanged re-sends (keys ``id % 10 == 5``, the same record again, later
    ``emitted_at``) and 80% new keys.

It prints seconds, rows/s, the ratio to the floor's rows/s and the peak RSS of the connector
process (``wait4``). Each result is then checked against the expected table, loaded from the CSV
(untimed): the row count, one row per key, and a checksum of every column but the random
``_airbyte_raw_id`` (data, ``_airbyte_extracted_at``, ``_airbyte_meta``,
``_airbyte_generation_id``), so a fast but wrong load fails the run. ``--memory-check`` also
writes a 3x input (the same records three times) in append mode and prints both peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg import sql

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "dbkit_bench_dest"
BIN = Path(sys.executable).parent
DESTINATION = str(BIN / "destination-postgres")
DATA = Path(__file__).resolve().parent / "data"
STREAM = "orders"
FORMAT_VERSION = 4  # bump when the generated data changes
EMITTED_AT = 1_764_000_000_000  # milliseconds; the second file's records are a day later
SYNC_ID = 7
GENERATION = 1

# (field, JSON schema, PostgreSQL type the destination gives it)
COLUMNS: list[tuple[str, dict[str, Any], str]] = [
    ("id", {"type": "integer"}, "bigint"),
    (
        "updated_at",
        {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        "timestamptz",
    ),
    ("customer_id", {"type": ["null", "integer"]}, "bigint"),
    ("amount", {"type": ["null", "number"]}, "numeric"),
    ("quantity", {"type": ["null", "integer"]}, "bigint"),
    ("unit_price", {"type": ["null", "number"]}, "numeric"),
    ("name", {"type": ["null", "string"]}, "text"),
    ("email", {"type": ["null", "string"]}, "text"),
    ("note", {"type": ["null", "string"]}, "text"),
    ("paid", {"type": ["null", "boolean"]}, "boolean"),
    ("birth_date", {"type": ["null", "string"], "format": "date"}, "date"),
    (
        "created_at",
        {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        "timestamptz",
    ),
    (
        "local_time",
        {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "timestamp",
    ),
    ("address", {"type": ["null", "object"], "properties": {}}, "jsonb"),
    ("tags", {"type": ["null", "array"], "items": {}}, "jsonb"),
    ("status", {"type": ["null", "string"]}, "text"),
]
META_DDL = [
    ("_airbyte_raw_id", "varchar"),
    ("_airbyte_extracted_at", "timestamptz"),
    ("_airbyte_meta", "jsonb"),
    ("_airbyte_generation_id", "bigint"),
]
CHECKED = [name for name, _, _ in COLUMNS] + [
    "_airbyte_extracted_at",
    "_airbyte_meta",
    "_airbyte_generation_id",
]

NAMES = [
    "José Álvarez",
    "Zoë O'Brien",
    "李雷",
    "Ørsted & Søn",
    'Say "hi" Ltd',
    "emoji 😀 shop",
    "comma, inc",
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "Ελένη",
    "Владимир",
    "محمد",
    "plain name",
    "x",
    "",
]
CITIES = ["Paris", "São Paulo", "Zürich", "東京", "New York", "Kraków", "Reykjavík", "Cape Town"]
STATUSES = ["new", "paid", "shipped", "cancelled", "refunded"]
TAGS = ["red", "blue", "vip", "promo", "b2b", "ünïcode", 'q"uote']
BIG = [
    "12345678901234567890.123456789012345678",
    "-0.000000000000000001",
    "99999999999999999999999999999999999999",
]
EXPONENTS = ["1.5e-7", "2E+3", "-3.25e2"]


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu: float = 0.0  # user + system seconds of the process
    load: float = 0.0  # 1-minute load average when it ended


_ENCODE = msgspec.json.Encoder().encode

# ---------------------------------------------------------------------------- data


def _ts(seconds: int, micros: int, offset_minutes: int) -> str:
    """An RFC 3339 timestamp of ``seconds`` since 2000-01-01 local time, with an offset."""
    base = 946_684_800 + seconds
    t = time.gmtime(base)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    if micros:
        text += f".{micros:06d}"
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    m = abs(offset_minutes)
    return f"{text}{sign}{m // 60:02d}:{m % 60:02d}"


def row(key: int, version: int) -> dict[str, Any]:
    """The data of record ``key`` (version 1, or 2 for an update): deterministic, mixed."""
    h = (key * 2654435761 + version * 40503) % 4294967296
    g = (key * 97 + version * 13) % 1000
    data: dict[str, Any] = {
        "id": key,
        "updated_at": _ts(
            700_000_000 + key * 37 + version * 86400, (key * 7919) % 1_000_000, [0, 120, -300, 330][key % 4]
        ),
        "customer_id": None if g % 17 == 0 else h * 1_000_003 + key,
        "amount": None if g % 13 == 0 else _number(key, h, version),
        "quantity": None if g % 11 == 0 else (h % 200) - 20,
        "unit_price": None if g % 9 == 0 else _RawNumber(f"{h % 100000}.{h % 10000:04d}"),
        "name": None if g % 23 == 0 else f"{NAMES[h % len(NAMES)]} {key}" + (" v2" if version == 2 else ""),
        "email": None if g % 29 == 0 else f"user{key}@example.{['com', 'org', 'fr'][h % 3]}",
        "note": None
        if g % 3 == 0
        else (f"Note {h}: " + NAMES[(h >> 4) % len(NAMES)] + ", " + "lorem ipsum dolor sit amet " * (h % 4)),
        "paid": None if g % 7 == 0 else (h % 2 == 0) != (version == 2),
        "birth_date": None
        if g % 5 == 0
        else time.strftime("%Y-%m-%d", time.gmtime(-631_152_000 + (h % 25_000) * 86400)),
        "created_at": None
        if g % 19 == 0
        else _ts(600_000_000 + key * 31, 0 if h % 3 == 0 else (h % 1_000) * 1000, [0, 60, -480][h % 3]),
        "local_time": None if g % 21 == 0 else _ts(650_000_000 + key * 29, h % 1_000_000, 0)[:-1],
        "address": None
        if g % 8 == 0
        else {
            "street": f"{h % 300} Rue de l'Église",
            "city": CITIES[h % len(CITIES)],
            "zip": f"{h % 100000:05d}",
            "geo": {
                "lat": _decimal_literal(h % 180_000_000 - 90_000_000, 6),
                "lon": _decimal_literal(h % 360_000_000 - 180_000_000, 6),
            },
            "floors": [h % 5, h % 7],
            "primary": h % 2 == 0,
            "extra": None,
        },
        "tags": None if g % 6 == 0 else [TAGS[(h >> k) % len(TAGS)] for k in range(h % 4)],
        "status": STATUSES[(h + version) % len(STATUSES)],
    }
    return data


def _RawNumber(text: str) -> msgspec.Raw:  # noqa: N802
    """A JSON number written as its exact text."""
    return msgspec.Raw(text.encode())


def _decimal_literal(units: int, scale: int) -> msgspec.Raw:
    sign = "-" if units < 0 else ""
    units = abs(units)
    return _RawNumber(f"{sign}{units // 10**scale}.{units % 10**scale:0{scale}d}")


def _number(key: int, h: int, version: int) -> msgspec.Raw:
    if key % 997 == 0:
        return _RawNumber(BIG[h % len(BIG)])
    if key % 4999 == 0:
        return _RawNumber(EXPONENTS[h % len(EXPONENTS)])
    cents = (h % 10_000_000) * (-1 if h % 10 == 0 else 1) + version
    return _decimal_literal(cents, 2)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(value: Any) -> str:
    """JSON text (numbers as their exact text)."""
    return _ENCODE(value).decode()


def _csv_field(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "jsonb":
        text = _encode(value)
    elif isinstance(value, bool):
        return "t" if value else "f"
    elif isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    else:
        text = str(value)
    if text == "" or any(c in text for c in ',"\n\r\\') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _extracted_text(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}+00"


EMPTY_META = _encode({"changes": [], "sync_id": SYNC_ID})


def _record_line(data: dict[str, Any], emitted_at: int) -> str:
    return (
        '{"type":"RECORD","record":{"stream":"'
        + STREAM
        + '","data":'
        + _encode(data)
        + ',"emitted_at":'
        + str(emitted_at)
        + "}}\n"
    )


def _state_line(position: int, file_no: int) -> str:
    state = {"stream_descriptor": {"name": STREAM}, "stream_state": {"file": file_no, "position": position}}
    return _dumps({"type": "STATE", "state": {"type": "STREAM", "stream": state}}) + "\n"


def _complete_line() -> str:
    status = {"stream_descriptor": {"name": STREAM}, "status": "COMPLETE"}
    return (
        _dumps(
            {
                "type": "TRACE",
                "trace": {"type": "STREAM_STATUS", "emitted_at": EMITTED_AT, "stream_status": status},
            }
        )
        + "\n"
    )


def _plan_second(records: int) -> Iterator[tuple[int, int]]:
    """(key, version) of the second file: 10% updates, 10% unchanged re-sends, 80% new keys."""
    new_key = records
    for i in range(1, records + 1):
        if i % 10 == 0:
            yield i, 2
        elif i % 10 == 5:
            yield i, 1
        else:
            new_key += 1
            yield new_key, 1


@dataclass
class Files:
    messages: Path
    full_csv: Path
    data_csv: Path
    states: int


def generate(
    path_stem: str, plan: Iterator[tuple[int, int]], file_no: int, state_every: int, emitted_base: int
) -> Files:
    messages = DATA / f"{path_stem}.jsonl"
    full_csv = DATA / f"{path_stem}.csv"
    data_csv = DATA / f"{path_stem}.data.csv"
    done = DATA / f"{path_stem}.done"
    states_file = DATA / f"{path_stem}.states"
    if done.exists():
        return Files(messages, full_csv, data_csv, int(states_file.read_text()))
    print(f"generating {messages.name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    DATA.mkdir(parents=True, exist_ok=True)
    states = 0
    kinds = [kind for _, _, kind in COLUMNS]
    names = [name for name, _, _ in COLUMNS]
    with (
        messages.open("w", encoding="utf-8", newline="\n") as out,
        full_csv.open("w", encoding="utf-8", newline="") as full,
        data_csv.open("w", encoding="utf-8", newline="") as only_data,
    ):
        for n, (key, version) in enumerate(plan, start=1):
            data = row(key, version)
            emitted = emitted_base + n
            out.write(_record_line(data, emitted))
            fields = ",".join(_csv_field(data[name], kind) for name, kind in zip(names, kinds, strict=True))
            only_data.write(fields + "\n")
            raw_id = str(uuid.UUID(int=(key << 64) | (version << 32) | file_no, version=4))
            full.write(
                f'{fields},{raw_id},{_extracted_text(emitted)},"{EMPTY_META.replace(chr(34), chr(34) * 2)}",{GENERATION}\n'
            )
            if n % state_every == 0:
                out.write(_state_line(n, file_no))
                states += 1
        out.write(_state_line(-1, file_no))
        out.write(_complete_line())
        states += 1
    states_file.write_text(str(states))
    done.write_text("ok")
    print(f"  generated in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return Files(messages, full_csv, data_csv, states)


def tripled(files: Files, path_stem: str) -> Files:
    """The records and states of ``files`` three times, then COMPLETE (an append-only input)."""
    target = DATA / f"{path_stem}.jsonl"
    if not target.exists():  # streamed: this process stays small (a child's peak RSS counts its fork)
        with target.open("wb") as out:
            for _ in range(3):
                with files.messages.open("rb") as source:
                    out.writelines(line for line in source if not line.startswith(b'{"type":"TRACE"'))
            out.write(_complete_line().encode())
    return Files(target, files.full_csv, files.data_csv, files.states * 3)


def catalog(mode: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {name: s for name, s, _ in COLUMNS}}
    stream: dict[str, Any] = {
        "stream": {
            "name": STREAM,
            "json_schema": schema,
            "supported_sync_modes": ["full_refresh", "incremental"],
        },
        "sync_mode": "incremental",
        "destination_sync_mode": mode,
        "generation_id": GENERATION,
        "minimum_generation_id": 0,
        "sync_id": SYNC_ID,
    }
    if mode == "append_dedup":
        stream["primary_key"] = [["id"]]
        stream["cursor_field"] = ["updated_at"]
    return {"streams": [stream]}


# ---------------------------------------------------------------------------- database


def admin() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True)


def bench_db() -> psycopg.Connection[tuple[Any, ...]]:
    with admin() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    conn = psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DATABASE, autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def reset_schema(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def create_table(conn: psycopg.Connection[tuple[Any, ...]], schema: str, name: str, with_meta: bool) -> None:
    columns = [(n, kind) for n, _, kind in COLUMNS] + (META_DDL if with_meta else [])
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(schema, name),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(kind)) for n, kind in columns
            ),
        )
    )


def checksum(conn: psycopg.Connection[tuple[Any, ...]], source: sql.Composable) -> tuple[int, int, str]:
    """Rows, distinct ids and a checksum of every checked column's text, over ``source``."""
    columns = sql.SQL(", ").join(sql.Identifier("s", c) for c in CHECKED)
    found = conn.execute(
        sql.SQL(
            "SELECT count(*), count(DISTINCT id), "
            "coalesce(sum(('x' || left(md5(ROW({})::text), 15))::bit(60)::bigint::numeric), 0)::text FROM {} AS s"
        ).format(columns, source)
    ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1]), str(found[2])


def psql(command: str) -> list[str]:
    return [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        HOST,
        "-p",
        str(PORT),
        "-U",
        USER,
        "-d",
        DATABASE,
        "-c",
        command,
    ]


def timed(argv: list[str], stdin: Path, stdout: Path | None = None) -> Run:
    """Run a whole process; its wall time and its own peak RSS (wait4's rusage)."""
    with stdin.open("rb") as source, stdout.open("wb") if stdout else open(os.devnull, "wb") as sink:
        errors = (stdout.with_suffix(".stderr") if stdout else Path(os.devnull)).open("wb")
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=source, stdout=sink, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        errors.close()
    if os.waitstatus_to_exitcode(status) != 0:
        detail = stdout.with_suffix(".stderr").read_text()[-2000:] if stdout else ""
        if stdout:
            detail += stdout.read_text()[-3000:]
        raise SystemExit(f"{argv[0]} failed with status {status}: {detail}")
    return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, os.getloadavg()[0])


PARALLEL_LOADS: int | None = None


def checkpoint() -> None:
    with bench_db() as conn:
        conn.execute("CHECKPOINT")


def destination(workdir: Path, schema: str, mode: str) -> list[str]:
    config = {
        "host": HOST,
        "port": PORT,
        "database": DATABASE,
        "username": USER,
        "schema": schema,
        "ssl_mode": {"mode": "disable"},
    }
    if PARALLEL_LOADS is not None:
        config["parallel_loads"] = PARALLEL_LOADS
    (workdir / f"{schema}-config.json").write_text(json.dumps(config))
    (workdir / f"{mode}-catalog.json").write_text(json.dumps(catalog(mode)))
    return [
        DESTINATION,
        "write",
        "--config",
        str(workdir / f"{schema}-config.json"),
        "--catalog",
        str(workdir / f"{mode}-catalog.json"),
    ]


def write(workdir: Path, schema: str, mode: str, files: Files, fresh: bool) -> Run:
    if fresh:
        with bench_db() as conn:
            reset_schema(conn, schema)
    checkpoint()
    out = workdir / f"{schema}-{mode}.out"
    run = timed(destination(workdir, schema, mode), files.messages, out)
    echoed = sum(1 for line in out.open("rb") if line.startswith(b'{"type":"STATE"'))
    if echoed != files.states:
        raise SystemExit(f"{schema}: {echoed} STATE messages echoed, {files.states} expected")
    return run


def floor(files: Files, schema: str, with_meta: bool) -> Run:
    with bench_db() as conn:
        reset_schema(conn, schema)
        create_table(conn, schema, "floor", with_meta)
    checkpoint()
    source = files.full_csv if with_meta else files.data_csv
    return timed(psql(f"COPY {schema}.floor FROM STDIN (FORMAT csv)"), source)


def expect(
    conn: psycopg.Connection[tuple[Any, ...]],
    label: str,
    got: tuple[int, int, str],
    want: tuple[int, int, str],
) -> None:
    rows, keys, _ = got
    ok = got == want and rows == keys
    print(
        f"# check {label}: rows={rows} distinct ids={keys} checksum {'matches' if got == want else 'DIFFERS'}"
        f" (expected rows={want[0]})",
        flush=True,
    )
    if not ok:
        raise SystemExit(f"{label}: the loaded table is not the expected one: {got} != {want}")


def load() -> float:
    return os.getloadavg()[0]


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        max(r.peak_mb for r in runs),
        statistics.median(r.cpu for r in runs),
        statistics.median(r.load for r in runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--state-every", type=int, default=10_000)
    parser.add_argument("--memory-check", action="store_true", help="also write a 3x input in append mode")
    parser.add_argument("--workdir", type=Path, default=DATA / "work")
    parser.add_argument(
        "--only",
        choices=("append", "dedup"),
        help="time only the floor and this mode (dedup: both append_dedup runs)",
    )
    parser.add_argument(
        "--parallel-loads", type=int, help="the destination's parallel_loads (default: its own)"
    )
    args = parser.parse_args()
    global PARALLEL_LOADS
    PARALLEL_LOADS = args.parallel_loads
    n = args.records

    first = generate(
        f"orders-{n}-v{FORMAT_VERSION}-a", ((k, 1) for k in range(1, n + 1)), 1, args.state_every, EMITTED_AT
    )
    second = generate(
        f"orders-{n}-v{FORMAT_VERSION}-b", _plan_second(n), 2, args.state_every, EMITTED_AT + 86_400_000
    )
    workdir = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    with bench_db() as conn:
        version = conn.execute("SHOW server_version").fetchone()
        # the expected tables, untimed: first file, and what the second leaves after the first
        reset_schema(conn, "bench_expected")
        for name, csv in (("first", first.full_csv), ("delta", second.full_csv)):
            create_table(conn, "bench_expected", name, True)
            with (
                conn.cursor().copy(
                    sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier("bench_expected", name))
                ) as copy,
                csv.open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
        conn.execute("CREATE UNIQUE INDEX ON bench_expected.delta (id)")
        want_first = checksum(conn, sql.SQL("bench_expected.first"))
        want_second = checksum(
            conn,
            sql.SQL(
                "(SELECT f.* FROM bench_expected.first AS f WHERE NOT EXISTS "
                "(SELECT 1 FROM bench_expected.delta AS d WHERE d.id = f.id) "
                "UNION ALL SELECT * FROM bench_expected.delta)"
            ),
        )
    size_mb = first.messages.stat().st_size / 1e6
    print(
        f"# destination-postgres benchmark: {n} records x {len(COLUMNS)} fields ({size_mb:.0f} MB of messages), "
        f"a STATE every {args.state_every}, {args.runs} run(s) each (median seconds, max peak RSS)"
    )
    print(f"# nproc={os.cpu_count()} PostgreSQL {version[0] if version else '?'} load before={load():.2f}")
    print(
        "| run | seconds | rows/s | ratio to floor (median of each round's ratio) | peak RSS | CPU s of the process "
        "| each round: seconds (ratio, 1-min load) |"
    )
    print("|---|---|---|---|---|---|---|")

    keys = ("floor", "floor_data", "append", "dedup1", "dedup2")
    results: dict[str, list[Run]] = {k: [] for k in keys}
    for _ in range(args.runs):  # one round: every run once; ratios are taken within a round
        results["floor"].append(floor(first, "bench_floor", with_meta=True))
        results["floor_data"].append(floor(first, "bench_floor", with_meta=False))
        if args.only != "dedup":
            results["append"].append(write(workdir, "bench_append", "append", first, fresh=True))
        if args.only != "append":
            results["dedup1"].append(write(workdir, "bench_dedup", "append_dedup", first, fresh=True))
            results["dedup2"].append(write(workdir, "bench_dedup", "append_dedup", second, fresh=False))
    labels = {
        "floor": "(a) floor: psql COPY FROM STDIN (FORMAT csv), all columns",
        "floor_data": "(a') psql COPY FROM STDIN (FORMAT csv), data columns only",
        "append": "(b) destination-postgres write, append",
        "dedup1": "(c) append_dedup into an empty table",
        "dedup2": "(d) append_dedup, second file (10% updates, 10% same, 80% new)",
    }
    floors = results["floor"]
    for key, label in labels.items():
        runs = results[key]
        if not runs:
            continue
        m = median(runs)
        ratios = [f.seconds / r.seconds for f, r in zip(floors, runs, strict=True)]
        each = " / ".join(
            f"{r.seconds:.2f} ({q:.2f}, {r.load:.1f})" for r, q in zip(runs, ratios, strict=True)
        )
        print(
            f"| {label} | {m.seconds:.2f} | {n / m.seconds / 1000:.0f}k | {statistics.median(ratios):.2f} "
            f"| {m.peak_mb:.0f} MB | {m.cpu:.1f} | {each} |",
            flush=True,
        )

    with bench_db() as conn:
        schemas = []
        if results["append"]:
            expect(conn, "append", checksum(conn, sql.SQL("bench_append.orders")), want_first)
            schemas.append("bench_append")
        if results["dedup2"]:
            expect(
                conn,
                "append_dedup after both runs",
                checksum(conn, sql.SQL("bench_dedup.orders")),
                want_second,
            )
            schemas.append("bench_dedup")
        tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND s.nspname = ANY(%s)",
            [schemas],
        ).fetchone()
        print(
            f"# tables left in the destination schemas: {tables[0] if tables else '?'} (expected {len(schemas)})"
        )

    if args.memory_check:
        big = tripled(first, f"orders-{n}-v{FORMAT_VERSION}-a-x3")
        for label, files in (("1x", first), ("3x", big)):
            run = write(workdir, "bench_memory", "append", files, fresh=True)
            print(
                f"# memory: append of {label} input ({files.messages.stat().st_size / 1e6:.0f} MB): "
                f"{run.seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB",
                flush=True,
            )
        with bench_db() as conn:
            found = conn.execute("SELECT count(*) FROM bench_memory.orders").fetchone()
            print(f"# memory: rows after the 3x run: {found[0] if found else '?'} (expected {3 * n})")
    print(f"# load after={load():.2f}")


if __name__ == "__main__":
    main()
