"""The one checkpoint loop (``SourceReader._run_job``), with fake read jobs: the job yields lines
and opaque checkpoints; the reader alone decides when a STATE is emitted, and orders it after the
lines it covers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pytest

from dbkit.protocol import StreamDescriptor
from dbkit.source.jobs import Cancelled, ReadChunk
from dbkit.source.reader import ReadOptions, SourceReader
from dbkit.source.state import StreamState

STREAM = StreamDescriptor("t")


@dataclass(frozen=True)
class Mark(StreamState):
    label: Any

    def to_json(self) -> dict[str, Any]:
        return {"mark": self.label}


class Writer:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.flushes = 0

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def write_lines(self, lines: list[bytes]) -> None:
        self.lines.extend(lines)

    def flush(self) -> None:
        self.flushes += 1

    def events(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for line in self.lines:
            message = orjson.loads(line)
            if message["type"] == "STATE":
                state = message["state"]
                out.append(("STATE", (state["stream"]["stream_state"], state["sourceStats"]["recordCount"])))
            else:
                out.append(("LINE", message["n"]))
        return out


class FakeJob:
    """Chunks of ``sizes`` lines; chunk i carries ``Mark(i)`` when ``i`` is in ``resumable``."""

    def __init__(self, sizes: list[int], resumable: set[int], fail_at: int | None = None) -> None:
        self.sizes = sizes
        self.resumable = resumable
        self.fail_at = fail_at
        self.warnings: list[str] = ["before reading"]
        self.closed = False
        self.final_calls = 0

    def chunks(self) -> Iterator[ReadChunk]:
        n = 0
        try:
            for i, size in enumerate(self.sizes):
                if i == self.fail_at:
                    raise RuntimeError("the database went away")
                if i == 1:
                    self.warnings.append("while reading")
                lines = [orjson.dumps({"type": "RECORD", "n": n + k}) + b"\n" for k in range(size)]
                n += size
                yield ReadChunk(lines, size, Mark(i) if i in self.resumable else None)
        finally:
            self.closed = True

    def final_state(self) -> StreamState:
        self.final_calls += 1
        return Mark("final")


def reader(options: ReadOptions) -> tuple[SourceReader, Writer, list[str]]:
    writer = Writer()
    logs: list[str] = []
    source_reader = SourceReader(
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        cast(Any, writer),
        options,
        lambda level, text: logs.append(f"{level} {text}"),
    )
    return source_reader, writer, logs


def test_states_follow_the_lines_they_cover_at_the_record_cadence() -> None:
    source_reader, writer, _ = reader(
        ReadOptions(checkpoint_records=3, checkpoint_seconds=3600, max_concurrent_streams=1)
    )
    job = FakeJob([2, 2, 2, 2, 2], resumable={0, 2, 4})
    total = source_reader._run_job(job, STREAM)
    assert total == 10
    assert writer.events() == [
        ("LINE", 0),
        ("LINE", 1),  # chunk 0: 2 records, not due yet
        ("LINE", 2),
        ("LINE", 3),  # chunk 1: due (4), but not a resumable point
        ("LINE", 4),
        ("LINE", 5),
        ("STATE", ({"mark": 2}, 6.0)),  # chunk 2: the first resumable point once due
        ("LINE", 6),
        ("LINE", 7),
        ("LINE", 8),
        ("LINE", 9),
        ("STATE", ({"mark": 4}, 4.0)),
        ("STATE", ({"mark": "final"}, 0.0)),
    ]
    assert job.final_calls == 1
    assert job.closed


def test_states_at_the_time_cadence() -> None:
    source_reader, writer, _ = reader(
        ReadOptions(checkpoint_records=1000, checkpoint_seconds=1e-9, max_concurrent_streams=1)
    )
    source_reader._run_job(FakeJob([1, 1, 1], resumable={0, 1, 2}), STREAM)
    states = [e[1] for e in writer.events() if e[0] == "STATE"]
    assert states == [({"mark": 0}, 1.0), ({"mark": 1}, 1.0), ({"mark": 2}, 1.0), ({"mark": "final"}, 0.0)]


def test_a_job_without_resumable_points_gets_only_the_final_state() -> None:
    source_reader, writer, _ = reader(
        ReadOptions(checkpoint_records=1, checkpoint_seconds=1e-9, max_concurrent_streams=1)
    )
    source_reader._run_job(FakeJob([2, 3], resumable=set()), STREAM)
    states = [e[1] for e in writer.events() if e[0] == "STATE"]
    assert states == [({"mark": "final"}, 5.0)]


def test_warnings_are_logged_as_they_appear() -> None:
    source_reader, _, logs = reader(ReadOptions(10_000, 60.0, 1))
    source_reader._run_job(FakeJob([1, 1, 1], resumable=set()), STREAM)
    assert logs == ["WARN stream t: before reading", "WARN stream t: while reading"]


def test_a_failing_job_emits_no_final_state_and_is_closed() -> None:
    source_reader, writer, _ = reader(
        ReadOptions(checkpoint_records=1, checkpoint_seconds=3600, max_concurrent_streams=1)
    )
    job = FakeJob([1, 1, 1], resumable={0, 1, 2}, fail_at=2)
    with pytest.raises(RuntimeError):
        source_reader._run_job(job, STREAM)
    states = [e[1] for e in writer.events() if e[0] == "STATE"]
    assert states == [({"mark": 0}, 1.0), ({"mark": 1}, 1.0)]
    assert job.closed
    assert job.final_calls == 0


def test_a_cancelled_read_stops_before_the_next_chunk_and_closes_the_job() -> None:
    source_reader, writer, _ = reader(
        ReadOptions(checkpoint_records=1, checkpoint_seconds=3600, max_concurrent_streams=1)
    )
    job = FakeJob([1, 1, 1], resumable={0, 1, 2})
    chunks = job.chunks

    def cancelling() -> Iterator[ReadChunk]:
        for i, chunk in enumerate(chunks()):
            if i == 1:
                source_reader.cancel.event.set()
            yield chunk

    job.chunks = cancelling  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        source_reader._run_job(job, STREAM)
    assert writer.events() == [("LINE", 0), ("STATE", ({"mark": 0}, 1.0))]
    assert job.closed
