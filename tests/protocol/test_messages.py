"""Emission: every builder writes one JSON line of exactly the Airbyte shape, numbers kept exact."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from airbyte_protocol.models import AirbyteMessage

from dbkit.protocol import AirbyteStream, StreamDescriptor, SyncMode, loads_exact
from dbkit.protocol import messages as msg

USERS = StreamDescriptor("users")
ORDERS = StreamDescriptor("orders", "shop")
HUNDRED_DIGITS = "1234567890" * 10
NOW_MS = time.time_ns() // 1_000_000


def parse_line(line: bytes) -> dict[str, Any]:
    """One newline-terminated JSON object that the official protocol models accept."""
    assert isinstance(line, bytes)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    parsed = loads_exact(line)
    assert isinstance(parsed, dict)
    AirbyteMessage.model_validate(parsed)
    return parsed


def _fresh_timestamp(value: Any) -> bool:
    return isinstance(value, float) and abs(value - time.time() * 1000) < 60_000


STREAM = AirbyteStream(
    name="orders",
    namespace="shop",
    json_schema={"type": "object", "properties": {"id": {"type": "integer"}}},
    supported_sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
    source_defined_cursor=True,
    default_cursor_field=("updated_at",),
    source_defined_primary_key=(("id",),),
    is_resumable=True,
)

# (id, build, expected message; trace emitted_at is checked separately)
CASES: list[tuple[str, Callable[[], bytes], dict[str, Any]]] = [
    (
        "record",
        lambda: msg.record(USERS, {"id": 1, "name": "ä"}, emitted_at=NOW_MS),
        {
            "type": "RECORD",
            "record": {"stream": "users", "emitted_at": NOW_MS, "data": {"id": 1, "name": "ä"}},
        },
    ),
    (
        "record-namespace-changes",
        lambda: msg.record(
            ORDERS,
            {"id": None},
            emitted_at=5,
            changes=[msg.change("id", "SOURCE_SERIALIZATION_ERROR")],
        ),
        {
            "type": "RECORD",
            "record": {
                "stream": "orders",
                "namespace": "shop",
                "emitted_at": 5,
                "data": {"id": None},
                "meta": {
                    "changes": [{"field": "id", "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}]
                },
            },
        },
    ),
    (
        "record-truncated-change",
        lambda: msg.record(
            USERS,
            {"t": "abc"},
            emitted_at=7,
            changes=[msg.change("t", "SOURCE_FIELD_SIZE_LIMITATION", "TRUNCATED")],
        ),
        {
            "type": "RECORD",
            "record": {
                "stream": "users",
                "emitted_at": 7,
                "data": {"t": "abc"},
                "meta": {
                    "changes": [
                        {"field": "t", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}
                    ]
                },
            },
        },
    ),
    (
        "stream-state",
        lambda: msg.stream_state(ORDERS, {"cursor": "2024-01-01", "pk": [1, 2]}, 12),
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {
                    "stream_descriptor": {"name": "orders", "namespace": "shop"},
                    "stream_state": {"cursor": "2024-01-01", "pk": [1, 2]},
                },
                "sourceStats": {"recordCount": 12.0},
            },
        },
    ),
    (
        "stream-state-null",
        lambda: msg.stream_state(USERS, None, 0),
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": "users"}, "stream_state": None},
                "sourceStats": {"recordCount": 0.0},
            },
        },
    ),
    (
        "global-state",
        lambda: msg.global_state({"lsn": 42}, {USERS: {"done": True}, ORDERS: None}, 3),
        {
            "type": "STATE",
            "state": {
                "type": "GLOBAL",
                "global": {
                    "shared_state": {"lsn": 42},
                    "stream_states": [
                        {"stream_descriptor": {"name": "users"}, "stream_state": {"done": True}},
                        {"stream_descriptor": {"name": "orders", "namespace": "shop"}, "stream_state": None},
                    ],
                },
                "sourceStats": {"recordCount": 3.0},
            },
        },
    ),
    (
        "log",
        lambda: msg.log("WARN", "careful"),
        {"type": "LOG", "log": {"level": "WARN", "message": "careful"}},
    ),
    (
        "log-stack",
        lambda: msg.log("ERROR", "boom", stack_trace="Traceback ..."),
        {"type": "LOG", "log": {"level": "ERROR", "message": "boom", "stack_trace": "Traceback ..."}},
    ),
    (
        "trace-error-minimal",
        lambda: msg.trace_error("fix the config", "config_error"),
        {
            "type": "TRACE",
            "trace": {
                "type": "ERROR",
                "error": {"message": "fix the config", "failure_type": "config_error"},
            },
        },
    ),
    (
        "trace-error-full",
        lambda: msg.trace_error("lost it", "transient_error", "driver said no", "Traceback ...", ORDERS),
        {
            "type": "TRACE",
            "trace": {
                "type": "ERROR",
                "error": {
                    "message": "lost it",
                    "failure_type": "transient_error",
                    "internal_message": "driver said no",
                    "stack_trace": "Traceback ...",
                    "stream_descriptor": {"name": "orders", "namespace": "shop"},
                },
            },
        },
    ),
    *[
        (
            f"status-{status}",
            (lambda status=status: msg.stream_status(ORDERS, status)),
            {
                "type": "TRACE",
                "trace": {
                    "type": "STREAM_STATUS",
                    "stream_status": {
                        "stream_descriptor": {"name": "orders", "namespace": "shop"},
                        "status": status,
                    },
                },
            },
        )
        for status in ("STARTED", "RUNNING", "COMPLETE", "INCOMPLETE")
    ],
    (
        "estimate",
        lambda: msg.estimate(ORDERS, 1000, 2**40),
        {
            "type": "TRACE",
            "trace": {
                "type": "ESTIMATE",
                "estimate": {
                    "name": "orders",
                    "type": "STREAM",
                    "namespace": "shop",
                    "row_estimate": 1000,
                    "byte_estimate": 2**40,
                },
            },
        },
    ),
    (
        "estimate-rows-only",
        lambda: msg.estimate(USERS, 10, None),
        {
            "type": "TRACE",
            "trace": {
                "type": "ESTIMATE",
                "estimate": {"name": "users", "type": "STREAM", "row_estimate": 10},
            },
        },
    ),
    (
        "spec",
        lambda: msg.spec(
            {"connectionSpecification": {"type": "object", "properties": {}}, "supportsIncremental": True}
        ),
        {
            "type": "SPEC",
            "spec": {
                "connectionSpecification": {"type": "object", "properties": {}},
                "supportsIncremental": True,
            },
        },
    ),
    (
        "status-ok",
        lambda: msg.connection_status(True),
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}},
    ),
    (
        "status-failed",
        lambda: msg.connection_status(False, "no such file"),
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "FAILED", "message": "no such file"}},
    ),
    (
        "catalog",
        lambda: msg.catalog([STREAM]),
        {
            "type": "CATALOG",
            "catalog": {
                "streams": [
                    {
                        "name": "orders",
                        "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
                        "supported_sync_modes": ["full_refresh", "incremental"],
                        "namespace": "shop",
                        "source_defined_cursor": True,
                        "default_cursor_field": ["updated_at"],
                        "source_defined_primary_key": [["id"]],
                        "is_resumable": True,
                    }
                ]
            },
        },
    ),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_builder_emits_exact_airbyte_shape(build: Callable[[], bytes], expected: dict[str, Any]) -> None:
    parsed = parse_line(build())
    if parsed["type"] == "TRACE":
        assert _fresh_timestamp(parsed["trace"].pop("emitted_at"))
    assert parsed == expected


def test_stats_record_counts_are_floats() -> None:
    for line in (msg.stream_state(USERS, {}, 7), msg.global_state({}, {USERS: {}}, 7)):
        assert b'"sourceStats":{"recordCount":7.0}' in line
        assert isinstance(parse_line(line)["state"]["sourceStats"]["recordCount"], float)


EXACT_DATA: list[tuple[str, Any, str]] = [
    ("fragment-100-digits", orjson.Fragment(HUNDRED_DIGITS), HUNDRED_DIGITS),
    ("fragment-100-digit-fraction", orjson.Fragment("-0." + HUNDRED_DIGITS), "-0." + HUNDRED_DIGITS),
    ("decimal", Decimal("12345678901234567890.123456789012345"), "12345678901234567890.123456789012345"),
    ("decimal-exponent", Decimal("1E+400"), "1E+400"),
    ("decimal-tiny", Decimal("-1.5E-400"), "-1.5E-400"),
    ("decimal-trailing-zeros", Decimal("1.000"), "1.000"),
    ("int-above-u64", 2**64, str(2**64)),
    ("int-100-digits", int(HUNDRED_DIGITS), HUNDRED_DIGITS),
    ("int-below-i64", -(2**63) - 1, str(-(2**63) - 1)),
    ("u64-max", 2**64 - 1, str(2**64 - 1)),
]


@pytest.mark.parametrize(("value", "text"), [c[1:] for c in EXACT_DATA], ids=[c[0] for c in EXACT_DATA])
def test_record_keeps_exact_numerics(value: Any, text: str) -> None:
    line = msg.record(USERS, {"v": value, "nested": {"list": [value, 1]}}, emitted_at=1)
    assert f'"v":{text},'.encode() in line
    data = parse_line(line)["record"]["data"]
    expected = Decimal(text)
    for got in (data["v"], data["nested"]["list"][0]):
        assert Decimal(repr(got) if isinstance(got, float) else got) == expected


@pytest.mark.parametrize("namespace", [None, "shop"])
@pytest.mark.parametrize(
    "changes",
    [None, [msg.change("a", "SOURCE_SERIALIZATION_ERROR"), msg.change("b", "SOURCE_RETRIEVAL_ERROR")]],
)
def test_record_envelope_matches_record(namespace: str | None, changes: list[dict[str, str]] | None) -> None:
    descriptor = StreamDescriptor("users", namespace)
    data = {"id": 2**70, "price": Decimal("0.10"), "name": 'quote " and \\', "raw": orjson.Fragment("1.50")}
    prefix, suffix = msg.record_envelope(descriptor, 1_700_000_000_123)
    if changes:
        suffix = msg.record_suffix_with_changes(changes)
    assembled = prefix + msg.dumps_exact(data) + suffix
    assert assembled == msg.record(descriptor, data, emitted_at=1_700_000_000_123, changes=changes)
    record = parse_line(assembled)["record"]
    assert record["emitted_at"] == 1_700_000_000_123
    assert record.get("namespace") == namespace
    assert record["data"] == {
        "id": 2**70,
        "price": Decimal("0.10"),
        "name": 'quote " and \\',
        "raw": Decimal("1.50"),
    }
    assert record.get("meta", {}).get("changes") == changes


def test_record_defaults_emitted_at_to_now() -> None:
    before = time.time_ns() // 1_000_000
    emitted = parse_line(msg.record(USERS, {}))["record"]["emitted_at"]
    assert isinstance(emitted, int)
    assert before <= emitted <= time.time_ns() // 1_000_000


def test_echo_state_keeps_every_field_and_adds_destination_stats() -> None:
    incoming: dict[str, Any] = {
        "type": "STREAM",
        "stream": {
            "stream_descriptor": {"name": "orders", "namespace": "shop"},
            "stream_state": {"cursor": 2**80, "exact": Decimal("0.1000000000000000000001"), "s": "x"},
        },
        "sourceStats": {"recordCount": 10.0},
        "id": 1234567,  # the platform's state id
        "unknown_future_field": {"nested": [1, "two", None]},
    }
    snapshot = copy.deepcopy(incoming)
    line = msg.echo_state(incoming, 10)
    parsed = parse_line(line)
    assert parsed["type"] == "STATE"
    state = parsed["state"]
    assert state.pop("destinationStats") == {"recordCount": 10.0}
    assert line.endswith(b',"destinationStats":{"recordCount":10.0}}}\n')  # a float, as the protocol says
    assert state == incoming
    assert incoming == snapshot  # the input is not modified


def test_echo_state_global_replaces_stale_destination_stats() -> None:
    incoming = {
        "type": "GLOBAL",
        "global": {"shared_state": {"lsn": 5}, "stream_states": []},
        "sourceStats": {"recordCount": 2.0},
        "destinationStats": {"recordCount": 99.0},
    }
    state = parse_line(msg.echo_state(incoming, 0))["state"]
    assert state["destinationStats"] == {"recordCount": 0.0}
    assert isinstance(state["destinationStats"]["recordCount"], float)
    assert state["global"] == incoming["global"]
    assert state["sourceStats"] == {"recordCount": 2.0}


def test_exact_numbers_in_state_and_estimate() -> None:
    line = msg.stream_state(USERS, {"cursor": 2**65, "d": Decimal("3.14159265358979323846264338")}, 1)
    assert b'"cursor":36893488147419103232' in line
    assert b'"d":3.14159265358979323846264338' in line
    parse_line(line)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), object()])
def test_values_without_json_form_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError):
        msg.record(USERS, {"v": bad}, emitted_at=1)
    with pytest.raises(TypeError):
        msg.stream_state(USERS, {"v": bad}, 1)
