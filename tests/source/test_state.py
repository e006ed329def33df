"""Source STATE objects: one parser, one serializer, the JSON earlier versions wrote."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dbkit.errors import ConfigError
from dbkit.protocol import StreamDescriptor
from dbkit.source.state import (
    CursorState,
    FullRefreshState,
    GlobalState,
    StreamState,
    parse_global_state,
    parse_stream_state,
)

# States exactly as dbkit wrote them before the state objects (saved states must still resume)
WRITTEN = [
    b'{"v":1,"mode":"full_refresh","complete":true}',
    b'{"v":1,"mode":"full_refresh","by":["id"],"after":[3]}',
    b'{"v":1,"mode":"full_refresh","by":["a","b"],"after":["x","2024-01-01"]}',
    b'{"v":1,"mode":"full_refresh","by":["ctid"],"relation":{"oid":16385,"filenode":16390},'
    b'"ctid_below":"(12,0)","done":[{"oid":16384,"filenode":16384}],"snapshot_xmin":7731}',
    b'{"v":1,"mode":"full_refresh","by":["ctid"],"relation":null,"ctid_below":null,"done":[],'
    b'"snapshot_xmin":12}',
    b'{"v":1,"mode":"incremental","cursor_field":["cur"],"position":null}',
    b'{"v":1,"mode":"incremental","cursor_field":["cur"],"position":{"cursor":5,"seen":["ab12"]}}',
    b'{"v":1,"mode":"incremental","cursor_field":["cur"],"position":{"cursor":"5","by":["id"],'
    b'"after_key":["7"],"seen":[]},"nulls":"done"}',
    b'{"v":1,"mode":"incremental","cursor_field":["cur"],"position":null,"nulls":{"by":["id"],"after":[4]}}',
    b'{"v":1,"mode":"incremental","cursor_field":["cur"],"position":{"cursor":9,"seen":[],'
    b'"seen_overflow":true},"nulls":"pending"}',
]


@pytest.mark.parametrize("written", WRITTEN)
def test_a_saved_state_reads_back_and_writes_the_same_bytes(written: bytes) -> None:
    state = parse_stream_state(orjson.loads(written), "t")
    assert state is not None
    assert orjson.dumps(state.to_json()) == written


def test_the_objects_write_the_format_the_plans_always_wrote() -> None:
    assert FullRefreshState.done().to_json() == {"v": 1, "mode": "full_refresh", "complete": True}
    assert orjson.dumps(FullRefreshState(by=["id"], after=[3]).to_json()) == WRITTEN[1]
    ctid = FullRefreshState(
        by=["ctid"],
        position={
            "relation": {"oid": 16385, "filenode": 16390},
            "ctid_below": "(12,0)",
            "done": [{"oid": 16384, "filenode": 16384}],
            "snapshot_xmin": 7731,
        },
    )
    assert orjson.dumps(ctid.to_json()) == WRITTEN[3]
    cursor = CursorState(cursor_field=["cur"], position={"cursor": 5, "seen": ["ab12"]})
    assert orjson.dumps(cursor.to_json()) == WRITTEN[6]
    nullable = CursorState(cursor_field=["cur"], position=None, nulls={"by": ["id"], "after": [4]})
    assert orjson.dumps(nullable.to_json()) == WRITTEN[8]


def test_parsed_states_are_typed() -> None:
    full = parse_stream_state({"v": 1, "mode": "full_refresh", "by": ["id"], "after": [3]}, "t")
    assert full == FullRefreshState(by=["id"], after=[3])
    done = parse_stream_state({"v": 1, "mode": "full_refresh", "complete": True}, "t")
    assert isinstance(done, FullRefreshState)
    assert done.complete
    cursor = parse_stream_state(orjson.loads(WRITTEN[7]), "t")
    assert isinstance(cursor, CursorState)
    assert cursor.cursor_field == ["cur"]
    assert cursor.nulls == "done"
    assert cursor.position == {"cursor": "5", "by": ["id"], "after_key": ["7"], "seen": []}


def test_no_state_is_none() -> None:
    assert parse_stream_state(None, "t") is None
    assert parse_stream_state({}, "t") is None


def test_a_position_of_a_shape_dbkit_never_writes_is_dropped_not_trusted() -> None:
    """``by``/``after`` that are not lists match no key: the read starts over (with a warning)."""
    state = parse_stream_state({"v": 1, "mode": "full_refresh", "by": "id", "after": 3}, "t")
    assert state == FullRefreshState(by=None, after=None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"v": 99, "mode": "incremental", "cursor_field": ["cur"]}, "format version 99"),
        ({"mode": "incremental", "cursor_field": ["cur"]}, "format version None"),
        ({"v": True, "mode": "full_refresh"}, "format version True"),
        ({"v": "1", "mode": "full_refresh"}, "format version '1'"),
        ({"v": 1, "mode": "cdc"}, "unknown mode 'cdc'"),
        ({"v": 1}, "unknown mode None"),
    ],
)
def test_a_state_dbkit_did_not_write_is_a_config_error(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_stream_state(raw, "public.t")
    assert expected in str(info.value)
    assert "public.t" in str(info.value)
    assert "reset the stream" in str(info.value)


def test_every_state_is_a_stream_state() -> None:
    assert isinstance(FullRefreshState.done(), StreamState)
    assert isinstance(CursorState(cursor_field=["c"]), StreamState)
    with pytest.raises(NotImplementedError):
        StreamState().to_json()


# ------------------------------------------------------------------------------ GLOBAL (CDC)

A = StreamDescriptor("a", "public")
B = StreamDescriptor("b", "public")


def test_a_global_state_round_trips() -> None:
    state = GlobalState(
        position={"lsn": "0/16B3748", "txid": 731},
        streams={A: FullRefreshState.done(), B: FullRefreshState(by=["id"], after=["41"])},
    )
    shared = state.shared_json()
    assert shared == {"v": 1, "mode": "cdc", "position": {"lsn": "0/16B3748", "txid": 731}}
    streams = state.stream_states_json()
    assert list(streams) == [A, B]
    assert streams[B] == {"v": 1, "mode": "full_refresh", "by": ["id"], "after": ["41"]}
    parsed = parse_global_state(orjson.loads(orjson.dumps(shared)), streams)
    assert parsed == state


def test_snapshot_labels_ride_in_the_stream_parts() -> None:
    state = GlobalState(
        position={"id": 9},
        streams={A: FullRefreshState.done(), B: FullRefreshState(by=["id"], after=["41"])},
        labels={A: 7, B: 9},
    )
    streams = state.stream_states_json()
    assert streams[A] == {"v": 1, "mode": "full_refresh", "complete": True, "snapshot_at": 7}
    assert streams[B] == {"v": 1, "mode": "full_refresh", "by": ["id"], "after": ["41"], "snapshot_at": 9}
    parsed = parse_global_state(state.shared_json(), streams)
    assert parsed == state
    assert parsed is not None
    assert parsed.streams[B].position == {}, "the label is no job position"
    with pytest.raises(ConfigError, match="snapshot_at"):
        parse_global_state(state.shared_json(), {A: {**streams[A], "snapshot_at": "7"}})


def test_no_shared_part_is_no_global_state() -> None:
    assert parse_global_state(None, {}) is None
    assert parse_global_state({}, {A: {"v": 1, "mode": "full_refresh", "complete": True}}) is None


def test_a_stream_not_snapshotted_yet_has_no_part() -> None:
    parsed = parse_global_state({"v": 1, "mode": "cdc", "position": {"lsn": "0/1"}}, {A: {}})
    assert parsed == GlobalState(position={"lsn": "0/1"}, streams={})


@pytest.mark.parametrize(
    ("shared", "streams", "expected"),
    [
        ({"v": 2, "mode": "cdc", "position": {}}, {}, "format version 2"),
        ({"v": 1, "mode": "incremental", "position": {}}, {}, "mode 'incremental'"),
        ({"v": 1, "mode": "cdc"}, {}, "no log position"),
        ({"v": 1, "mode": "cdc", "position": "0/1"}, {}, "no log position"),
        (
            {"v": 1, "mode": "cdc", "position": {}},
            {A: {"v": 1, "mode": "incremental", "cursor_field": ["c"], "position": None}},
            "must be a snapshot",
        ),
        ({"v": 1, "mode": "cdc", "position": {}}, {A: {"v": 7, "mode": "full_refresh"}}, "format version 7"),
    ],
)
def test_a_global_state_dbkit_did_not_write_is_a_config_error(
    shared: dict[str, Any], streams: dict[StreamDescriptor, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_global_state(shared, streams)
    assert expected in str(info.value)
