"""The read loop: stream statuses, errors per stream, STATE counts, concurrency, estimates."""

from __future__ import annotations

from typing import Any

import pytest


def make_tables(db: Any, count: int = 5, rows: int = 11) -> None:
    for t in range(count):
        db.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, name TEXT, cur INTEGER, data BLOB)")
        db.insert(f"t{t}", [(i, f"r{t}-{i}", i // 3, bytes([i])) for i in range(rows + t)])


def strip_times(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m["type"] == "RECORD":
            m = {**m, "record": {k: v for k, v in m["record"].items() if k != "emitted_at"}}
        out.append(m)
    return out


def per_stream(read: Any, name: str) -> list[Any]:
    """The RECORD and STATE messages of one stream, in order, without their emission times."""
    return strip_times(
        [
            m
            for m in read.messages
            if (m["type"] == "RECORD" and m["record"]["stream"] == name)
            or (m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == name)
        ]
    )


def test_statuses_and_state_counts(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=2)
    streams = [sqlite_db.configure("t0"), sqlite_db.configure("t1", "incremental", cursor="cur")]
    read = sqlite_db.read(streams, checkpoint_records=4)
    assert read.rc == 0
    for name, rows in (("t0", 11), ("t1", 12)):
        assert read.statuses(name) == ["STARTED", "COMPLETE"]
        counted = 0
        total = 0
        for kind, payload in read.timeline(name):
            if kind == "RECORD":
                counted += 1
                total += 1
            else:
                assert payload["sourceStats"]["recordCount"] == counted
                counted = 0
        assert counted == 0  # the last message of a stream is its final STATE
        assert total == rows
    # STARTED comes before the stream's first record, COMPLETE after its final STATE
    kinds = [
        (m["type"], m.get("trace", {}).get("stream_status", {}).get("status"))
        for m in read.messages
        if m["type"] != "RECORD"
        and (m["type"] != "TRACE" or m["trace"]["stream_status"]["stream_descriptor"]["name"] == "t0")
        and (m["type"] != "STATE" or m["state"]["stream"]["stream_descriptor"]["name"] == "t0")
    ]
    assert kinds[0] == ("TRACE", "STARTED")
    assert kinds[-1] == ("TRACE", "COMPLETE")
    assert kinds[-2] == ("STATE", None)


def test_checkpoint_seconds_alone_triggers_states(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=1, rows=30)
    read = sqlite_db.read(sqlite_db.configure("t0"), checkpoint_records=10_000, checkpoint_seconds=1e-9)
    # one STATE per fetched batch (batches are min(fetch size, checkpoint_records) rows): here 1 + final
    assert len(read.states("t0")) == 2
    assert read.states("t0")[0]["after"] == [29]


def test_dropped_table_fails_only_its_stream(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=3)
    streams = [sqlite_db.configure(f"t{t}") for t in range(3)]
    sqlite_db.execute("DROP TABLE t1")
    read = sqlite_db.read(streams)
    assert read.rc == 1
    assert read.statuses("t0") == ["STARTED", "COMPLETE"]
    assert read.statuses("t1") == ["STARTED", "INCOMPLETE"]
    assert read.statuses("t2") == ["STARTED", "COMPLETE"]
    assert len(read.records("t0")) == 11
    assert len(read.records("t2")) == 13
    assert read.records("t1") == []
    assert read.states("t1") == []
    errors = read.errors()
    assert len(errors) == 1
    assert errors[0]["failure_type"] == "config_error"
    assert errors[0]["stream_descriptor"] == {"name": "t1"}
    assert "t1" in errors[0]["message"]
    assert "not found" in errors[0]["message"]


def test_removed_column_is_a_config_error_naming_it(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, keep TEXT, gone TEXT)")
    sqlite_db.insert("t", [(1, "a", "b")])
    configured = sqlite_db.configure("t")
    sqlite_db.execute("ALTER TABLE t DROP COLUMN gone")
    read = sqlite_db.read(configured)
    assert read.rc == 1
    assert read.statuses("t") == ["STARTED", "INCOMPLETE"]
    (error,) = read.errors()
    assert error["failure_type"] == "config_error"
    assert "'gone'" in error["message"]
    assert "discover" in error["message"]
    # the columns the user chose are what is read; unchosen ones are not emitted
    chosen = sqlite_db.configure("t", columns=["keep"])
    read = sqlite_db.read(chosen)
    assert read.records("t") == [{"keep": "a"}]


def test_incremental_without_a_cursor_lists_candidates(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, stamp DATETIME, payload BLOB)")
    configured = sqlite_db.configure("t", "incremental")
    assert "default_cursor_field" not in configured["stream"]
    read = sqlite_db.read(configured)
    assert read.rc == 1
    (error,) = read.errors()
    assert error["failure_type"] == "config_error"
    assert "no cursor field" in error["message"]
    assert "id, stamp" in error["message"]
    assert "payload" not in error["message"]
    assert read.statuses("t") == ["STARTED", "INCOMPLETE"]


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("payload", "cannot be a cursor"),
        ("nope", "is not a column"),
    ],
)
def test_bad_cursor_fields(sqlite_db: Any, cursor: str, message: str) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, stamp DATETIME, payload BLOB)")
    stream = sqlite_db.discover()["t"]
    read = sqlite_db.read(sqlite_db.configure("t", "incremental", cursor=cursor, stream=stream))
    assert read.rc == 1
    (error,) = read.errors()
    assert error["failure_type"] == "config_error"
    assert message in error["message"]
    assert repr(cursor) in error["message"]
    if cursor == "payload":
        assert "id, stamp" in error["message"]


def test_nested_cursor_field_is_refused(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON)")
    configured = sqlite_db.configure("t", "incremental")
    configured["cursor_field"] = ["doc", "updated"]
    read = sqlite_db.read(configured)
    assert read.rc == 1
    assert "nested" in read.errors()[0]["message"]


def test_default_cursor_field_is_used_when_none_is_configured(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, updated_at INTEGER)")
    sqlite_db.insert("t", [(1, 5), (2, 6)])
    configured = sqlite_db.configure("t", "incremental")
    first = sqlite_db.read(configured)
    assert first.states("t")[-1]["cursor_field"] == ["updated_at"]
    assert first.states("t")[-1]["position"]["cursor"] == 6
    assert sqlite_db.read(configured, state=first.state_messages("t")).records("t") == []


def test_concurrent_streams_give_the_same_records_and_states(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=5, rows=25)
    streams = [
        sqlite_db.configure(
            f"t{t}", "incremental" if t % 2 else "full_refresh", cursor="cur" if t % 2 else None
        )
        for t in range(5)
    ]
    serial = sqlite_db.read(streams, checkpoint_records=3, max_concurrent_streams=1)
    parallel = sqlite_db.read(streams, checkpoint_records=3, max_concurrent_streams=3)
    assert serial.rc == parallel.rc == 0
    for t in range(5):
        name = f"t{t}"
        assert per_stream(parallel, name) == per_stream(serial, name)
        assert parallel.statuses(name) == ["STARTED", "COMPLETE"]
        assert len(parallel.records(name)) == 25 + t
    # and resuming each stream from a parallel read's states works the same
    states = [parallel.state_messages(f"t{t}")[2] for t in range(5)]
    resumed_serial = sqlite_db.read(streams, state=states, checkpoint_records=3)
    resumed_parallel = sqlite_db.read(streams, state=states, checkpoint_records=3, max_concurrent_streams=3)
    for t in range(5):
        assert per_stream(resumed_parallel, f"t{t}") == per_stream(resumed_serial, f"t{t}")
        assert len(resumed_serial.records(f"t{t}")) == 25 + t - 9


def test_concurrent_streams_with_one_failing(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=4)
    streams = [sqlite_db.configure(f"t{t}") for t in range(4)]
    sqlite_db.execute("DROP TABLE t2")
    read = sqlite_db.read(streams, max_concurrent_streams=3)
    assert read.rc == 1
    assert [read.statuses(f"t{t}")[-1] for t in range(4)] == [
        "COMPLETE",
        "COMPLETE",
        "INCOMPLETE",
        "COMPLETE",
    ]
    assert [e["stream_descriptor"] for e in read.errors()] == [{"name": "t2"}]


def test_full_refresh_state_for_another_key_reads_everything_with_a_warning(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    sqlite_db.insert("t", [(i, "x") for i in range(5)])
    configured = sqlite_db.configure("t")
    state = {
        "type": "STREAM",
        "stream": {
            "stream_descriptor": {"name": "t"},
            "stream_state": {"v": 1, "mode": "full_refresh", "by": ["rowid"], "after": [3]},
        },
    }
    read = sqlite_db.read(configured, state=[state])
    assert len(read.records("t")) == 5
    assert len(read.logs("WARN")) == 1
    assert "does not match" in read.logs("WARN")[0]


def test_a_state_for_an_unconfigured_stream_is_ignored(sqlite_db: Any) -> None:
    make_tables(sqlite_db, count=1)
    other = {
        "type": "STREAM",
        "stream": {"stream_descriptor": {"name": "elsewhere"}, "stream_state": {"anything": 1}},
    }
    read = sqlite_db.read(sqlite_db.configure("t0"), state=[other])
    assert read.rc == 0
    assert len(read.records("t0")) == 11
