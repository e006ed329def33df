"""Input state parsing: STREAM and GLOBAL documents, and each malformed variant named by path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from airbyte_protocol.models import AirbyteStateMessage

from dbkit.protocol import InputState, ProtocolInputError, StreamDescriptor, loads_exact, parse_state

LONG = "y" * 300

USERS = StreamDescriptor("users")
ORDERS = StreamDescriptor("orders", "shop")


def stream_msg(name: str, blob: Any, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": name}
    if namespace is not None:
        descriptor["namespace"] = namespace
    return {"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": blob}, **extra}


def global_msg(shared: Any, items: list[Any]) -> dict[str, Any]:
    return {"type": "GLOBAL", "global": {"shared_state": shared, "stream_states": items}}


@pytest.mark.parametrize("empty", [None, [], {}])
def test_no_state(empty: Any) -> None:
    state = parse_state(empty)
    assert state.empty
    assert not state.is_global
    assert state.for_stream(USERS) is None


def test_stream_states_with_every_optional_field() -> None:
    doc = [
        stream_msg("users", {"cursor": "2024-01-01"}, sourceStats={"recordCount": 3.0}, id=17),
        stream_msg("orders", {"pk": [1]}, "shop", destinationStats={"recordCount": 3.0}, unknown={"x": 1}),
        stream_msg("never_started", None),
    ]
    for message in doc:
        AirbyteStateMessage.model_validate(message)  # the test documents are protocol-valid
    state = parse_state(doc)
    assert not state.is_global
    assert state.shared is None
    assert state.for_stream(USERS) == {"cursor": "2024-01-01"}
    assert state.for_stream(ORDERS) == {"pk": [1]}
    assert state.for_stream(StreamDescriptor("orders")) is None  # the namespace is part of the identity
    assert state.for_stream(StreamDescriptor("never_started")) is None  # null state: start over
    assert set(state.streams) == {USERS, ORDERS}


def test_single_message_object_is_accepted() -> None:
    assert parse_state(stream_msg("users", {"c": 1})).for_stream(USERS) == {"c": 1}


def test_pasted_airbyte_messages_are_accepted() -> None:
    whole = {"type": "STATE", "state": stream_msg("users", {"c": 1})}
    assert parse_state([whole]).for_stream(USERS) == {"c": 1}
    assert parse_state(whole).for_stream(USERS) == {"c": 1}
    glob = {"type": "STATE", "state": global_msg({"lsn": 1}, [])}
    assert parse_state([glob]).is_global


def test_global_state() -> None:
    doc = [
        global_msg(
            {"lsn": "0/16B6C50"},
            [
                {"stream_descriptor": {"name": "users"}, "stream_state": {"snapshot": "done"}},
                {"stream_descriptor": {"name": "orders", "namespace": "shop"}, "stream_state": None},
            ],
        )
    ]
    AirbyteStateMessage.model_validate(doc[0])
    state = parse_state(doc)
    assert state.is_global
    assert state.shared == {"lsn": "0/16B6C50"}
    assert state.for_stream(USERS) == {"snapshot": "done"}
    assert state.for_stream(ORDERS) is None
    assert not state.empty


@pytest.mark.parametrize("items", [None, []])
def test_global_state_without_streams(items: Any) -> None:
    state = parse_state([{"type": "GLOBAL", "global": {"shared_state": None, "stream_states": items}}])
    assert state.is_global
    assert state.shared == {}  # a GLOBAL state exists, even if its shared part is empty
    assert not state.streams


def test_exact_numbers_survive_parsing() -> None:
    text = (
        b'[{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},'
        b'"stream_state":{"cursor":123456789012345678901234567890,"d":0.10000000000000000000001}}}]'
    )
    blob = parse_state(loads_exact(text)).for_stream(USERS)
    assert blob == {"cursor": 123456789012345678901234567890, "d": Decimal("0.10000000000000000000001")}


MALFORMED: list[tuple[str, Any, str]] = [
    # (id, document, text the message must contain: the path and the problem)
    ("legacy-object", {"cursor": LONG}, "legacy (untyped) state is not supported"),
    (
        "legacy-type",
        [{"type": "LEGACY", "data": {"cursor": LONG}}],
        "[0]: legacy (untyped) state is not supported",
    ),
    ("untyped-item", [{"data": {"cursor": LONG}}], "[0]: legacy (untyped) state is not supported"),
    ("string", LONG, "expected a JSON array of STATE messages"),
    ("number", 5, "expected a JSON array of STATE messages"),
    ("item-not-object", [stream_msg("users", {}), LONG], "[1] must be an object"),
    ("unknown-type", [{"type": LONG}], "[0].type must be STREAM or GLOBAL"),
    ("pasted-non-state", [{"type": "RECORD", "record": {}}], "[0].type must be STREAM or GLOBAL"),
    ("stream-missing", [{"type": "STREAM"}], "[0].stream must be an object"),
    ("stream-string", [{"type": "STREAM", "stream": LONG}], "[0].stream must be an object"),
    (
        "descriptor-missing",
        [{"type": "STREAM", "stream": {"stream_state": {}}}],
        "[0].stream.stream_descriptor must be an object",
    ),
    (
        "name-missing",
        [{"type": "STREAM", "stream": {"stream_descriptor": {}, "stream_state": {}}}],
        "[0].stream.stream_descriptor.name must be a non-empty string",
    ),
    ("name-empty", [stream_msg("", {})], "[0].stream.stream_descriptor.name must be a non-empty string"),
    (
        "name-number",
        [stream_msg("a", {}), {"type": "STREAM", "stream": {"stream_descriptor": {"name": 7}}}],
        "[1].stream.stream_descriptor.name must be a non-empty string",
    ),
    (
        "namespace-number",
        [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "a", "namespace": 1}}}],
        "[0].stream.stream_descriptor.namespace must be a string",
    ),
    ("blob-string", [stream_msg("users", LONG)], "[0].stream.stream_state must be an object"),
    ("blob-array", [stream_msg("users", [1])], "[0].stream.stream_state must be an object"),
    (
        "duplicate",
        [stream_msg("users", {}), stream_msg("users", {"c": 1})],
        "[1]: stream users appears twice",
    ),
    (
        "duplicate-after-null",
        [stream_msg("users", None), stream_msg("users", {"c": 1})],
        "[1]: stream users appears twice",
    ),
    (
        "mixed-stream-then-global",
        [stream_msg("users", {}), global_msg({}, [])],
        "[1]: STREAM and GLOBAL states cannot be mixed",
    ),
    (
        "mixed-global-then-stream",
        [
            global_msg({}, [{"stream_descriptor": {"name": "users"}, "stream_state": {}}]),
            stream_msg("users", {}),
        ],
        "[1]: STREAM and GLOBAL states cannot be mixed",
    ),
    ("two-globals", [global_msg({}, []), global_msg({}, [])], "[1]: more than one GLOBAL state"),
    ("global-missing", [{"type": "GLOBAL"}], "[0].global must be an object"),
    ("global-string", [{"type": "GLOBAL", "global": LONG}], "[0].global must be an object"),
    ("shared-string", [global_msg(LONG, [])], "[0].global.shared_state must be an object"),
    (
        "stream-states-object",
        [{"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": {}}}],
        "[0].global.stream_states must be an array",
    ),
    (
        "stream-states-string",
        [{"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": LONG}}],
        "[0].global.stream_states must be an array",
    ),
    (
        "global-item-name",
        [global_msg({}, [{"stream_descriptor": {"name": "a"}}, {"stream_descriptor": {"name": ""}}])],
        "[0].global.stream_states[1].stream_descriptor.name must be a non-empty string",
    ),
    (
        "global-item-blob",
        [global_msg({}, [{"stream_descriptor": {"name": "a"}, "stream_state": LONG}])],
        "[0].global.stream_states[0].stream_state must be an object",
    ),
    (
        "global-duplicate",
        [global_msg({}, [{"stream_descriptor": {"name": "a"}}, {"stream_descriptor": {"name": "a"}}])],
        "[0].global.stream_states[1]: stream a appears twice",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_state_names_the_field(doc: Any, expected: str) -> None:
    with pytest.raises(ProtocolInputError) as info:
        parse_state(doc)
    message = str(info.value)
    assert message.startswith("state: ")
    assert expected in message
    assert LONG[:40] not in message
    assert len(message) < 250


def test_legacy_state_message_says_what_to_do() -> None:
    with pytest.raises(ProtocolInputError, match="reset the connection state"):
        parse_state({"cursor": 5})


def test_input_state_is_a_value() -> None:
    assert InputState().empty
    assert not InputState(shared={}).empty
