"""The Arrow transport of source-postgres (``read --transport arrow``, what ``dbkit sync`` asks of
it when the destination is a dbkit connector too): every record of the type table (every type
case of the acceptance suite, a row of NULLs, many rows in several chunks) carries byte for byte
the ``data`` and ``meta`` of the JSON path, with the same STATE messages after the same records;
a PG -> PG ``dbkit sync`` gives the same final table on both paths; and a sync SIGKILLed on
the Arrow path resumes without losing or repeating a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import psycopg
import pytest

from dbkit.db import schema_type
from dbkit.protocol import (
    FRAME_PREFIX,
    NATIVE,
    TOKEN_TYPES,
    TYPED_KINDS,
    canonical_strings,
    decode_body,
    parse_header,
)
from dbkit.testing.servers import DatabaseServer, TestDatabase

from .test_acceptance import TYPE_CASES

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent
TABLE = "arrow_types"


def config(db: TestDatabase, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"host": db.host, "port": db.port, "database": db.database, "username": db.user,
                         "ssl_mode": {"mode": "disable"}, **extra}  # fmt: skip
    if db.password:
        c["password"] = db.password
    return c


def create_type_table(db: TestDatabase, rows: int) -> None:
    """One column per type case: row 1 its literals, row 2 NULLs, rows 3.. the literals again."""
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        for case in TYPE_CASES:
            for statement in case.setup:
                conn.execute(statement)  # type: ignore[arg-type]
        columns = ", ".join(f"c{i} {case.sql_type}" for i, case in enumerate(TYPE_CASES))
        conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, {columns})")  # type: ignore[arg-type]
        literals = ", ".join(case.literal for case in TYPE_CASES)
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, {literals})")  # type: ignore[arg-type]
        conn.execute(f"INSERT INTO {TABLE} (id) VALUES (2)")  # type: ignore[arg-type]
        names = ", ".join(f"c{i}" for i in range(len(TYPE_CASES)))
        conn.execute(
            f"INSERT INTO {TABLE} SELECT g, {names} FROM {TABLE}, generate_series(3, {rows}) AS g"  # type: ignore[arg-type]
            " WHERE id = 1"
        )


class _Record(msgspec.Struct):
    data: msgspec.Raw
    meta: msgspec.Raw = msgspec.Raw(b"null")


class _Envelope(msgspec.Struct):
    type: str
    record: _Record | None = None


decode_envelope = msgspec.json.Decoder(_Envelope).decode


def read(tmp: Path, db: TestDatabase, transport: str, discovered: bool = False, **extra: Any) -> bytes:
    """The output of a read of :data:`TABLE` (``discovered``: with the last read's catalog)."""
    path = tmp / f"source-{transport}.json"
    path.write_text(json.dumps(config(db, **extra)))
    if not discovered:
        found = subprocess.run(
            [str(BIN / "source-postgres"), "discover", "--config", str(path)], capture_output=True, check=True
        ).stdout
        streams = next(json.loads(x)["catalog"]["streams"] for x in found.splitlines() if b'"CATALOG"' in x)
        mode = {"sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
        catalog = {"streams": [{"stream": s, **mode} for s in streams if s["name"] == TABLE]}
        (tmp / "catalog.json").write_text(json.dumps(catalog))
    done = subprocess.run(
        [str(BIN / "source-postgres"), "read", "--config", str(path), "--catalog", str(tmp / "catalog.json"),
         "--transport", transport],
        capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout


def catalog_fields(tmp: Path) -> list[tuple[str, str]]:
    """(field, Airbyte type) of the stream of the last :func:`read`'s catalog."""
    (stream,) = json.loads((tmp / "catalog.json").read_text())["streams"]
    properties = stream["stream"]["json_schema"]["properties"]
    return [(name, schema_type(schema).airbyte_type.value) for name, schema in properties.items()]


def rebuilt(batch: Any, types: dict[str, str]) -> list[tuple[bytes, bytes | None]]:
    """The (data, meta) of a typed frame's rows: ``data`` as the JSON path writes it (keys in
    column order; a token column's text as it is, the others' values as JSON, a native column's
    as its canonical string)."""
    names = batch.schema.names[:-1]
    columns = []
    for k, name in enumerate(names):
        values = canonical_strings(batch.column(k)).to_pylist()
        if types[name] in TOKEN_TYPES:
            values = [None if v is None else orjson.Fragment(v) for v in values]
        columns.append(values)
    metas = batch.column(len(names)).to_pylist()
    return [
        (orjson.dumps({name: column[i] for name, column in zip(names, columns, strict=True)}), metas[i])
        for i in range(batch.num_rows)
    ]


def messages(
    output: bytes, fields: list[tuple[str, str]] | None = None, kinds: set[str] | None = None
) -> tuple[list[tuple[bytes, bytes | None]], list[Any], int]:
    """(data, meta) of every record in order (a typed frame's rebuilt from its columns, typed by
    ``fields``); the other messages, each STATE with the number of records before it; the number
    of frames (their kinds added to ``kinds``)."""
    records: list[tuple[bytes, bytes | None]] = []
    others: list[Any] = []
    frames = 0
    pos = 0
    while pos < len(output):
        newline = output.index(b"\n", pos)
        line = output[pos:newline]
        pos = newline + 1
        if line.startswith(FRAME_PREFIX):
            header = parse_header(line)
            batch = decode_body(header, output[pos : pos + header.bytes])
            pos += header.bytes
            frames += 1
            if kinds is not None:
                kinds.add(header.kind)
            if header.kind in TYPED_KINDS:
                assert fields is not None
                records.extend(rebuilt(batch, dict(fields)))
                continue
            for data, meta in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                records.append((data, meta))
            continue
        envelope = decode_envelope(line)
        if envelope.type == "RECORD" and envelope.record is not None:
            meta = bytes(envelope.record.meta)
            records.append((bytes(envelope.record.data), None if meta == b"null" else meta))
            continue
        message = json.loads(line)
        if message["type"] == "STATE":
            message["state"]["sourceStats"]["records_before"] = len(records)
        if message["type"] in ("STATE", "TRACE") and message.get("trace", {}).get("type") != "ESTIMATE":
            message.get("trace", {}).pop("emitted_at", None)
            others.append(message)
    return records, others, frames


@pytest.fixture(params=["native", "columns", "records"])
def frame_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The frame kind the source writes (typed frames of native values read with ADBC, typed
    frames of text, or the records frames they replaced)."""
    kind: str = request.param
    monkeypatch.setenv("DBKIT_FRAME_KIND", kind)
    return kind


def test_frames_carry_the_bytes_of_the_json_path(
    tmp_path: Path, postgres_db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed frames, of native values (ADBC) and of text: the ``data`` a record's columns stand
    for (rebuilt as JSON, a native column as its canonical string) is byte for byte the JSON
    path's; native frames carry native columns. (One JSON read for both: the type table's read
    takes the server seconds.)"""
    create_type_table(postgres_db, 3)
    json_records, json_others, none = messages(read(tmp_path, postgres_db, "json"))
    assert none == 0
    assert len(json_records) == 3
    assert b"\\u0001" in json_records[0][0], "the type table has text that needs escapes"
    for kind in (NATIVE, "columns"):
        monkeypatch.setenv("DBKIT_FRAME_KIND", kind)
        kinds: set[str] = set()
        output = read(tmp_path, postgres_db, "arrow", discovered=True)
        arrow_records, arrow_others, frames = messages(output, catalog_fields(tmp_path), kinds)
        assert (frames, kinds) == (1, {kind})
        for i, (want, got) in enumerate(zip(json_records, arrow_records, strict=True)):
            assert got == want, f"{kind} record {i}: {got!r} != {want!r}"
        assert arrow_others == json_others, "the same states and statuses"
        assert any(b'"changes"' in (meta or b"") for _, meta in arrow_records), "the type table has changes"
        if kind == NATIVE:
            start = output.index(b"\n" + FRAME_PREFIX) + 1
            end = output.index(b"\n", start)
            header = parse_header(output[start:end])
            body = output[end + 1 : end + 1 + header.bytes]
            types = {str(t) for t in decode_body(header, body).schema.types}
            assert {"date32[day]", "timestamp[us]", "timestamp[us, tz=UTC]", "time64[us]", "binary"} <= types


def test_many_chunks_give_the_same_records_and_states(
    tmp_path: Path, postgres_db: TestDatabase, frame_kind: str
) -> None:
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, t text, n numeric(12,3), d double precision,"  # type: ignore[arg-type]
            " at timestamptz, j jsonb, b bytea, a integer[])"
        )
        conn.execute(
            f"INSERT INTO {TABLE} SELECT g,"  # type: ignore[arg-type]
            " CASE WHEN g % 3 = 0 THEN NULL ELSE E'q\"\\\\\t\n\u00e9 ' || g END,"
            " g / 7.0, CASE WHEN g % 5 = 0 THEN 'NaN' ELSE g / 3.0 END, now() - g * interval '1 s',"
            " jsonb_build_object('g', g), decode(md5(g::text), 'hex'), ARRAY[g, NULL]"
            " FROM generate_series(1, 3000) AS g"
        )
    settings = {"checkpoint_records": 250, "max_parallel_chunks": 2}
    json_records, json_others, _ = messages(read(tmp_path, postgres_db, "json", **settings))
    arrow_records, arrow_others, frames = messages(
        read(tmp_path, postgres_db, "arrow", **settings), catalog_fields(tmp_path)
    )
    assert frames >= 10, "the table is read in several chunks, each a frame"
    assert len(json_records) == 3000
    assert arrow_records == json_records
    assert arrow_others == json_others, "the same states after the same records"
    assert sum(1 for m in arrow_others if m["type"] == "STATE") >= 10


def _dest(server: DatabaseServer, request: pytest.FixtureRequest) -> TestDatabase:
    db = server.create_database(prefix="t")
    request.addfinalizer(lambda: server.drop_database(db.name))
    return db


def _sync(
    tmp: Path, source: TestDatabase, dest: TestDatabase, protocol: str, **extra: Any
) -> subprocess.Popen[bytes]:
    (tmp / "source.json").write_text(json.dumps(config(source, include_tables=[TABLE], **extra)))
    (tmp / f"dest-{dest.name}.json").write_text(json.dumps(config(dest)))
    return subprocess.Popen(
        [str(BIN / "dbkit"), "sync",
         "--source", "source-postgres", "--source-config", str(tmp / "source.json"),
         "--destination", "destination-postgres", "--destination-config", str(tmp / f"dest-{dest.name}.json"),
         "--state-file", str(tmp / f"state-{dest.name}.json"), "--no-progress", "--protocol", protocol],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _finished(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def _table(db: TestDatabase) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.connection_params()) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped AND attname NOT IN ('_airbyte_raw_id', '_airbyte_extracted_at',"
            " '_airbyte_generation_id')"  # each sync's own (a first refresh: the time in ms)
            " ORDER BY attnum", [f"public.{TABLE}"]).fetchall()]  # fmt: skip
        text = ", ".join(f'"{c}"::text' for c in columns)
        return [tuple(r) for r in conn.execute(f"SELECT {text} FROM public.{TABLE} ORDER BY id").fetchall()]  # type: ignore[arg-type]


def test_a_sync_gives_the_same_table_on_both_paths(
    tmp_path: Path,
    postgres_db: TestDatabase,
    postgres_server: DatabaseServer,
    request: pytest.FixtureRequest,
) -> None:
    """Every type case, value for value: the destination table of the JSON path and of the Arrow
    path (typed frames, typed by the destination from their columns)."""
    create_type_table(postgres_db, 3)
    by_json, by_arrow = _dest(postgres_server, request), _dest(postgres_server, request)
    _finished(_sync(tmp_path, postgres_db, by_json, "json", checkpoint_records=100))
    _finished(_sync(tmp_path, postgres_db, by_arrow, "arrow", checkpoint_records=100))
    want, got = _table(by_json), _table(by_arrow)
    assert len(want) == 3
    assert got == want


@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "kind"), [("arrow", "native"), ("arrow", "columns"), ("json", "columns")]
)
def test_a_sync_killed_mid_stream_resumes_without_loss(
    tmp_path: Path,
    postgres_db: TestDatabase,
    postgres_server: DatabaseServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
    kind: str,
) -> None:
    """Full refresh + overwrite, SIGKILLed after a checkpoint was acknowledged, then run again: the
    second sync resumes after the acknowledged key, and the table holds every row; a row can be
    there twice only past that key (at-least-once: what was loaded after the last saved state is
    loaded again into the refresh's table). The same on both paths (typed frames on the Arrow path,
    of native values read with ADBC or of text: the buffers hold runs of frames; records frames
    passed the same test before them)."""
    monkeypatch.setenv("DBKIT_FRAME_KIND", kind)
    rows = 300_000
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, name text, at timestamptz, n numeric)")  # type: ignore[arg-type]
        conn.execute(
            f"INSERT INTO {TABLE} SELECT g, md5(g::text), now() - g * interval '1 s', g / 7.0"  # type: ignore[arg-type]
            f" FROM generate_series(1, {rows}) AS g"
        )
    dest = _dest(postgres_server, request)
    state = tmp_path / f"state-{dest.name}.json"
    proc = _sync(tmp_path, postgres_db, dest, protocol, checkpoint_records=5000)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some state is acknowledged, mid-stream
        if state.exists() and '"after"' in state.read_text():
            break
        assert proc.poll() is None, "the sync ended before it could be killed: make it longer"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads(state.read_text())["streams"][0]
    after = int(saved["state"]["after"][0])
    assert not saved["finished"]
    assert after < rows
    _finished(_sync(tmp_path, postgres_db, dest, protocol, checkpoint_records=5000))
    resumed = json.loads(state.read_text())["streams"][0]
    assert resumed["finished"]
    assert resumed["last_sync"]["records_read"] == rows - after, "the source resumed after the saved key"
    digest = f"SELECT count(DISTINCT id), md5(string_agg(DISTINCT id::text || name, ',')) FROM {TABLE}"
    with psycopg.connect(**dest.connection_params()) as conn:
        got = conn.execute(digest).fetchone()  # type: ignore[arg-type]
        twice = conn.execute(
            f"SELECT count(*) FROM (SELECT id FROM {TABLE} GROUP BY id HAVING count(*) > 1) AS d"  # type: ignore[arg-type]
            " WHERE id <= %s",
            [after],
        ).fetchone()
    with psycopg.connect(**postgres_db.connection_params()) as conn:
        want = conn.execute(digest).fetchone()  # type: ignore[arg-type]
    assert got == want
    assert want is not None
    assert want[0] == rows
    assert twice == (0,), "rows up to the acknowledged key were loaded once"


