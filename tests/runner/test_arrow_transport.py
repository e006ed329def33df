"""The Arrow transport between two dbkit connectors (``dbkit sync --protocol``): frames, the
destination's reader of an input with frames, the pump, and the negotiation (arrow only when
both ends declare it; JSON lines for any other peer; ``--protocol arrow`` refused then)."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from dbkit import cli
from dbkit.destination.input import InputError, InputReader
from dbkit.protocol import (
    DestinationSyncMode,
    FrameError,
    StreamDescriptor,
    SyncMode,
    decode_body,
    encode_frame,
    frame_schema,
    parse_header,
)
from dbkit.runner import Pump, QuietObserver, StreamProgress, SyncProgress
from dbkit.runner.registry import ConnectorInfo, registered
from destination_sqlite import SqliteDestination


def frame(stream: str, datas: list[bytes], metas: list[bytes | None] | None = None) -> bytes:
    batch = pa.RecordBatch.from_arrays(
        [pa.array(datas, pa.binary()), pa.array(metas or [None] * len(datas), pa.binary())],
        schema=frame_schema(),
    )
    return encode_frame(stream, "ns", 1700000000000, batch)


def test_a_frame_round_trips_and_bad_ones_are_refused() -> None:
    item = frame("s", [b'{"a":1}', b'{"a":"\\n"}'], [None, b'{"changes":[]}'])
    newline = item.index(b"\n")
    header = parse_header(item[:newline])
    assert (header.stream, header.namespace, header.records) == ("s", "ns", 2)
    batch = decode_body(header, item[newline + 1 :])
    assert batch.column(0).to_pylist() == [b'{"a":1}', b'{"a":"\\n"}']
    assert batch.column(1).to_pylist() == [None, b'{"changes":[]}']
    for bad in (b"#ARROW nope", b'#ARROW {"stream":1}', b'#ARROW {"stream":"s","records":-1}'):
        with pytest.raises(FrameError):
            parse_header(bad)
    with pytest.raises(FrameError, match="ended after"):
        decode_body(header, item[newline + 1 : -1])


class Trickle(io.RawIOBase):
    """A pipe that gives at most ``step`` bytes per read (frames and lines cut anywhere)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self.data[self.pos : self.pos + min(self.step, len(buffer))]
        buffer[: len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_the_reader_hands_over_whole_lines_and_whole_frames(step: int) -> None:
    first, second = frame("s", [b'{"i":%d}' % i for i in range(300)]), frame("s", [b"{}"])
    stream = b'{"type":"LOG"}\n' + first + b'{"type":"STATE"}\n' + first + second + b"\n{}\n"
    items = [
        item
        for chunk in InputReader(Trickle(stream, step), frames=True).chunks(lambda: None)  # type: ignore[arg-type]
        if chunk is not None
        for item in chunk
    ]
    assert items == [b'{"type":"LOG"}', first, b'{"type":"STATE"}', first, second, b"", b"{}"]


def test_frames_read_ahead_of_a_slow_consumer_stay_within_the_byte_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reader queues at most ``QUEUED_FRAME_BYTES`` (or one item larger than that) ahead of
    the consumer, not eight frames of any size; every frame still arrives, in order."""
    import time

    from dbkit.destination import input as input_module

    frames = [frame("s", [b'{"i":%d,"pad":"%s"}' % (i, b"x" * 200)] * 40) for i in range(30)]
    size = len(frames[0])
    monkeypatch.setattr(input_module, "QUEUED_FRAME_BYTES", 3 * size)
    reader = InputReader(Trickle(b"".join(frames), size), frames=True)  # type: ignore[arg-type]
    got = []
    for chunk in reader.chunks(lambda: None):
        if chunk is not None:
            got.extend(chunk)
            time.sleep(0.005)  # a consumer slower than the reader
    assert got == frames
    assert size <= reader.budget.peak <= 4 * size  # plus at most one read's items
    assert reader.budget.used == 0


def test_a_cut_frame_is_an_input_error() -> None:
    cut = frame("s", [b"{}"] * 10)[:-3]
    with pytest.raises(InputError, match="ended inside a frame"):
        list(InputReader(io.BytesIO(b"{}\n" + cut), frames=True).chunks(lambda: None))


def test_the_pump_forwards_frames_and_counts_their_records() -> None:
    stream = StreamProgress(
        StreamDescriptor("s", "ns"), SyncMode.FULL_REFRESH, DestinationSyncMode.OVERWRITE, 0
    )
    progress = SyncProgress(sync_id=1, streams=[stream], started_at=0.0)
    item = frame("s", [b"{}"] * 5)
    out = io.BytesIO()
    source = io.BufferedReader(
        io.BytesIO(item + b'{"type":"RECORD","record":{"stream":"s","namespace":"ns","data":{}}}\n')
    )
    Pump(source, out, progress, QuietObserver(), frames=True).run()
    assert stream.records_read == 6
    assert out.getvalue().startswith(item)


# ============================================================================ negotiation, end to end


def make_source(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"n\n{i}", i / 4) for i in range(1, 501)])


def rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT id, name, price FROM items ORDER BY id").fetchall()


class PlainDestination(SqliteDestination):
    """A destination that does not declare the Arrow transport (as any non-dbkit peer)."""

    name = "destination-plain"
    arrow_transport: ClassVar[bool] = False


@pytest.mark.parametrize("protocol", ["auto", "arrow", "json"])
def test_every_protocol_between_dbkit_connectors_copies_the_same(
    tmp_path: Path, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    make_source(source)
    args = [
        "sync",
        "--source",
        f"sqlite:///{source}?checkpoint_records=50",
        "--destination",
        f"sqlite:///{warehouse}",
    ]
    args += ["--state-file", str(tmp_path / "state.json"), "--no-progress", "--protocol", protocol, "-v"]
    assert cli.main(args) == 0, capsys.readouterr().err
    assert rows(warehouse) == rows(source)


def test_a_peer_without_the_capability_gets_json_lines_and_arrow_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, warehouse = tmp_path / "source.db", tmp_path / "warehouse.db"
    make_source(source)
    (tmp_path / "dest.json").write_text(json.dumps({"path": str(warehouse)}))
    plain = ConnectorInfo("destination-plain", "destination", factory=PlainDestination)
    base = ["sync", "--source", f"sqlite:///{source}", "--destination", "destination-plain"]
    base += ["--destination-config", str(tmp_path / "dest.json"), "--state-file", str(tmp_path / "s.json")]
    with registered(plain):
        assert cli.main([*base, "--no-progress", "--in-process", "--protocol", "arrow"]) == 1
        assert "destination-plain cannot exchange Arrow frames" in capsys.readouterr().err
        assert not warehouse.exists() or not rows_exist(warehouse)
        assert cli.main([*base, "--no-progress", "--in-process"]) == 0, capsys.readouterr().err
    assert rows(warehouse) == rows(source)


def rows_exist(path: Path) -> bool:
    with closing(sqlite3.connect(path)) as conn:
        return bool(conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'items'").fetchone()[0])
