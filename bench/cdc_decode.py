"""Decoded changes/s of source-postgres's CDC wire layer against the pg_recvlogical floor.

Starts a throwaway PostgreSQL (wal_level=logical) from the local binaries, creates three slots,
makes N single-row inserts (in transactions of --per-txn rows), then reads them three ways:

- ``pg_recvlogical`` (pgoutput, same options) writing to /dev/null: the floor;
- START_REPLICATION streaming (``source_postgres.cdc``): decode + assemble into JSON-ready rows;
- the SQL functions ``pg_logical_slot_peek_binary_changes`` + ``pg_replication_slot_advance``
  in batches, decoded and assembled the same way.

Prints changes/s, the ratio to the floor and the process's peak RSS. Needs no data in the repo:
``.venv/bin/python -m bench.cdc_decode --changes 200000`` (from the repository root: run as
a file, bench/source_postgres.py would shadow the package).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from typing import Any

import psycopg
import sqlalchemy as sa

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
)

OPTIONS = {"proto_version": "1", "publication_names": "pub"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor(bindir: str, params: dict[str, Any], slot: str, end: int) -> float:
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
        slot,
        "--start",
        "-E",
        format_lsn(end),
        "-f",
        "/dev/null",
        "--no-loop",
    ]
    for name, value in OPTIONS.items():
        argv += ["-o", f"{name}={value}"]
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def streaming(params: dict[str, Any], url: str, slot: str, end: int, start_lsn: int) -> tuple[float, int]:
    engine = sa.create_engine(url)
    rows = 0
    started = time.perf_counter()
    with engine.connect() as conn, ReplicationConnection.connect(params) as repl:
        assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
        decoder = PgOutputDecoder(1)
        stream = repl.start(slot, start_lsn, publications=["pub"])
        decode, feed = decoder.decode, assembler.feed
        while True:
            data = stream.read(timeout=10)
            if data is None:
                raise RuntimeError("stream went quiet before the end position")
            event = feed(decode(data.payload, data.data_start), data.data_start)
            if isinstance(event, RowChange):
                rows += 1
            elif isinstance(event, TransactionCommitted) and event.end_lsn >= end:
                break
        stream.stop()
    engine.dispose()
    return time.perf_counter() - started, rows


def sql_functions(params: dict[str, Any], url: str, slot: str, end: int, batch: int) -> tuple[float, int]:
    engine = sa.create_engine(url)
    rows = 0
    started = time.perf_counter()
    with engine.connect() as conn, psycopg.connect(**params, autocommit=True) as pg:
        assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
        decoder = PgOutputDecoder(1)
        done = False
        while not done:
            got = pg.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s,"
                " 'proto_version', '1', 'publication_names', 'pub')",
                [slot, format_lsn(end), batch],
            ).fetchall()
            if not got:
                break
            last_end = 0
            for lsn_text, data in got:
                high, low = lsn_text.split("/")
                lsn = int(high, 16) << 32 | int(low, 16)
                event = assembler.feed(decoder.decode(data, lsn), lsn)
                if isinstance(event, RowChange):
                    rows += 1
                elif isinstance(event, TransactionCommitted):
                    last_end = event.end_lsn
                    done = event.end_lsn >= end
            if last_end:
                pg.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, format_lsn(last_end)])
            else:
                raise RuntimeError(f"a batch of {batch} ended inside a transaction; raise --batch")
    engine.dispose()
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--per-txn", type=int, default=1, help="rows per transaction (1: single-row changes)")
    parser.add_argument("--batch", type=int, default=20_000, help="SQL functions: changes per peek")
    args = parser.parse_args()
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
            for slot in ("floor", "stream", "sqlfn"):
                row = pg.execute(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", [slot]
                ).fetchone()
                assert row is not None
                starts[slot] = row[0]
            made = time.perf_counter()
            pg.execute(
                "CREATE PROCEDURE fill(n bigint, per bigint) LANGUAGE plpgsql AS $$ BEGIN"
                " FOR i IN 1..n LOOP INSERT INTO t VALUES (i, 'name ' || i, i * 1.25, now());"
                " IF i % per = 0 THEN COMMIT; END IF; END LOOP; END $$"
            )
            pg.execute("CALL fill(%s, %s)", [args.changes, args.per_txn])
            end_row = pg.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert end_row is not None
            high, low = end_row[0].split("/")
            end = int(high, 16) << 32 | int(low, 16)
            print(f"made {args.changes} changes in {time.perf_counter() - made:.1f}s")
        f_high, f_low = starts["stream"].split("/")
        floor_s = floor(bindir, params, "floor", end)
        stream_s, stream_rows = streaming(
            params, db.url, "stream", end, int(f_high, 16) << 32 | int(f_low, 16)
        )
        sql_s, sql_rows = sql_functions(params, db.url, "sqlfn", end, args.batch)
        n = args.changes
        print(f"{'path':<46} {'changes/s':>10} {'x floor':>8}")
        print(f"{'pg_recvlogical pgoutput -> /dev/null (floor)':<46} {n / floor_s:>10,.0f} {1:>8.2f}")
        for label, seconds, rows in (
            ("START_REPLICATION + decode + assemble", stream_s, stream_rows),
            ("peek_binary_changes + advance + same decode", sql_s, sql_rows),
        ):
            assert rows == n, f"{label}: {rows} rows, expected {n}"
            print(f"{label:<46} {n / seconds:>10,.0f} {floor_s / seconds:>8.2f}")
        print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
