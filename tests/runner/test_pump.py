"""The pump between source and destination, the catalog rules, the state file and URL configs."""

from __future__ import annotations

import io
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console

from dbkit.cli import endpoint
from dbkit.config import MASKER
from dbkit.errors import ConfigError
from dbkit.protocol import AirbyteStream, DestinationSyncMode, StreamDescriptor, SyncMode
from dbkit.protocol import messages as msg
from dbkit.protocol.arrow import encode_frame, frame_schema
from dbkit.runner import (
    Endpoint,
    Pump,
    StreamProgress,
    SyncError,
    SyncProgress,
    SyncRequest,
    configure_stream,
    register_config_secrets,
    run_sync,
)
from dbkit.runner.display import Reporter
from dbkit.runner.pump import BLOCK
from dbkit.runner.registry import ConnectorInfo, lookup, resolve
from dbkit.runner.state import StreamEntry, SyncState


class Recorder:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, str]] = []
        self.statuses: list[tuple[str, str]] = []
        self.errors: list[SyncError] = []

    def phase(self, text: str) -> None:
        pass

    def log(self, origin: str, level: str, text: str, stack_trace: str | None = None) -> None:
        self.logs.append((origin, level, text))

    def started(self, progress: SyncProgress) -> None:
        pass

    def stream_status(self, stream: StreamProgress, status: str) -> None:
        self.statuses.append((stream.name, status))

    def error(self, error: SyncError) -> None:
        self.errors.append(error)

    def finished(self, progress: SyncProgress) -> None:
        pass


def _progress(*names: tuple[str, str | None]) -> SyncProgress:
    streams = [
        StreamProgress(StreamDescriptor(n, ns), SyncMode.INCREMENTAL, DestinationSyncMode.APPEND, 0)
        for n, ns in names
    ]
    return SyncProgress(sync_id=1, streams=streams)


# ============================================================================ the pump


def test_the_pump_forwards_records_states_and_statuses_byte_for_byte() -> None:
    users, orders = StreamDescriptor("users"), StreamDescriptor("orders", "shop")
    forwarded = [
        msg.stream_status(users, "STARTED"),
        msg.record(users, {"id": 1, "name": "é"}, emitted_at=5),
        # not in dbkit's envelope order, odd spacing, a number no double holds: still the same bytes
        b'{"record": {"data": {"id": 2, "v": 12345678901234567890.123456789}, "stream": "users",'
        b' "emitted_at": 6}, "type": "RECORD"}\n',
        msg.record(orders, {"id": 7}, emitted_at=7),
        msg.stream_state(users, {"cursor": 2}, 2),
        msg.stream_status(users, "COMPLETE"),
    ]
    kept_back = [
        msg.log("WARN", "slow query"),
        msg.trace_error("table gone", "config_error", stream=orders),
        msg.estimate(orders, 1000, None),
        b"this is not JSON\n",
    ]
    lines = [forwarded[0], kept_back[0], forwarded[1], forwarded[2], kept_back[1], forwarded[3]]
    lines += [kept_back[2], forwarded[4], kept_back[3], forwarded[5]]
    progress = _progress(("users", None), ("orders", "shop"))
    recorder = Recorder()
    sink = io.BytesIO()
    Pump(iter(lines), sink, progress, recorder).run()

    assert sink.getvalue() == b"".join(forwarded)
    u, o = progress.streams
    assert (u.records_read, o.records_read) == (2, 1)
    assert (u.states_sent, u.status, o.row_estimate) == (1, "COMPLETE", 1000)
    assert recorder.statuses == [("users", "STARTED"), ("users", "COMPLETE")]
    assert [(e.origin, e.failure_type, e.stream, e.message) for e in progress.errors] == [
        ("source", "config_error", "shop.orders", "table gone")
    ]
    assert ("source", "WARN", "slow query") in recorder.logs
    assert any("not a protocol message: this is not JSON" in text for _, _, text in recorder.logs)


def test_the_pump_stops_when_the_destination_goes_away() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    sink = os.fdopen(write_end, "wb", buffering=0)
    progress = _progress(("users", None))
    pump = Pump(
        iter([msg.stream_status(StreamDescriptor("users"), "STARTED")] * 3), sink, progress, Recorder()
    )
    pump.run()
    assert pump.destination_gone


