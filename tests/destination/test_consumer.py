"""The consumer (dbkit.destination.consumer) driven through destination-sqlite: STATE echoes,
their counts and order, the flush policy, and what an invalid input does."""

from __future__ import annotations

import time
from typing import Any

import pytest

FIELDS = {"id": "integer", "v": "string"}


def _ids(dest: Any, table: str) -> list[int]:
    try:
        return [r["id"] for r in dest.rows(table, order_by="id")]
    except Exception:  # the table may not exist yet
        return []


def _wait_for(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


# ------------------------------------------------------------------ echo only after commit


def test_state_echoed_only_after_its_records_are_committed(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    run = piped(m.catalog(m.stream("s", FIELDS)), batch_records=2)
    run.send(*(m.record("s", {"id": i}) for i in (1, 2, 3)), m.state("s", {"after": 3}, id=1))
    # record 3 is still buffered (batch of 2): the state must wait
    assert run.next_message(timeout=0.5) is None
    assert _ids(dest, "s") == [1, 2]
    run.send(m.record("s", {"id": 4}))  # completes the batch: 3 and 4 are loaded, then the echo
    echo = run.next_message()
    assert echo is not None
    assert _ids(dest, "s") == [1, 2, 3, 4]  # committed when the echo was read
    assert echo["state"]["stream"]["stream_state"] == {"after": 3}
    assert echo["state"]["id"] == 1
    assert echo["state"]["destinationStats"] == {"recordCount": 3.0}
    # a state with nothing buffered before it is echoed at once
    run.send(m.state("s", {"after": 4}, id=2))
    echo = run.next_message()
    assert echo is not None
    assert echo["state"]["id"] == 2
    assert echo["state"]["destinationStats"] == {"recordCount": 1.0}
    run.send(m.status("s"))
    assert run.close() == 0


def test_a_state_waits_for_every_stream_it_covers(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("a", FIELDS), m.stream("b", FIELDS))
    run = piped(cat, batch_records=2)
    run.send(
        m.record("a", {"id": 1}), m.record("b", {"id": 1}), m.global_state({"lsn": 1}, {"a": None, "b": None})
    )
    assert run.next_message(timeout=0.3) is None
    run.send(m.record("a", {"id": 2}))  # a flushes; b still holds a record from before the state
    assert run.next_message(timeout=0.3) is None
    run.send(m.status("b"))  # COMPLETE flushes b
    echo = run.next_message()
    assert echo is not None
    assert echo["state"]["global"]["shared_state"] == {"lsn": 1}
    assert _ids(dest, "a") == [1, 2]
    assert _ids(dest, "b") == [1]
    run.send(m.status("a"))
    assert run.close() == 0


# ------------------------------------------------------------------ echo content and order


def test_stream_states_echoed_in_order_with_counts_and_unknown_fields(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("a", FIELDS), m.stream("b", FIELDS))
    lines = [
        m.record("a", {"id": 1}),
        m.record("a", {"id": 2}),
        m.record("b", {"id": 1}),
        m.state("a", {"a": 2}, id=1, sourceStats={"recordCount": 2.0}, extra={"kept": [1, 2]}),
        m.record("b", {"id": 2}),
        m.state("b", {"b": 2}, id=2, sourceStats={"recordCount": 2.0}),
        m.record("a", {"id": 3}),
        m.state("a", {"a": 3}, id=3),
        m.state("b", {"b": 2}, id=4),
        {"type": "LOG", "log": {"level": "INFO", "message": "ignored"}},
        b"",
        m.status("a"),
        m.status("b"),
    ]
    result = dest.ok(cat, lines, batch_records=1000)
    states = result.states
    assert [s["id"] for s in states] == [1, 2, 3, 4]
    assert [s["destinationStats"]["recordCount"] for s in states] == [2.0, 2.0, 1.0, 0.0]
    assert states[0] == {
        "type": "STREAM",
        "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"a": 2}},
        "id": 1,
        "sourceStats": {"recordCount": 2.0},
        "extra": {"kept": [1, 2]},
        "destinationStats": {"recordCount": 2.0},
    }
    assert b'"recordCount":2.0' in result.raw  # a float, as the protocol asks
    assert _ids(dest, "a") == [1, 2, 3]
    assert _ids(dest, "b") == [1, 2]


def test_global_states_count_all_records_since_the_previous_global(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("a", FIELDS), m.stream("b", FIELDS))
    lines = [
        m.record("a", {"id": 1}),
        m.record("b", {"id": 1}),
        m.record("b", {"id": 2}),
        m.global_state({"lsn": 10}, {"a": {"x": 1}, "b": None}, id=7),
        m.record("a", {"id": 2}),
        m.global_state({"lsn": 20}, {"a": {"x": 2}, "b": None}, id=8),
        m.global_state({"lsn": 30}, {"a": {"x": 2}, "b": None}, id=9),
        m.status("a"),
        m.status("b"),
    ]
    states = dest.ok(cat, lines, batch_records=2).states
    assert [s["global"]["shared_state"] for s in states] == [{"lsn": 10}, {"lsn": 20}, {"lsn": 30}]
    assert [s["id"] for s in states] == [7, 8, 9]
    assert [s["destinationStats"]["recordCount"] for s in states] == [3.0, 1.0, 0.0]
    assert states[0]["global"]["stream_states"][0] == {
        "stream_descriptor": {"name": "a"},
        "stream_state": {"x": 1},
    }


# ------------------------------------------------------------------ flush policy


def test_flush_by_record_count(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    run = piped(m.catalog(m.stream("s", FIELDS)), batch_records=3)
    run.send(*(m.record("s", {"id": i}) for i in range(1, 6)))
    assert _wait_for(lambda: _ids(dest, "s") == [1, 2, 3])
    time.sleep(0.2)
    assert _ids(dest, "s") == [1, 2, 3]  # 4 and 5 wait for a third record
    run.send(m.record("s", {"id": 6}))
    assert _wait_for(lambda: _ids(dest, "s") == [1, 2, 3, 4, 5, 6])
    run.send(m.status("s"))
    assert run.close() == 0


def test_flush_by_bytes(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    run = piped(m.catalog(m.stream("s", FIELDS)), batch_megabytes=0.001)  # ~1 KB
    padding = "x" * 400
    run.send(m.record("s", {"id": 1, "v": padding}), m.record("s", {"id": 2, "v": padding}))
    time.sleep(0.2)
    assert _ids(dest, "s") == []  # about 900 bytes: below the limit
    run.send(m.record("s", {"id": 3, "v": padding}))
    assert _wait_for(lambda: _ids(dest, "s") == [1, 2, 3])
    run.send(m.status("s"))
    assert run.close() == 0


def test_flush_by_memory_loads_the_largest_buffer(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("small", FIELDS), m.stream("large", FIELDS))
    run = piped(cat, memory_megabytes=0.002)  # ~2 KB across all buffers
    first = [m.record("small", {"id": 1, "v": "x" * 200})]
    first += [m.record("large", {"id": i, "v": "y" * 400}) for i in (1, 2, 3)]
    assert 1500 < len(m.encode(first)) < 1800
    run.send(*first)
    time.sleep(0.2)
    assert _ids(dest, "large") == []
    assert _ids(dest, "small") == []
    run.send(m.record("small", {"id": 2, "v": "x" * 600}))  # now above, "large" is the largest
    assert _wait_for(lambda: _ids(dest, "large") == [1, 2, 3])
    assert _ids(dest, "small") == []  # only the largest buffer was loaded
    run.send(m.status("small"), m.status("large"))
    assert run.close() == 0
    assert _ids(dest, "small") == [1, 2]


def test_flush_by_time_while_the_input_is_idle(dest: Any, msgs: Any, piped: Any) -> None:
    m = msgs
    run = piped(m.catalog(m.stream("s", FIELDS)), flush_seconds=0.3)
    started = time.monotonic()
    run.send(m.record("s", {"id": 1}), m.state("s", {"n": 1}, id=1))
    echo = run.next_message(timeout=5)  # no more input: the time limit alone flushes
    assert echo is not None
    assert echo["state"]["id"] == 1
    assert 0.25 <= time.monotonic() - started < 4
    assert _ids(dest, "s") == [1]
    run.send(m.record("s", {"id": 2}))
    assert _wait_for(lambda: _ids(dest, "s") == [1, 2])  # a record alone also goes in on time
    run.send(m.status("s"))
    assert run.close() == 0


# ------------------------------------------------------------------ invalid input


def _bad_lines(m: Any) -> dict[str, Any]:
    return {
        "malformed": (b'{"type": "RECORD", "record": ', "not valid JSON"),
        "not an object": (b"[1, 2]", "must be a JSON object"),
        "unknown stream": (m.record("nope", {"id": 1}), "'nope', which is not in the configured catalog"),
        "unknown namespace": (m.record("s", {"id": 1}, namespace="other"), "'other.s', which is not in"),
        "record without data": (
            {"type": "RECORD", "record": {"stream": "s", "emitted_at": 1}},
            "without a 'data'",
        ),
        "legacy state": ({"type": "STATE", "state": {"data": {"x": 1}}}, "only STREAM and GLOBAL"),
        "state of an unknown stream": (m.state("nope", {"x": 1}), "'nope', which is not in"),
        "state without descriptor": (
            {"type": "STATE", "state": {"type": "STREAM", "stream": {}}},
            "stream_descriptor",
        ),
        "unknown type": ({"type": "SURPRISE"}, "unknown message type 'SURPRISE'"),
        # a lone surrogate is repaired in a RECORD's values only: a STATE must echo unchanged
        "state with a lone surrogate": (
            b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s"},'
            b'"stream_state":{"x":"\\udc00"}}}}',
            "not valid JSON",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "not an object",
        "unknown stream",
        "unknown namespace",
        "record without data",
        "legacy state",
        "state of an unknown stream",
        "state without descriptor",
        "unknown type",
        "state with a lone surrogate",
    ],
)
def test_invalid_line_stops_the_write(dest: Any, msgs: Any, case: str) -> None:
    m = msgs
    bad, problem = _bad_lines(m)[case]
    cat = m.catalog(m.stream("s", FIELDS))
    lines = [
        m.record("s", {"id": 1}),
        m.state("s", {"n": 1}, id=1),
        m.record("s", {"id": 2}),
        m.state("s", {"n": 2}, id=2),
        m.record("s", {"id": 3}),  # line 5: before the bad line, committed (no state covers it)
        bad,  # line 6
        m.record("s", {"id": 4}),
        m.state("s", {"n": 4}, id=3),
        m.status("s"),
    ]
    result = dest.write(cat, lines, batch_records=1000)
    assert result.code == 1
    error = result.error
    assert error["failure_type"] == "system_error"
    assert error["message"].startswith("line 6 of the input: ")
    assert problem in error["message"]
    assert [s["id"] for s in result.states] == [1, 2]
    assert [s["destinationStats"]["recordCount"] for s in result.states] == [1.0, 1.0]
    assert _ids(dest, "s") == [1, 2, 3]
    # no echo after the error
    kinds = [msg["type"] for msg in result.messages]
    assert kinds.index("TRACE") > max(i for i, k in enumerate(kinds) if k == "STATE")


def test_record_after_complete_stops_the_write(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("s", FIELDS), m.stream("t", FIELDS))
    lines = [
        m.record("s", {"id": 1}),
        m.record("t", {"id": 1}),
        m.status("s"),
        m.state("s", {"n": 1}, id=1),
        m.record("s", {"id": 2}),  # line 5
        m.state("t", {"n": 1}, id=2),
    ]
    result = dest.write(cat, lines)
    assert result.code == 1
    assert result.error["message"].startswith("line 5 of the input: RECORD of s after its COMPLETE status")
    assert [s["id"] for s in result.states] == [1]
    assert _ids(dest, "s") == [1]
    assert _ids(dest, "t") == [1]  # loaded: it came before the bad line


def test_status_for_a_stream_not_in_the_catalog_is_ignored(dest: Any, msgs: Any) -> None:
    m = msgs
    result = dest.ok(
        m.catalog(m.stream("s", FIELDS)), [m.record("s", {"id": 1}), m.status("other"), m.status("s")]
    )
    assert any(
        msg["type"] == "LOG" and "not in the catalog" in msg["log"]["message"] for msg in result.messages
    )
    assert _ids(dest, "s") == [1]


@pytest.mark.parametrize("ending", ["no status", "INCOMPLETE"])
def test_input_ending_without_complete(dest: Any, msgs: Any, ending: str) -> None:
    m = msgs

    def cat_of(generation: int) -> Any:
        over = m.stream(
            "over", FIELDS, "overwrite", generation_id=generation, minimum_generation_id=generation
        )
        return m.catalog(m.stream("app", FIELDS), over)

    # a first, complete sync of the overwrite stream; then a refresh of the next generation
    dest.ok(cat_of(1), [m.record("over", {"id": 100}), m.status("over"), m.status("app")])
    cat = cat_of(2)
    lines = [
        m.record("app", {"id": 1}),
        m.record("over", {"id": 1}),
        m.state("app", {"n": 1}, id=1),
        m.state("over", {"n": 1}, id=2),
        m.record("app", {"id": 2}),
    ]
    if ending == "INCOMPLETE":
        lines += [m.status("app", "INCOMPLETE"), m.status("over", "INCOMPLETE")]
    result = dest.write(cat, lines, batch_records=1000)
    assert result.code == 1
    error = result.error
    assert error["failure_type"] == "transient_error"
    assert "without a COMPLETE status for stream(s) app, over" in error["message"]
    assert "the refreshed data of over was not swapped in" in error["message"]
    assert [s["id"] for s in result.states] == [1, 2]
    assert _ids(dest, "app") == [1, 2]  # append data committed
    assert _ids(dest, "over") == [100]  # the previous table is intact
    assert sorted(dest.tables()) == ["app", "over", "over_airbyte_tmp"]
    assert _ids(dest, "over_airbyte_tmp") == [1]
