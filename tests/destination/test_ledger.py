"""The state ledger (dbkit.destination.ledger): which STATE is echoed, when, in which order,
with which record count."""

from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from dbkit.destination.ledger import StateLedger
from dbkit.protocol import MessageWriter, StreamDescriptor


@dataclass(eq=False)
class Stream:
    descriptor: StreamDescriptor
    added: int = 0
    first_line: int | None = None
    loading: deque[tuple[int, int]] = field(default_factory=deque)


def _ledger(*names: str) -> tuple[StateLedger, io.BytesIO, dict[str, Stream]]:
    out = io.BytesIO()
    streams = {n: Stream(StreamDescriptor(n)) for n in names}
    return StateLedger(MessageWriter(out), list(streams.values())), out, streams


def _echoed(out: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(line)["state"] for line in out.getvalue().splitlines()]


def _stream_state(name: str, n: int) -> dict[str, Any]:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": {"n": n}}}


def test_a_state_waits_for_the_records_before_it_and_states_keep_their_order() -> None:
    ledger, out, s = _ledger("a", "b")
    s["a"].added, s["a"].first_line = 2, 1  # two records of a buffered, from line 1
    ledger.stream_state(3, _stream_state("a", 1), s["a"])
    s["b"].added = 1
    ledger.stream_state(5, _stream_state("b", 1), s["b"])  # b has nothing buffered
    assert ledger.release() == 0  # b's state waits behind a's: order is kept
    s["a"].first_line = None
    s["a"].loading.append((1, 1))  # a's records handed to load job 1, not committed
    assert ledger.release() == 0
    s["a"].loading.popleft()  # committed
    assert ledger.release() == 2
    echoed = _echoed(out)
    assert [e["stream"]["stream_descriptor"]["name"] for e in echoed] == ["a", "b"]
    assert [e["destinationStats"]["recordCount"] for e in echoed] == [2.0, 1.0]
    assert ledger.echoed == 2
    assert ledger.oldest_arrival() is None


def test_records_after_a_state_do_not_hold_it_back() -> None:
    ledger, out, s = _ledger("a")
    ledger.stream_state(1, _stream_state("a", 0), s["a"])
    s["a"].added, s["a"].first_line = 1, 2  # a record after the state
    assert ledger.release() == 1
    assert _echoed(out)[0]["destinationStats"] == {"recordCount": 0.0}


def test_counts_are_per_stream_since_its_last_state_and_global_since_the_last_global() -> None:
    ledger, out, s = _ledger("a", "b")
    s["a"].added = 3
    ledger.stream_state(4, _stream_state("a", 1), s["a"])
    s["a"].added, s["b"].added = 5, 4
    ledger.stream_state(10, _stream_state("a", 2), s["a"])
    ledger.global_state(11, {"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": []}})
    s["b"].added = 6
    ledger.global_state(12, {"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": []}})
    assert ledger.release() == 4
    assert [e["destinationStats"]["recordCount"] for e in _echoed(out)] == [3.0, 2.0, 9.0, 2.0]


def test_a_global_state_waits_for_every_stream() -> None:
    ledger, out, s = _ledger("a", "b")
    s["b"].loading.append((7, 2))
    ledger.global_state(3, {"type": "GLOBAL", "global": {"shared_state": {"lsn": 1}}})
    assert ledger.release() == 0
    assert ledger.oldest_arrival() is not None
    s["b"].loading.clear()
    assert ledger.release() == 1
    assert _echoed(out)[0]["global"]["shared_state"] == {"lsn": 1}