def test_the_adbc_reader_masks_secrets_and_reads_under_the_snapshot(postgres_db: TestDatabase) -> None:
    """A driver error that quotes the connection string shows no secret; a connection reads
    under the snapshot it imported (rows committed after it are not seen)."""
    from dbkit import DbkitError
    from source_postgres.native import NativeReader, native_columns

    columns = native_columns([])  # no columns: no native read
    assert columns is None
    params = {"host": postgres_db.host, "port": postgres_db.port, "dbname": postgres_db.database,
              "user": postgres_db.user, "password": "s3cret pass'word", "sslpassword": "k3y"}  # fmt: skip
    reader = NativeReader(params, None, "PostgreSQL at somewhere")  # type: ignore[arg-type]
    error = reader.error(
        RuntimeError(f"could not connect with {reader._conninfo}: password s3cret pass'word")
    )
    assert isinstance(error, DbkitError)
    assert "s3cret" not in str(error)
    assert "k3y" not in str(error)
    assert "********" in str(error)
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute("CREATE TABLE snap (id integer)")
        conn.execute("INSERT INTO snap VALUES (1)")
    with psycopg.connect(**postgres_db.connection_params()) as coordinator:
        coordinator.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        row = coordinator.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        params.pop("sslpassword")
        params["password"] = postgres_db.password or ""
        reader = NativeReader({k: v for k, v in params.items() if v}, None, "here")  # type: ignore[arg-type]
        adbc = reader.connect(str(row[0]))
        with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
            conn.execute("INSERT INTO snap VALUES (2)")
        try:
            with adbc.cursor() as cur:
                cur.execute(
                    "SELECT count(*), current_setting('transaction_isolation'),"
                    " current_setting('transaction_read_only'), current_setting('TimeZone') FROM snap"
                )
                assert cur.fetchall() == [(1, "repeatable read", "on", "UTC")]
        finally:
            NativeReader.close(adbc)


