"""Decoded changes/s of source-postgres's CDC wire layer against the pg_recvlogical floor.

Starts a throwaway PostgreSQL (wal_level=logical) from the local binaries, creates one slot per
path, makes N single-row changes (in transactions of --per-txn rows; ``--workload insert``: N
inserts; ``mixed``: each row inserted, updated, then deleted, a third of the changes each), then
reads them with every path, each from its own slot:

- ``pg_recvlogical`` (pgoutput, same options) writing to /dev/null: the floor;
- START_REPLICATION streaming (``source_postgres.cdc``), the wire only: ``ReplicationStream.read``
  (``wire``) or ``read_many`` (``wire_many``) until the end position, payloads dropped;
- the same, decoded and assembled into JSON-ready rows: ``read`` + ``PgOutputDecoder.decode`` +
  ``ChangeAssembler.feed`` (``decode_feed``), or ``read_many`` + ``ChangeAssembler.feed_payload``
  (``payload``, the read path's way);
- ``payload`` with each row change also rendered as an Airbyte RECORD line (orjson, with the CDC
  meta columns ``_ab_cdc_lsn``, ``_ab_cdc_updated_at``, ``_ab_cdc_deleted_at``, rendered once per
  transaction and kind) as the CDC read will emit it (``records``; ``records_decode_feed``: the same
  lines after ``read`` + ``decode`` + ``feed``);
- ``sqlfn`` (slow, not in the default ``--paths``): the SQL functions
  ``pg_logical_slot_peek_binary_changes`` + ``pg_replication_slot_advance`` in batches, decoded
  and assembled the same way.

Every path must see exactly the N row changes. Prints changes/s, the ratio to the floor, the CPU
seconds of this process (or of pg_recvlogical) per path, the load average, and the process's peak
RSS. Needs no data in the repo: ``.venv/bin/python -m bench.cdc_decode --changes 200000`` (from the
repository root: run as a file, bench/source_postgres.py would shadow the package).
"""

from __future__ import annotations

import argparse
import os
import resource
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa

from dbkit.db import format_timestamp
from dbkit.protocol import StreamDescriptor, record_envelope
from dbkit.testing.servers import ServerRequirements, find_server
from dbkit.testing.servers.postgres import find_postgres_bindir
from source_postgres.catalog import type_rows
from source_postgres.cdc import (
    ChangeAssembler,
    PgOutputDecoder,
    ReplicationConnection,
    RowChange,
    TransactionCommitted,
    format_lsn,
    parse_lsn,
)

OPTIONS = {"proto_version": "1", "publication_names": "pub"}
PATHS = {
    "floor": "pg_recvlogical pgoutput -> /dev/null (floor)",
    "wire": "START_REPLICATION, read() only",
    "wire_many": "START_REPLICATION, read_many() only",
    "decode_feed": "read + decode + feed",
    "payload": "read_many + feed_payload",
    "records": "  + RECORD lines (orjson, CDC meta)",
    "records_decode_feed": "read + decode + feed + RECORD lines",
    "sqlfn": "peek_binary_changes + advance + decode + feed",
}
_COMMIT_END = struct.Struct(">Q")  # a Commit message's end LSN, at offset 10
_PG_EPOCH_US = 946_684_800_000_000
Timed = tuple[float, float, int]  # wall seconds, CPU seconds, row changes seen


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def floor(bindir: str, params: dict[str, Any], end: int) -> Timed:
    argv = [
        os.path.join(bindir, "pg_recvlogical"),
        "-h",
        str(params["host"]),
        "-p",
        str(params["port"]),
        "-U",
        str(params["user"]),
        "-d",
        str(params["dbname"]),
        "-S",
        "floor",
        "--start",
        "-E",
        format_lsn(end),
        "-f",
        "/dev/null",
        "--no-loop",
    ]
    for name, value in OPTIONS.items():
        argv += ["-o", f"{name}={value}"]
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, -1


def wire_only(params: dict[str, Any], slot: str, start_lsn: int, end: int, *, many: bool) -> Timed:
    """START_REPLICATION read to the end position (``read`` or ``read_many``); the payloads are
    only counted."""
    rows = 0
    cpu = cpu_seconds()
    started = time.perf_counter()
    with ReplicationConnection.connect(params) as repl:
        stream = repl.start(slot, start_lsn, publications=["pub"])
        read = stream.read
        done = False
        while not done:
            got = stream.read_many(10) if many else [read(10)]
            if not got or got[0] is None:
                raise RuntimeError("stream went quiet before the end position")
            for data in got:
                assert data is not None
                kind = data.payload[0]
                if kind in b"IUD":
                    rows += 1
                elif kind == 0x43 and _COMMIT_END.unpack_from(data.payload, 10)[0] >= end:
                    done = True
        stream.stop()
    return time.perf_counter() - started, cpu_seconds() - cpu, rows