def test_a_stop_ends_the_pump_at_the_next_state_and_drops_a_cut_line() -> None:
    users = StreamDescriptor("users")
    stop = threading.Event()
    sent = [msg.stream_status(users, "STARTED"), msg.record(users, {"id": 1}, emitted_at=1)]

    def source() -> Iterator[bytes]:
        yield from sent
        stop.set()  # Ctrl-C: what was read goes on up to the next STATE, nothing after it
        yield msg.record(users, {"id": 2}, emitted_at=2)
        yield msg.stream_state(users, {"cursor": 2}, 2)
        yield msg.record(users, {"id": 3}, emitted_at=3)

    sink = io.BytesIO()
    progress = _progress(("users", None))
    pump = Pump(source(), sink, progress, Recorder(), stop=stop)
    pump.run()
    assert pump.stopped
    assert sink.getvalue() == b"".join(sent) + msg.record(users, {"id": 2}, emitted_at=2) + msg.stream_state(
        users, {"cursor": 2}, 2
    )
    assert progress.streams[0].records_read == 2

    # a source stopped in the middle of a line: the piece is not forwarded, and is no error
    cut = msg.record(users, {"id": 4, "name": "x" * 50}, emitted_at=4)[:40]
    sink, recorder = io.BytesIO(), Recorder()
    pump = Pump(iter([*sent, cut]), sink, _progress(("users", None)), recorder, stop=stop)
    pump.run()
    assert sink.getvalue() == b"".join(sent)
    assert not pump.progress.errors
    assert [level for _, level, _ in recorder.logs] == ["DEBUG"]


class Trickle(io.RawIOBase):
    """A pipe's end that gives what it holds in pieces of random size (1 byte to ``most``)."""

    def __init__(self, data: bytes, seed: int, most: int) -> None:
        self.data, self.pos, self.most = data, 0, most
        self.rng = random.Random(seed)  # noqa: S311 (test data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        size = min(len(b), self.rng.randint(1, self.most), len(self.data) - self.pos)
        b[:size] = self.data[self.pos : self.pos + size]
        self.pos += size
        return size


class LinesOnly:
    """A binary file without ``read1``: the pump takes it line by line (frames' bodies by ``read``)."""

    def __init__(self, data: bytes) -> None:
        self.file = io.BytesIO(data)
        self.read = self.file.read

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.file.readline, b"")


def _frame(datas: list[bytes]) -> bytes:
    batch = pa.RecordBatch.from_arrays(
        [pa.array(datas, pa.binary()), pa.nulls(len(datas), pa.binary())], schema=frame_schema()
    )
    return encode_frame("users", "shop", 1700000000000, batch)


def _mixed_output(rng: random.Random, frames: bool) -> list[bytes]:
    """A source's output: runs of records of streams whose heads begin alike, between states,
    statuses, logs, a record in another key order, and (with ``frames``) frames."""
    users, users_ns = StreamDescriptor("users"), StreamDescriptor("users", "shop")
    user = StreamDescriptor("user")
    quoted = StreamDescriptor('us"ers', "a\\b")
    lines: list[bytes] = [msg.stream_status(users, "STARTED")]
    for i in range(400):
        kind = rng.random()
        if kind < 0.8:
            descriptor = rng.choice([users, users, users_ns, user, quoted, StreamDescriptor("other")])
            lines.append(msg.record(descriptor, {"id": i, "text": "\n" * rng.randint(0, 3)}, emitted_at=i))
        elif kind < 0.85:
            lines.append(msg.stream_state(rng.choice([users, users_ns]), {"cursor": i}, i))
        elif kind < 0.9:
            lines.append(msg.log("INFO", f"line {i}"))
        elif kind < 0.93:
            lines.append(b'{"record": {"data": {"id": %d}, "stream": "users"}, "type": "RECORD"}\n' % i)
        elif kind < 0.96 and frames:
            lines.append(_frame([b'{"id":%d}' % i] * rng.randint(1, 300)))
        else:
            lines.append(msg.estimate(users_ns, i, None))
    lines.append(msg.stream_status(users, "COMPLETE"))
    return lines


def _pumped(
    source: Any, frames: bool, stop: threading.Event | None = None
) -> tuple[bytes, list[Any], Recorder]:
    progress = _progress(("users", None), ("users", "shop"), ("user", None), ('us"ers', "a\\b"))
    sink, recorder = io.BytesIO(), Recorder()
    pump = Pump(source, sink, progress, recorder, frames=frames, stop=stop)
    pump.run()
    counts = [(s.records_read, s.states_sent, s.status, s.row_estimate) for s in progress.streams]
    return sink.getvalue(), [counts, pump.stopped, pump.broken], recorder