def test_a_group_whose_adbc_connections_fail_reads_with_psycopg(postgres_db: TestDatabase) -> None:
    """The ADBC driver cannot connect (here: a closed port) while psycopg can: the group reads
    with psycopg workers and says why, with no secret in the reason; with it, the chunk comes as
    a native frame's batch under the group's snapshot."""
    import socket
    import threading

    import pyarrow as pa

    from dbkit.db import Database
    from source_postgres import PostgresSourceConfig, PostgresSourceDialect
    from source_postgres.native import NativeReader, native_columns
    from source_postgres.parallel import Chunk, SnapshotGroup

    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute("CREATE TABLE grp (id integer PRIMARY KEY, d date, b bytea)")
        conn.execute("INSERT INTO grp VALUES (1, '0044-03-15 BC', '\\x00ff'), (2, 'infinity', NULL)")
    dialect = PostgresSourceDialect(PostgresSourceConfig.model_validate(config(postgres_db)))
    database = Database(dialect)
    try:
        with database.connect() as conn:
            (table,) = [t for t in dialect.list_tables(conn) if t.name == "grp"]
        spec = native_columns(table.columns)
        assert spec is not None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        params = {**dialect.replication_params(), "port": closed, "password": "n0t-shown"}
        query = psycopg.sql.SQL("SELECT {} FROM grp").format(spec.select)
        for reader, native in ((NativeReader(params, spec, "here"), False),
                               (NativeReader(dialect.replication_params(), spec, "here"), True)):  # fmt: skip
            with SnapshotGroup(database, 1, threading.Event(), native=reader) as group:
                assert (group.native is not None) == native
                assert (group.native_failure is None) == native
                assert "n0t-shown" not in (group.native_failure or "")
                with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
                    conn.execute(
                        "INSERT INTO grp VALUES (%s, NULL, NULL)", [3 + native]
                    )  # after the snapshot
                if not native:
                    continue
                ((_, blocks, records),) = list(group.read(iter([Chunk(query)])))
                (batch,) = blocks
                assert records == batch.num_rows == 3, "row 3 (before the snapshot), not row 4 (after it)"
                assert [str(t) for t in batch.schema.types] == ["int64", "date32[day]", "binary", "binary"]
                assert batch.column(1).cast(pa.int32()).to_pylist() == [
                    -735160,
                    None,
                    None,
                ]  # 44 BC, infinity
    finally:
        database.dispose()