def _iso(commit_time: int) -> str:
    return format_timestamp(commit_time, with_zone=True)


def streaming(
    params: dict[str, Any], url: str, slot: str, start_lsn: int, end: int, *, payload: bool, records: bool
) -> Timed:
    """Decode + assemble every message: ``read`` + ``decode`` + ``feed``, or with ``payload``
    ``read_many`` + ``feed_payload``; with ``records`` also make each row change's RECORD line
    (the lines are dropped)."""
    engine = sa.create_engine(url)
    rows = 0
    envelopes: dict[int, tuple[bytes, bytes]] = {}
    meta_key: tuple[int, bool] = (-1, False)
    meta = b""
    now = time.time_ns() // 1_000_000
    dumps = orjson.dumps
    cpu = cpu_seconds()
    started = time.perf_counter()
    with engine.connect() as conn, ReplicationConnection.connect(params) as repl:
        assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
        decoder = PgOutputDecoder(1)
        stream = repl.start(slot, start_lsn, publications=["pub"])
        read, decode, feed = stream.read, decoder.decode, assembler.feed
        done = False
        while not done:
            if payload:
                got = stream.read_many(10)
                if not got:
                    raise RuntimeError("stream went quiet before the end position")
                feed_payload = assembler.feed_payload
                events = [feed_payload(decoder, x.payload, x.data_start) for x in got]
            else:
                data = read(10)
                if data is None:
                    raise RuntimeError("stream went quiet before the end position")
                events = [feed(decode(data.payload, data.data_start), data.data_start)]
            for event in events:
                if type(event) is RowChange:
                    rows += 1
                    if records:
                        table = event.table
                        envelope = envelopes.get(table.oid)
                        if envelope is None:
                            descriptor = StreamDescriptor(name=table.name, namespace=table.namespace)
                            envelope = envelopes[table.oid] = record_envelope(descriptor, now)
                        deleted = event.op == "delete"
                        if meta_key != (event.commit_lsn, deleted):  # the same for a whole transaction
                            meta_key = (event.commit_lsn, deleted)
                            at = _iso(event.commit_time)
                            meta = dumps(
                                {
                                    "_ab_cdc_lsn": event.commit_lsn,
                                    "_ab_cdc_updated_at": at,
                                    "_ab_cdc_deleted_at": at if deleted else None,
                                }
                            )[1:]
                        body = dumps(event.data)
                        body = b"{" + meta if body == b"{}" else body[:-1] + b"," + meta
                        if event.changes:
                            tail = b',"meta":' + dumps({"changes": event.changes}) + b"}}\n"
                        else:
                            tail = envelope[1]
                        line = envelope[0] + body + tail
                        if rows == 1:  # the first line is a whole RECORD with the row and its meta
                            record = orjson.loads(line)["record"]
                            assert record["data"]["_ab_cdc_lsn"] == event.commit_lsn, line
                            assert record["data"]["id"] == event.data["id"], line
                elif type(event) is TransactionCommitted and event.end_lsn >= end:
                    done = True
        stream.stop()
    engine.dispose()
    return time.perf_counter() - started, cpu_seconds() - cpu, rows


def sql_functions(params: dict[str, Any], url: str, end: int, batch: int) -> Timed:
    engine = sa.create_engine(url)
    rows = 0
    cpu = cpu_seconds()
    started = time.perf_counter()
    with engine.connect() as conn, psycopg.connect(**params, autocommit=True) as pg:
        assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
        decoder = PgOutputDecoder(1)
        done = False
        while not done:
            got = pg.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes('sqlfn', %s::pg_lsn, %s,"
                " 'proto_version', '1', 'publication_names', 'pub')",
                [format_lsn(end), batch],
            ).fetchall()
            if not got:
                break
            last_end = 0
            for lsn_text, data in got:
                lsn = parse_lsn(lsn_text)
                event = assembler.feed(decoder.decode(data, lsn), lsn)
                if isinstance(event, RowChange):
                    rows += 1
                elif isinstance(event, TransactionCommitted):
                    last_end = event.end_lsn
                    done = event.end_lsn >= end
            if last_end:
                pg.execute("SELECT pg_replication_slot_advance('sqlfn', %s::pg_lsn)", [format_lsn(last_end)])
            else:
                raise RuntimeError(f"a batch of {batch} ended inside a transaction; raise --batch")
    engine.dispose()
    return time.perf_counter() - started, cpu_seconds() - cpu, rows