@pytest.mark.parametrize("frames", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_pump_reads_blocks_as_it_read_lines(frames: bool, seed: int) -> None:
    """From a file, the pump reads blocks and forwards runs of one stream's records at once: the
    destination gets the same bytes and the display the same counts as line by line, however the
    pipe cuts the output (pieces of 1 byte up to more than a block)."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    lines = _mixed_output(rng, frames)
    output = b"".join(lines)
    by_lines, observed, recorder = _pumped(LinesOnly(output), frames)
    kept_back = (b'{"type":"LOG"', b'{"type":"TRACE","trace":{"type":"ESTIMATE"')
    assert by_lines == b"".join(line for line in lines if not line.startswith(kept_back))
    for most in (1, 7, 4096, BLOCK * 2):
        source = io.BufferedReader(Trickle(output, seed, most), buffer_size=8192)
        by_blocks, observed_blocks, recorder_blocks = _pumped(source, frames)
        assert by_blocks == by_lines
        assert observed_blocks == observed
        assert recorder_blocks.logs == recorder.logs
        assert recorder_blocks.statuses == recorder.statuses
    assert all(records > 0 for records, *_ in observed[0])  # every stream had records


_HEAD = b'{"type":"RECORD","record":{"stream":'


@pytest.mark.parametrize(
    "output",
    [
        _HEAD + b'"us\n' + b'ers","data":{}}}\n',  # a name cut by a line break: no head crosses it
        _HEAD + b'"users","namespace":"sh\n' + b'op"}}\n',
        _HEAD + b'"us\\qers","data":{}}}\n',  # no JSON string: the general way, a warning
        _HEAD + b'"us\\ud800","data":{}}}\n' + _HEAD + b'"users","data":{}}}\n',  # a lone surrogate
        b"".join(_HEAD + b'"users","namespace":null,"data":{"id":%d}}}\n' % i for i in range(40)),
        _HEAD + b'"users","data":{"x":"' + b"y" * (3 * BLOCK) + b'"}}}\n' + _HEAD + b'"users","data":{}}}\n',
        b"".join(_HEAD + (b'"users"' if i % 3 else b'"user"') + b',"data":{}}}\n' for i in range(100)),
        _frame([b"{}"] * 3)[:20],  # the output ends inside a frame's header line
    ],
)
def test_odd_output_read_in_blocks_is_taken_as_line_by_line(output: bytes) -> None:
    """Found by review: a head may not run past its line's end (the crash depended on where the
    pipe cut the output), output cut in a frame's header is unreadable output, a very long line
    is read once, streams that alternate go line by line, a null namespace is none."""
    for frames in (False, True):
        by_lines, observed, recorder = _pumped(LinesOnly(output), frames)
        for most in (1, 4096, BLOCK * 2) if len(output) < BLOCK else (4096, BLOCK * 2):
            source = io.BufferedReader(Trickle(output, most, most), buffer_size=8192)
            by_blocks, observed_blocks, recorder_blocks = _pumped(source, frames)
            assert (by_blocks, observed_blocks) == (by_lines, observed)
            assert recorder_blocks.logs == recorder.logs
            assert [e.message for e in recorder_blocks.errors] == [e.message for e in recorder.errors]


def test_a_stopped_source_read_in_blocks_ends_at_the_next_state_and_drops_a_cut_line() -> None:
    users = StreamDescriptor("users")
    stop = threading.Event()
    stop.set()
    records = [msg.record(users, {"id": i}, emitted_at=i) for i in range(5)]
    state = msg.stream_state(users, {"cursor": 4}, 4)
    after = msg.record(users, {"id": 9}, emitted_at=9)
    source = io.BufferedReader(Trickle(b"".join([*records, state, after]), 1, 100))
    out, (counts, stopped, _), _ = _pumped(source, False, stop)
    assert out == b"".join([*records, state])
    assert stopped
    assert counts[0][:2] == (5, 1)

    cut = msg.record(users, {"id": 4, "name": "x" * 50}, emitted_at=4)[:40]
    source = io.BufferedReader(Trickle(b"".join([*records, cut]), 2, 100))
    out, _, recorder = _pumped(source, False, stop)
    assert out == b"".join(records)
    assert [level for _, level, _ in recorder.logs] == ["DEBUG"]


def test_a_frame_cut_short_in_a_block_is_an_unreadable_output() -> None:
    data = _frame([b"{}"] * 10)
    source = io.BufferedReader(Trickle(data[:-3], 3, 50))
    progress = _progress(("users", "shop"))
    pump = Pump(source, io.BytesIO(), progress, Recorder(), frames=True)
    pump.run()
    assert pump.broken
    assert [e.message for e in progress.errors] == [
        "unreadable output: the source's output ended inside a frame"
    ]


@pytest.mark.slow
def test_the_live_display_costs_under_5_percent_of_a_100k_record_sync(tmp_path: Path) -> None:
    source, warehouse = tmp_path / "big.db", tmp_path / "w.db"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC, at DATETIME)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
            "INSERT INTO big SELECT i, 'name ' || i, i * 1.25, '2024-01-01 00:00:00' FROM n"
        )
    sqlite_source, sqlite_destination = lookup("source-sqlite"), lookup("destination-sqlite")
    assert sqlite_source is not None
    assert sqlite_destination is not None
    request = SyncRequest(
        Endpoint(sqlite_source, {"path": str(source)}),
        Endpoint(sqlite_destination, {"path": str(warehouse)}),
        tmp_path / "state.json",
    )
    screen = io.StringIO()
    reporter = Reporter(Console(file=screen, force_terminal=True, width=120), live=True, verbose=False)
    progress = run_sync(request, reporter)
    assert progress.ok
    assert progress.records_read == progress.records_acknowledged == 100_000
    elapsed = progress.seconds()
    assert reporter.renders >= 1
    assert reporter.renders <= elapsed / reporter.refresh_seconds + 2  # a few per second, never per record
    print(f"display: {reporter.renders} renders, {reporter.display_seconds:.4f} s of a {elapsed:.2f} s sync")
    assert reporter.display_seconds < 0.05 * elapsed, (reporter.display_seconds, elapsed)
    assert "big" in screen.getvalue()


def test_the_reporter_renders_a_few_times_a_second_never_per_record() -> None:
    progress = _progress(("users", None))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    reporter = Reporter(console, live=True, verbose=False, refresh_seconds=0.02)
    started = time.monotonic()
    reporter.started(progress)
    stream = progress.streams[0]
    stream.started_at = time.monotonic()
    for _ in range(200_000):  # what the pump does per record: one increment, nothing else
        stream.records_read += 1
    time.sleep(0.1)
    reporter.close()
    elapsed = time.monotonic() - started
    assert 1 <= reporter.renders <= elapsed / 0.02 + 2
    assert "200,000" in screen.getvalue()


# ============================================================================ catalog rules


def _stream(name: str, pk: bool, cursor: bool) -> AirbyteStream:
    return AirbyteStream(
        name=name,
        json_schema={"type": "object", "properties": {"id": {"type": "integer"}}},
        supported_sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
        if cursor
        else (SyncMode.FULL_REFRESH,),
        default_cursor_field=("updated_at",) if cursor else (),
        source_defined_primary_key=(("id",),) if pk else (),
    )


def test_streams_are_configured_by_what_they_support() -> None:
    dedup, _ = configure_stream(_stream("a", pk=True, cursor=True), None, 1, full_refresh=False)
    assert (dedup.sync_mode, dedup.destination_sync_mode, dedup.cursor_field) == (
        SyncMode.INCREMENTAL,
        DestinationSyncMode.APPEND_DEDUP,
        ("updated_at",),
    )
    assert (dedup.primary_key, dedup.generation_id, dedup.minimum_generation_id, dedup.sync_id) == (
        (("id",),),
        0,
        0,
        1,
    )
    append, _ = configure_stream(_stream("b", pk=False, cursor=True), None, 1, full_refresh=False)
    assert append.destination_sync_mode is DestinationSyncMode.APPEND
    overwrite, _ = configure_stream(_stream("c", pk=True, cursor=False), None, 1, full_refresh=False)
    assert (overwrite.sync_mode, overwrite.destination_sync_mode) == (
        SyncMode.FULL_REFRESH,
        DestinationSyncMode.OVERWRITE,
    )
    assert overwrite.generation_id == overwrite.minimum_generation_id
    assert (overwrite.generation_id or 0) >= 1_700_000_000_000  # the time in ms (a first refresh)
    forced, _ = configure_stream(_stream("a", pk=True, cursor=True), None, 1, full_refresh=True)
    assert forced.destination_sync_mode is DestinationSyncMode.OVERWRITE


def _entry(mode: str, dest: str, generation: int, state: Any, finished: bool) -> StreamEntry:
    cursor = ["updated_at"] if mode == "incremental" else []
    return StreamEntry(StreamDescriptor("s"), generation, state, finished, mode, dest, cursor)


def test_generations_and_saved_states_follow_the_platform_rules() -> None:
    full = _stream("s", pk=True, cursor=False)
    middle = {"mode": "full_refresh", "by": ["id"], "after": [10]}
    done = {"mode": "full_refresh", "complete": True}
    # a finished overwrite stream: a new generation and no state
    c, state = configure_stream(full, _entry("full_refresh", "overwrite", 3, done, True), 9, False)
    assert (c.generation_id, c.minimum_generation_id, c.sync_id, state) == (4, 4, 9, None)
    # an unfinished one with a position: the same generation, resumed
    c, state = configure_stream(full, _entry("full_refresh", "overwrite", 3, middle, False), 9, False)
    assert (c.generation_id, c.minimum_generation_id, state) == (3, 3, middle)
    # unfinished but nothing to resume from: a new generation (the old temporary table is dropped)
    for nothing in (None, done):
        c, state = configure_stream(full, _entry("full_refresh", "overwrite", 3, nothing, False), 9, False)
        assert (c.generation_id, state) == (4, None)
    # incremental keeps its state and generation across syncs
    incremental = _stream("s", pk=True, cursor=True)
    position = {"mode": "incremental", "position": {"cursor": "x"}}
    c, state = configure_stream(
        incremental, _entry("incremental", "append_dedup", 2, position, True), 9, False
    )
    assert (c.generation_id, c.minimum_generation_id, state) == (2, 0, position)
    # a changed setup starts over
    c, state = configure_stream(incremental, _entry("full_refresh", "overwrite", 2, done, True), 9, False)
    assert (c.sync_mode, c.generation_id, state) == (SyncMode.INCREMENTAL, 2, None)
    c, state = configure_stream(
        incremental, _entry("incremental", "append_dedup", 2, position, True), 9, True
    )
    assert (c.destination_sync_mode, c.generation_id, state) == (DestinationSyncMode.OVERWRITE, 3, None)


# ============================================================================ the state file


def test_the_state_file_is_replaced_atomically_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SyncState(path)
    state.sync_count = 4
    state.entry(StreamDescriptor("a")).generation_id = 2
    covered = state.acknowledge(
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "a", "namespace": "x"}, "stream_state": {"k": 1}},
        }
    )
    assert covered == [StreamDescriptor("a", "x")]
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temporary file left behind
    again = SyncState.load(path)
    assert again.sync_count == 4
    assert again.streams[StreamDescriptor("a", "x")].state == {"k": 1}
    assert again.input_state([StreamDescriptor("a", "x"), StreamDescriptor("a")]) == [
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "a", "namespace": "x"}, "stream_state": {"k": 1}},
        }
    ]
    again.acknowledge(
        {
            "type": "GLOBAL",
            "global": {
                "shared_state": {"lsn": 5},
                "stream_states": [{"stream_descriptor": {"name": "a"}, "stream_state": {"c": 1}}],
            },
        }
    )
    third = SyncState.load(path)
    assert third.input_state([StreamDescriptor("a")]) == [
        {
            "type": "GLOBAL",
            "global": {
                "shared_state": {"lsn": 5},
                "stream_states": [{"stream_descriptor": {"name": "a"}, "stream_state": {"c": 1}}],
            },
        }
    ]


def test_a_damaged_state_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "streams": [{"stream_descriptor": {}}]}')
    with pytest.raises(ConfigError, match="is not a dbkit sync state"):
        SyncState.load(path)
    path.write_text("[")
    with pytest.raises(ConfigError, match="delete it to start over"):
        SyncState.load(path)


# ============================================================================ URLs


def test_urls_become_connector_configs() -> None:
    sqlite = resolve("sqlite:///data/shop.db?checkpoint_records=500&include_tables=[%22a*%22]", "source")
    assert sqlite.info.name == "source-sqlite"
    assert sqlite.url_config == {"path": "data/shop.db", "checkpoint_records": 500, "include_tables": ["a*"]}
    assert resolve("sqlite:////var/lib/w.db", "destination").url_config == {"path": "/var/lib/w.db"}
    pg = resolve("postgresql://me:p%40ss@db.local:6543/shop?schema=sales,ops&sslmode=require", "source")
    assert pg.info.name == "source-postgres"
    assert pg.url_config == {
        "host": "db.local",
        "port": 6543,
        "database": "shop",
        "username": "me",
        "password": "p@ss",
        "schemas": ["sales", "ops"],
        "ssl_mode": {"mode": "require"},
    }
    dest = resolve("postgres://me@db.local/shop?schema=raw", "destination")
    assert (dest.info.name, dest.url_config) == (
        "destination-postgres",
        {"host": "db.local", "port": 5432, "database": "shop", "username": "me", "schema": "raw"},
    )
    mysql = resolve("mysql://root:pw@127.0.0.1/app", "destination")
    assert (mysql.info.name, mysql.url_config) == (
        "destination-mysql",
        {
            "host": "127.0.0.1",
            "port": 3306,
            "database": "app",
            "username": "root",
            "password": "pw",
            "ssl": False,
        },
    )
    assert (resolve("mariadb://u@h/d?ssl=true", "destination").url_config or {})["ssl"] is True
    for bad, problem in (
        ("oracle://x/y", "no source connector handles oracle:// URLs"),
        ("postgresql:///shop", "names no host"),
        ("mysql://h", "names no database"),
        ("sqlite://host/x.db", "has no host"),
        ("destination-sqlite", "is a destination connector, not a source"),
    ):
        with pytest.raises(ConfigError, match=problem):
            resolve(bad, "source")
    assert resolve("source-custom", "source").info.module is None  # any console script on PATH


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:1234/S3cretTail99@127.0.0.1:5432/shop",  # once: its label showed it all
        "postgresql://me:ab?S3cretTail99@127.0.0.1:5432/shop",
        "postgresql://me:ab#S3cretTail99@127.0.0.1:5432/shop",
    ],
)
def test_a_url_whose_password_holds_slash_question_or_hash_is_read_and_masked(url: str) -> None:
    """SQLAlchemy's parser ends the password at the '@' before the host: '/', '?' and '#' stay in
    it (urllib's would end the host part there). The password is read whole, and never shown."""
    secret = url.split("me:", 1)[1].rsplit("@", 1)[0]
    found = endpoint(url, None, "source")
    assert found.config["password"] == secret
    assert (found.config["host"], found.config["port"], found.config["database"]) == (
        "127.0.0.1",
        5432,
        "shop",
    )
    pieces = {secret[i : i + 4] for i in range(len(secret) - 3)}
    for shown in (found.label, MASKER.mask(f"source {url} failed")):
        assert not {p for p in pieces if p in shown}, shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:a@b/S3cretTail99@127.0.0.1:5432/shop",
        "postgresql://me:S3cret@Tail99@127.0.0.1:5432/shop",
    ],
)
def test_a_url_whose_password_holds_an_at_sign_is_refused_and_masked(url: str) -> None:
    """An '@' in the password ends it early for SQLAlchemy's parser: the rest would be taken for
    the host. Refused, and no piece of it is ever shown."""
    secret = url.split("me:", 1)[1].rsplit("@", 1)[0]
    with pytest.raises(ConfigError, match="percent-encode") as raised:
        endpoint(url, None, "source")
    pieces = {secret[i : i + 4] for i in range(len(secret) - 3)}
    for shown in (str(raised.value), MASKER.mask(f"source {url} failed")):
        assert not {p for p in pieces if p in shown}, shown


def test_secret_looking_keys_of_an_unknown_connector_are_masked() -> None:
    config = {
        "key": "k-5c1a",
        "tunnel": {"ssh_key": "ssh-9f2e", "port": 22, "user": "bob-the-user"},
        "api_token": 77441199,
        "primary_key": "pk-column-name",
        "password": "",
    }
    register_config_secrets(ConnectorInfo("source-unknown", "source"), config)
    shown = MASKER.mask("k-5c1a ssh-9f2e 77441199 port 22 bob-the-user pk-column-name")
    assert shown == "**** **** **** port 22 bob-the-user pk-column-name"


def test_a_url_password_is_masked_in_every_message() -> None:
    assert "s3cr3t-url" not in MASKER.mask("cannot connect to postgresql://me:s3cr3t-url@h/db")
    report = json.dumps({"url": "mysql://root:pw-999@h/db"})
    assert "pw-999" not in MASKER.mask(report)
