"""StreamValidator: each check fires on a crafted bad line, at the right line, and only there."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dbkit.protocol import (
    AirbyteStream,
    ConfiguredCatalog,
    ConfiguredStream,
    DestinationSyncMode,
    StreamDescriptor,
    StreamValidator,
    SyncMode,
    validate_lines,
)
from dbkit.protocol import messages as msg

USERS = StreamDescriptor("users")
ORDERS = StreamDescriptor("orders", "shop")
GHOST = StreamDescriptor("ghost")

USERS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "n": {"type": ["number", "null"]},
        "ts_tz": {
            "type": ["string", "null"],
            "format": "date-time",
            "airbyte_type": "timestamp_with_timezone",
        },
        "ts": {
            "type": ["string", "null"],
            "format": "date-time",
            "airbyte_type": "timestamp_without_timezone",
        },
        "t_tz": {"type": ["string", "null"], "format": "time", "airbyte_type": "time_with_timezone"},
        "t": {"type": ["string", "null"], "format": "time", "airbyte_type": "time_without_timezone"},
        "d": {"type": ["string", "null"], "format": "date"},
        "blob": {"type": ["string", "null"], "contentEncoding": "base64"},
    },
}
ORDERS_SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "total": {"type": "number"}}}


def _configured(descriptor: StreamDescriptor, schema: dict[str, Any]) -> ConfiguredStream:
    stream = AirbyteStream(
        name=descriptor.name,
        namespace=descriptor.namespace,
        json_schema=schema,
        supported_sync_modes=(SyncMode.FULL_REFRESH,),
    )
    return ConfiguredStream(stream, SyncMode.FULL_REFRESH, DestinationSyncMode.APPEND)


CATALOG = ConfiguredCatalog((_configured(USERS, USERS_SCHEMA), _configured(ORDERS, ORDERS_SCHEMA)))


def line(message: dict[str, Any]) -> bytes:
    return msg.dumps_exact(message)


def rec(data: dict[str, Any], stream: StreamDescriptor = USERS, **extra: Any) -> bytes:
    body: dict[str, Any] = {"stream": stream.name, "emitted_at": 1, "data": data, **extra}
    if stream.namespace is not None:
        body["namespace"] = stream.namespace
    return line({"type": "RECORD", "record": body})


def status(descriptor: StreamDescriptor, value: str) -> bytes:
    return msg.stream_status(descriptor, value)


def trace(body: dict[str, Any]) -> bytes:
    return line({"type": "TRACE", "trace": {"emitted_at": 1.0, **body}})


def state(payload: dict[str, Any]) -> bytes:
    return line({"type": "STATE", "state": payload})


def problems(lines: Sequence[bytes | str], catalog: Any = CATALOG) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in validate_lines(lines, catalog)]


def assert_problems(
    lines: list[bytes | str], expected: list[tuple[int, str]], catalog: Any = CATALOG
) -> None:
    found = problems(lines, catalog)
    assert len(found) == len(expected), found
    for (line_no, fragment), (got_line, got_message) in zip(expected, found, strict=True):
        assert got_line == line_no, (fragment, found)
        assert fragment in got_message, (fragment, found)


GOOD_USER = {
    "id": 1,
    "name": "ä",
    "n": Decimal("12345678901234567890.000000000000000001"),
    "ts_tz": "2024-01-01T00:00:00.123456+05:30",
    "ts": "2024-01-01T00:00:00",
    "t_tz": "10:00:00Z",
    "t": "23:59:59.999999",
    "d": "2024-02-29",
    "blob": "AP8=",
}


def good_stream() -> list[bytes | str]:
    return [
        msg.log("INFO", "starting"),
        status(USERS, "STARTED"),
        msg.estimate(USERS, 2, 100),
        msg.record(USERS, GOOD_USER, emitted_at=1),
        msg.record(USERS, {"id": 2**70, "name": None, "ts_tz": "0044-03-15T12:00:00Z BC"}, emitted_at=1),
        msg.record(
            USERS,
            {
                "id": 3,
                "ts": "+10000-01-01T00:00:00",
                "d": "0044-03-15 BC",
                "blob": "",
                "t_tz": "10:00:00+01:00",
            },
            emitted_at=1,
            changes=[msg.change("n", "SOURCE_SERIALIZATION_ERROR")],
        ),
        msg.stream_state(USERS, {"cursor": 3}, 3),
        status(USERS, "RUNNING"),
        status(USERS, "COMPLETE"),
        status(ORDERS, "STARTED"),
        msg.record(ORDERS, {"id": 1, "total": 9.5}, emitted_at=1),
        msg.trace_error("lost the connection", "transient_error", stream=ORDERS),
        status(ORDERS, "INCOMPLETE"),
        msg.global_state({"lsn": 1}, {USERS: {"a": 1}, ORDERS: None}, 0),
        msg.echo_state(orderless_state(), 5),
    ]


def orderless_state() -> dict[str, Any]:
    return {
        "type": "STREAM",
        "stream": {"stream_descriptor": {"name": "orders", "namespace": "shop"}, "stream_state": None},
        "sourceStats": {"recordCount": 5.0},
        "id": 3,
    }


def test_good_stream_has_no_problems() -> None:
    validator = StreamValidator(CATALOG)
    for item in good_stream():
        validator.feed(item)
    assert validator.finish() == []
    assert validator.counts == {"LOG": 1, "TRACE": 7, "RECORD": 4, "STATE": 3}


def test_other_message_types_are_accepted() -> None:
    spec = msg.spec({"connectionSpecification": {"type": "object", "properties": {"a": {"type": "string"}}}})
    lines = [
        spec,
        msg.connection_status(True),
        msg.connection_status(False, "nope"),
        line(
            {
                "type": "CONTROL",
                "control": {"type": "CONNECTOR_CONFIG", "emitted_at": 1.0, "connectorConfig": {}},
            }
        ),
        line(
            {"type": "RECORD", "record": {"stream": "users", "emitted_at": 1, "data": {"id": Decimal("5.0")}}}
        ),
    ]
    assert problems(lines) == []


def test_str_lines_and_catalog_of_streams() -> None:
    lines: list[bytes | str] = [rec({"id": 1}).decode(), rec({"id": "x"}).decode()]
    found = problems(lines, [c.stream for c in CATALOG])
    assert [n for n, _ in found] == [2]


SCHEMA_CASES: list[tuple[str, dict[str, Any], str | tuple[str, ...]]] = [
    ("type", {"id": "7"}, "id: '7' is not of type 'integer'"),
    ("required-non-null", {"id": None}, "id: None is not of type 'integer'"),
    ("number", {"id": 1, "n": "1.5"}, "n: '1.5' is not of type 'number', 'null'"),
    ("ts-tz-without-zone", {"id": 1, "ts_tz": "2024-01-01T00:00:00"}, "is not a timestamp_with_timezone"),
    (
        "ts-tz-space",
        {"id": 1, "ts_tz": "2024-01-01 00:00:00Z"},
        ("is not a 'date-time'", "is not a timestamp_with_"),
    ),
    ("ts-ntz-with-zone", {"id": 1, "ts": "2024-01-01T00:00:00+00:00"}, "is not a timestamp_without_timezone"),
    ("ts-bad-date", {"id": 1, "ts": "2023-02-29T00:00:00"}, "is not a 'date-time'"),
    ("time-tz-without-zone", {"id": 1, "t_tz": "10:00:00"}, "is not a time_with_timezone"),
    ("time-ntz-with-zone", {"id": 1, "t": "10:00:00Z"}, "is not a time_without_timezone"),
    ("date-feb-30", {"id": 1, "d": "2024-02-30"}, "d: '2024-02-30' is not a 'date'"),
    ("date-month-13", {"id": 1, "d": "2024-13-01"}, "is not a 'date'"),
    ("date-year-0-bc", {"id": 1, "d": "0000-01-01 BC"}, "is not a 'date'"),
    ("date-slashes", {"id": 1, "d": "2024/01/01"}, "is not a 'date'"),
    ("base64", {"id": 1, "blob": "not base64!"}, "blob: value is not base64"),
    ("base64-padding", {"id": 1, "blob": "AP8"}, "blob: value is not base64"),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_record_not_matching_schema(data: dict[str, Any], fragment: str | tuple[str, ...]) -> None:
    lines: list[bytes | str] = [status(USERS, "STARTED"), rec({"id": 1}), rec(data), rec({"id": 2})]
    fragments = fragment if isinstance(fragment, tuple) else (fragment,)
    found = problems(lines)
    assert len(found) == len(fragments), found
    for (line_no, message), expected in zip(found, fragments, strict=True):
        assert line_no == 3
        column = next(iter(k for k in data if k != "id"), "id")
        assert message.startswith(f"record of users: {column}: "), message
        assert expected in message


ACCEPTED_VALUES: list[tuple[str, Any]] = [
    ("ts_tz", "2024-01-01T00:00:00Z"),
    ("ts_tz", "2024-01-01T00:00:00-08:00"),
    ("ts_tz", "2024-01-01T00:00:00.1+00:00:00"),
    ("ts_tz", "0001-01-01T00:00:00Z BC"),
    ("ts", "2024-06-30T23:59:59.123456789"),
    ("ts", "0044-03-15T00:00:00 BC"),
    ("t_tz", "00:00:00.5-03:30"),
    ("t", "12:00:00"),
    ("d", "0001-02-29 BC"),  # 1 BC is a leap year
    ("d", "+12345-01-01"),
    ("blob", "QUJD"),
    ("n", 1e300),
    ("n", 2**100),
    ("name", None),
]


@pytest.mark.parametrize(("column", "value"), ACCEPTED_VALUES)
def test_airbyte_forms_are_accepted(column: str, value: Any) -> None:
    assert problems([rec({"id": 1, column: value})]) == []


CASES: list[tuple[str, list[bytes | str], list[tuple[int, str]]]] = [
    ("not-json", [status(USERS, "STARTED"), b"{not json", rec({"id": 1})], [(2, "not JSON")]),
    ("truncated-json", [rec({"id": 1})[:-10]], [(1, "not JSON")]),
    (
        "nan",
        [b'{"type": "RECORD", "record": {"stream": "users", "emitted_at": 1, "data": {"n": NaN}}}'],
        [(1, "not JSON")],
    ),
    ("empty-line", [msg.log("INFO", "x"), b"   \n"], [(2, "empty line")]),
    ("array", [b"[1, 2]"], [(1, "a message must be a JSON object")]),
    ("string", [b'"RECORD"'], [(1, "a message must be a JSON object")]),
    ("unknown-type", [line({"type": "FOO", "foo": {}})], [(1, "unknown message type 'FOO'")]),
    ("type-array", [line({"type": ["RECORD"], "record": {}})], [(1, "unknown message type ['RECORD']")]),
    (
        "no-type",
        [line({"record": {"stream": "users", "emitted_at": 1, "data": {}}})],
        [(1, "unknown message type None")],
    ),
    ("missing-payload", [line({"type": "RECORD"})], [(1, "RECORD message needs an object under 'record'")]),
    (
        "payload-string",
        [line({"type": "LOG", "log": "hi"})],
        [(1, "LOG message needs an object under 'log'")],
    ),
    (
        "other-payload",
        [line({"type": "LOG", "log": {"level": "INFO", "message": "x"}, "state": {}, "record": {}})],
        [(1, "LOG message also carries record, state")],
    ),
    (
        "emitted-at-missing",
        [line({"type": "RECORD", "record": {"stream": "users", "data": {"id": 1}}})],
        [(1, "record.emitted_at must be an integer")],
    ),
    ("emitted-at-float", [rec({"id": 1}, emitted_at=1.5)], [(1, "record.emitted_at must be an integer")]),
    ("emitted-at-bool", [rec({"id": 1}, emitted_at=True)], [(1, "record.emitted_at must be an integer")]),
    (
        "data-missing",
        [line({"type": "RECORD", "record": {"stream": "users", "emitted_at": 1}})],
        [(1, "record.data must be an object")],
    ),
    ("data-array", [rec([1])], [(1, "record.data must be an object")]),  # type: ignore[arg-type]
    (
        "stream-missing",
        [line({"type": "RECORD", "record": {"emitted_at": 1, "data": {}}})],
        [(1, "record.stream needs a non-empty string 'name'")],
    ),
    ("namespace-number", [rec({"id": 1}, namespace=5)], [(1, "record.stream.namespace must be a string")]),
    (
        "change-bad-reason",
        [
            rec(
                {"id": 1},
                meta={"changes": [msg.change("n", "SOURCE_SERIALIZATION_ERROR"), msg.change("n", "OOPS")]},
            )
        ],
        [(1, "record.meta.changes[1].reason 'OOPS' is not an Airbyte reason")],
    ),
    (
        "change-bad-kind",
        [rec({"id": 1}, meta={"changes": [msg.change("n", "SOURCE_SERIALIZATION_ERROR", "DROPPED")]})],
        [(1, "record.meta.changes[0].change must be one of ['NULLED', 'TRUNCATED']")],
    ),
    (
        "change-no-field",
        [rec({"id": 1}, meta={"changes": [{"change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}]})],
        [(1, "record.meta.changes[0] needs a string 'field'")],
    ),
    ("meta-string", [rec({"id": 1}, meta="x")], [(1, "record.meta must be an object")]),
    ("changes-object", [rec({"id": 1}, meta={"changes": {}})], [(1, "record.meta.changes must be an array")]),
    (
        "unknown-stream",
        [rec({"id": 1}), rec({"id": 1}, GHOST)],
        [(2, "record names stream ghost, which is not in the catalog")],
    ),
    (
        "namespace-is-identity",
        [rec({"id": 1}, StreamDescriptor("orders"))],
        [(1, "record names stream orders, which is not in the catalog")],
    ),
    (
        "state-unknown-stream",
        [msg.stream_state(USERS, {}, 1), msg.stream_state(GHOST, {}, 1)],
        [(2, "state names stream ghost, which is not in the catalog")],
    ),
    (
        "global-state-unknown-stream",
        [msg.global_state({}, {USERS: None, GHOST: {}}, 0)],
        [(1, "state names stream ghost, which is not in the catalog")],
    ),
    (
        "state-descriptor-missing",
        [state({"type": "STREAM", "stream": {"stream_state": {}}})],
        [(1, "state.stream.stream_descriptor needs a non-empty string 'name'")],
    ),
    (
        "state-blob-string",
        [state({"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": "x"}})],
        [(1, "state.stream.stream_state must be an object")],
    ),
    ("state-stream-missing", [state({"type": "STREAM"})], [(1, "state.stream must be an object")]),
    (
        "state-legacy",
        [state({"type": "LEGACY", "data": {}})],
        [(1, "state.type must be STREAM or GLOBAL, not 'LEGACY'")],
    ),
    (
        "global-without-streams",
        [state({"type": "GLOBAL", "global": {"shared_state": {}}})],
        [(1, "state.global needs a 'stream_states' array")],
    ),
    (
        "global-shared-string",
        [state({"type": "GLOBAL", "global": {"shared_state": "x", "stream_states": []}})],
        [(1, "state.global.shared_state must be an object")],
    ),
    (
        "stats-negative",
        [state({**orderless_state(), "sourceStats": {"recordCount": -1.0}})],
        [(1, "state.sourceStats.recordCount must be a non-negative number")],
    ),
    (
        "stats-string",
        [state({**orderless_state(), "destinationStats": {"recordCount": "3"}})],
        [(1, "state.destinationStats.recordCount must be a non-negative number")],
    ),
    (
        "stats-bool",
        [state({**orderless_state(), "sourceStats": {"recordCount": True}})],
        [(1, "state.sourceStats.recordCount must be a non-negative number")],
    ),
    (
        "stats-not-object",
        [state({**orderless_state(), "sourceStats": 5})],
        [(1, "state.sourceStats.recordCount")],
    ),
    (
        "log-level",
        [line({"type": "LOG", "log": {"level": "WARNING", "message": "x"}})],
        [(1, "log.level 'WARNING' is not one of")],
    ),
    ("log-message", [line({"type": "LOG", "log": {"level": "INFO"}})], [(1, "log.message must be a string")]),
    (
        "trace-emitted-at",
        [
            line(
                {
                    "type": "TRACE",
                    "trace": {"type": "ERROR", "error": {"message": "x", "failure_type": "system_error"}},
                }
            )
        ],
        [(1, "trace.emitted_at must be a number")],
    ),
    (
        "trace-unknown-type",
        [trace({"type": "NOPE"})],
        [(1, "trace of type 'NOPE' needs its matching object")],
    ),
    (
        "trace-error-missing",
        [trace({"type": "ERROR"})],
        [(1, "trace of type 'ERROR' needs its matching object")],
    ),
    (
        "error-empty-message",
        [trace({"type": "ERROR", "error": {"message": ""}})],
        [(1, "trace.error.message must be a non-empty string")],
    ),
    (
        "error-failure-type",
        [trace({"type": "ERROR", "error": {"message": "x", "failure_type": "user_error"}})],
        [(1, "trace.error.failure_type 'user_error' is not valid")],
    ),
    (
        "error-stream-descriptor",
        [trace({"type": "ERROR", "error": {"message": "x", "stream_descriptor": {"namespace": "a"}}})],
        [(1, "trace.error.stream_descriptor needs a non-empty string 'name'")],
    ),
    (
        "estimate-type",
        [trace({"type": "ESTIMATE", "estimate": {"name": "users", "type": "TABLE"}})],
        [(1, "trace.estimate needs 'name' and type STREAM or SYNC")],
    ),
    (
        "estimate-rows-float",
        [trace({"type": "ESTIMATE", "estimate": {"name": "users", "type": "STREAM", "row_estimate": 1.5}})],
        [(1, "trace.estimate.row_estimate must be an integer")],
    ),
    (
        "status-value",
        [
            trace(
                {
                    "type": "STREAM_STATUS",
                    "stream_status": {"stream_descriptor": {"name": "users"}, "status": "DONE"},
                }
            )
        ],
        [(1, "trace.stream_status.status 'DONE' is not one of")],
    ),
    (
        "status-descriptor",
        [trace({"type": "STREAM_STATUS", "stream_status": {"status": "STARTED"}})],
        [(1, "trace.stream_status.stream_descriptor needs a non-empty string 'name'")],
    ),
    (
        "status-unknown-stream",
        [status(GHOST, "STARTED")],
        [(1, "stream status names stream ghost, which is not in the catalog")],
    ),
    (
        "record-after-complete",
        [status(USERS, "STARTED"), rec({"id": 1}), status(USERS, "COMPLETE"), rec({"id": 2})],
        [(4, "record for stream users after its COMPLETE status")],
    ),
    (
        "record-after-incomplete",
        [status(USERS, "STARTED"), status(USERS, "INCOMPLETE"), rec({"id": 2})],
        [(3, "record for stream users after its INCOMPLETE status")],
    ),
    ("complete-without-started", [status(USERS, "COMPLETE")], [(1, "stream users COMPLETE without STARTED")]),
    (
        "running-without-started",
        [status(ORDERS, "RUNNING")],
        [(1, "stream shop.orders RUNNING without STARTED")],
    ),
    (
        "incomplete-after-complete",
        [status(USERS, "STARTED"), status(USERS, "COMPLETE"), status(USERS, "INCOMPLETE")],
        [(3, "stream users INCOMPLETE without STARTED, or after its final status")],
    ),
    (
        "started-twice",
        [status(USERS, "STARTED"), status(USERS, "STARTED")],
        [(2, "stream users STARTED twice")],
    ),
    (
        "spec-invalid-schema",
        [msg.spec({"connectionSpecification": {"type": 5}})],
        [(1, "spec.connectionSpecification is not a valid JSON schema")],
    ),
    (
        "spec-missing-schema",
        [msg.spec({"documentationUrl": "x"})],
        [(1, "spec.connectionSpecification must be an object")],
    ),
    (
        "connection-status-value",
        [line({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "OK"}})],
        [(1, "connectionStatus.status must be SUCCEEDED or FAILED")],
    ),
    (
        "connection-status-message",
        [line({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "FAILED", "message": 5}})],
        [(1, "connectionStatus.message must be a string")],
    ),
    (
        "control-type",
        [line({"type": "CONTROL", "control": {"type": "OTHER"}})],
        [(1, "control.type must be CONNECTOR_CONFIG")],
    ),
]


@pytest.mark.parametrize(("lines", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_check_fires_at_its_line(lines: list[bytes | str], expected: list[tuple[int, str]]) -> None:
    assert_problems(lines, expected)


def _catalog_line(*streams: dict[str, Any]) -> bytes:
    return line({"type": "CATALOG", "catalog": {"streams": list(streams)}})


def _stream(name: str, schema: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "json_schema": schema
        if schema is not None
        else {"type": "object", "properties": {"id": {"type": "integer"}}},
        "supported_sync_modes": ["full_refresh"],
    }


CATALOG_CASES: list[tuple[str, bytes, list[tuple[int, str]]]] = [
    (
        "duplicate-stream",
        _catalog_line(_stream("a"), _stream("b"), _stream("a")),
        [(1, "catalog lists stream a twice")],
    ),
    (
        "schema-not-object-type",
        _catalog_line(_stream("a", {"type": "array"})),
        [(1, "stream a: json_schema.type must be 'object'")],
    ),
    (
        "bad-sync-mode",
        _catalog_line({**_stream("a"), "supported_sync_modes": ["sometimes"]}),
        [(1, "catalog: streams[0].supported_sync_modes[0]: 'sometimes' is not one of")],
    ),
    ("streams-missing", line({"type": "CATALOG", "catalog": {}}), [(1, "catalog.streams must be an array")]),
    (
        "invalid-json-schema",
        _catalog_line(_stream("a", {"type": "object", "properties": 5})),
        [(1, "stream a: json_schema is not a valid JSON schema")],
    ),
]


@pytest.mark.parametrize(
    ("catalog", "expected"), [c[1:] for c in CATALOG_CASES], ids=[c[0] for c in CATALOG_CASES]
)
def test_catalog_message_checks(catalog: bytes, expected: list[tuple[int, str]]) -> None:
    assert_problems([catalog], expected, catalog=None)


def test_catalog_message_is_adopted_without_a_catalog() -> None:
    lines: list[bytes | str] = [
        _catalog_line(_stream("a")),
        line({"type": "RECORD", "record": {"stream": "a", "emitted_at": 1, "data": {"id": 1}}}),
        line({"type": "RECORD", "record": {"stream": "a", "emitted_at": 1, "data": {"id": "x"}}}),
        line({"type": "RECORD", "record": {"stream": "b", "emitted_at": 1, "data": {}}}),
    ]
    assert_problems(
        lines,
        [
            (3, "record of a: id: 'x' is not of type 'integer'"),
            (4, "record names stream b, which is not in the catalog"),
        ],
        catalog=None,
    )


def test_without_any_catalog_records_are_not_judged_by_stream() -> None:
    assert problems([rec({"id": "x"}, GHOST), status(GHOST, "COMPLETE")], catalog=None) == []


def test_given_catalog_with_invalid_schema_is_reported_once() -> None:
    bad = AirbyteStream(
        "bad", {"type": "object", "properties": {"id": {"type": "integr"}}}, (SyncMode.FULL_REFRESH,)
    )
    validator = StreamValidator([bad])
    assert len(validator.problems) == 1
    assert validator.problems[0].line == 0
    assert validator.problems[0].message.startswith("stream bad: json_schema is not a valid JSON schema: ")
    # the stream is still known: its statuses and records are not reported as unknown
    for item in (
        status(bad.descriptor, "STARTED"),
        rec({"id": "x"}, bad.descriptor),
        status(bad.descriptor, "COMPLETE"),
    ):
        validator.feed(item)
    assert len(validator.finish()) == 1


def test_record_problems_are_capped_per_stream() -> None:
    validator = StreamValidator(CATALOG, max_record_problems_per_stream=2)
    for i in range(5):
        validator.feed(rec({"id": f"bad {i}"}))
    validator.feed(rec({"id": "x"}, ORDERS))
    found = [(p.line, p.message.split(":")[0]) for p in validator.finish()]
    assert found == [(1, "record of users"), (2, "record of users"), (6, "record of shop.orders")]
    assert str(validator.finish()[0]).startswith("line 1: record of users: id:")


def test_wide_and_exact_numbers_are_checked_as_numbers() -> None:
    raw = orjson.dumps({"type": "RECORD", "record": {"stream": "users", "emitted_at": 1, "data": {"id": 5}}})
    exact = raw.replace(b'"id":5', b'"id":123456789012345678901234567890,"n":0.1000000000000000000000001')
    assert problems([exact]) == []
    fraction = raw.replace(b'"id":5', b'"id":1.5,"name":"12345678901234567890"')
    assert_problems([fraction], [(1, "record of users: id: Decimal('1.5') is not of type 'integer'")])