FILL = {
    "insert": (
        "CREATE PROCEDURE fill(n bigint, per bigint) LANGUAGE plpgsql AS $$ BEGIN"
        " FOR i IN 1..n LOOP INSERT INTO t VALUES (i, 'name ' || i, i * 1.25, now());"
        " IF i % per = 0 THEN COMMIT; END IF; END LOOP; END $$"
    ),
    "mixed": (
        "CREATE PROCEDURE fill(n bigint, per bigint) LANGUAGE plpgsql AS $$ DECLARE k bigint; BEGIN"
        " FOR i IN 0..n - 1 LOOP k := i / 3;"
        " IF i % 3 = 0 THEN INSERT INTO t VALUES (k, 'name ' || k, k * 1.25, now());"
        " ELSIF i % 3 = 1 THEN UPDATE t SET name = 'renamed ' || k, amount = amount + 1, at = now()"
        " WHERE id = k;"
        " ELSE DELETE FROM t WHERE id = k; END IF;"
        " IF (i + 1) % per = 0 THEN COMMIT; END IF; END LOOP; END $$"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--per-txn", type=int, default=1, help="rows per transaction (1: single-row changes)")
    parser.add_argument("--workload", choices=sorted(FILL), default="insert")
    parser.add_argument(
        "--paths",
        default="floor,wire,wire_many,decode_feed,payload,records",
        help=f"comma-separated, in order, from {', '.join(PATHS)} (sqlfn is slow)",
    )
    parser.add_argument("--batch", type=int, default=20_000, help="SQL functions: changes per peek")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - set(PATHS)
    if unknown or paths[:1] != ["floor"]:
        parser.error(f"--paths must start with floor and name only {', '.join(PATHS)}")
    bindir = str(find_postgres_bindir())
    server = find_server(
        "postgres", ServerRequirements(logical_replication=True), providers=["local-binaries"]
    )
    with server:
        db = server.create_database(prefix="bench")
        params = {k: v for k, v in db.connection_params().items() if k != "password"}
        with psycopg.connect(**db.connection_params(), autocommit=True) as pg:
            pg.execute(
                "CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)"
            )
            pg.execute("CREATE PUBLICATION pub FOR TABLE t")
            starts = {}
            for slot in paths:
                row = pg.execute(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                    [slot],
                ).fetchone()
                assert row is not None
                starts[slot] = parse_lsn(row[0])
            made = time.perf_counter()
            pg.execute(FILL[args.workload])
            pg.execute("CALL fill(%s, %s)", [args.changes, args.per_txn])
            end_row = pg.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert end_row is not None
            end = parse_lsn(end_row[0])
            pg.execute("CHECKPOINT")
            print(
                f"made {args.changes} changes ({args.workload}, {args.per_txn} per transaction) "
                f"in {time.perf_counter() - made:.1f}s"
            )
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        run_of: dict[str, Callable[[], Timed]] = {
            "floor": lambda: floor(bindir, params, end),
            "wire": lambda: wire_only(params, "wire", starts["wire"], end, many=False),
            "wire_many": lambda: wire_only(params, "wire_many", starts["wire_many"], end, many=True),
            "decode_feed": lambda: streaming(
                params, db.url, "decode_feed", starts["decode_feed"], end, payload=False, records=False
            ),
            "payload": lambda: streaming(
                params, db.url, "payload", starts["payload"], end, payload=True, records=False
            ),
            "records": lambda: streaming(
                params, db.url, "records", starts["records"], end, payload=True, records=True
            ),
            "records_decode_feed": lambda: streaming(
                params,
                db.url,
                "records_decode_feed",
                starts["records_decode_feed"],
                end,
                payload=False,
                records=True,
            ),
            "sqlfn": lambda: sql_functions(params, db.url, end, args.batch),
        }
        runs = [(PATHS[p], run_of[p]) for p in paths]
        n = args.changes
        print(f"{'path':<46} {'seconds':>8} {'changes/s':>10} {'x floor':>8} {'CPU s':>7}")
        floor_s = 0.0
        for label, run in runs:
            seconds, cpu, rows = run()
            if rows >= 0:
                assert rows == n, f"{label}: {rows} row changes, expected {n}"
            floor_s = floor_s or seconds
            print(f"{label:<46} {seconds:>8.2f} {n / seconds:>10,.0f} {floor_s / seconds:>8.2f} {cpu:>7.2f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
