"""Type handlers, the type registry, JSON schemas, and the value converters (exactness first)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkit.db.types import (
    AirbyteType,
    SchemaType,
    TypeHandler,
    TypeRegistry,
    Unrepresentable,
    base64_bytes,
    default_state_value,
    exact_decimal,
    finite_float,
    json_schema_for,
    parse_json_text,
    schema_type,
    state_to_python,
    wide_int,
)
from dbkit.protocol import loads_exact

INT = TypeHandler(AirbyteType.INTEGER)
TEXT = TypeHandler(AirbyteType.STRING)
FALLBACK = TypeHandler(AirbyteType.NUMBER)
DEFAULT = TypeHandler(AirbyteType.UNKNOWN)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# ------------------------------------------------------------------------------ registry


@pytest.fixture
def registry() -> TypeRegistry:
    types = TypeRegistry(default=DEFAULT, fallback=lambda name: FALLBACK if "num" in name else None)
    types.register(["integer", "int4"], INT)
    types.register("character varying", TEXT)
    types.register("timestamp with time zone", TEXT)
    return types


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("integer", INT),
        ("INTEGER", INT),
        ("  Int4 ", INT),
        ("integer(11)", INT),  # parameters are ignored
        ("INTEGER (11)", INT),
        ("character varying(255)", TEXT),
        ("CHARACTER   VARYING ( 255 )", TEXT),  # whitespace is normalized
        ("timestamp(6) with time zone", TEXT),  # parameters in the middle of a name
        ("numeric(10,2)", FALLBACK),  # not registered: the fallback decides
        ("NUMERIC", FALLBACK),
        ("geometry", DEFAULT),  # neither: the default
        ("", DEFAULT),
    ],
)
def test_registry_resolution(registry: TypeRegistry, name: str, expected: TypeHandler) -> None:
    assert registry.resolve(name) is expected


def test_registry_membership_and_copies(registry: TypeRegistry) -> None:
    assert "INT4(3)" in registry
    assert "numeric" not in registry  # only registered names, not what the fallback decides
    copy = registry.copy()
    copy.register("geometry", TEXT)
    assert copy.resolve("geometry") is TEXT
    assert registry.resolve("geometry") is DEFAULT  # the original is untouched
    assert copy.resolve("numeric") is FALLBACK


def test_registry_parameters_with_quotes_and_nesting() -> None:
    types = TypeRegistry(default=DEFAULT)
    types.register("enum", TEXT)
    types.register("array", INT)
    assert types.resolve("enum('a)', 'b(')") is TEXT
    assert types.resolve("Array(Nullable(Int32))") is INT


# ------------------------------------------------------------------------------ schemas


def test_json_schemas() -> None:
    assert json_schema_for(AirbyteType.INTEGER) == {"type": ["integer", "null"]}
    assert json_schema_for(AirbyteType.INTEGER, nullable=False) == {"type": "integer"}
    assert json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE, nullable=False) == {
        "type": "string",
        "format": "date-time",
        "airbyte_type": "timestamp_with_timezone",
    }
    assert json_schema_for(AirbyteType.BINARY) == {"type": ["string", "null"], "contentEncoding": "base64"}
    assert json_schema_for(AirbyteType.UNKNOWN) == {}
    assert json_schema_for(AirbyteType.ARRAY, items={"type": "integer"}) == {
        "type": ["array", "null"],
        "items": {"type": "integer"},
    }
    handler = TypeHandler(AirbyteType.STRING, schema_extra={"maxLength": 5})
    assert handler.json_schema(nullable=False) == {"type": "string", "maxLength": 5}


@pytest.mark.parametrize("airbyte_type", list(AirbyteType))
def test_schema_type_reads_back_every_json_schema(airbyte_type: AirbyteType) -> None:
    for nullable in (True, False):
        schema = json_schema_for(airbyte_type, nullable=nullable, items={"type": "string"})
        read = schema_type(schema)
        assert read.airbyte_type is airbyte_type
        if airbyte_type is AirbyteType.ARRAY:
            assert read.items == SchemaType(AirbyteType.STRING)


def test_schema_type_of_other_shapes() -> None:
    assert schema_type({"$ref": "WellKnownTypes.json#/definitions/Date"}).airbyte_type is AirbyteType.DATE
    assert schema_type({"oneOf": [{"type": "null"}, {"type": "integer"}]}).airbyte_type is AirbyteType.INTEGER
    assert (
        schema_type({"anyOf": [{"type": "string"}, {"type": "integer"}]}).airbyte_type is AirbyteType.UNKNOWN
    )
    assert schema_type({"type": ["string", "integer"]}).airbyte_type is AirbyteType.UNKNOWN
    assert schema_type({"type": "number", "airbyte_type": "integer"}).airbyte_type is AirbyteType.INTEGER
    assert schema_type({"type": "string", "format": "date-time"}).airbyte_type is (
        AirbyteType.TIMESTAMP_WITH_TIMEZONE
    )
    assert schema_type("not a schema").airbyte_type is AirbyteType.UNKNOWN


def test_cursor_capability() -> None:
    assert TypeHandler(AirbyteType.TIMESTAMP_WITH_TIMEZONE).can_be_cursor
    assert TypeHandler(AirbyteType.STRING).can_be_cursor
    assert not TypeHandler(AirbyteType.BINARY).can_be_cursor
    assert not TypeHandler(AirbyteType.BOOLEAN).can_be_cursor
    assert not TypeHandler(AirbyteType.UNKNOWN).can_be_cursor
    assert not TypeHandler(AirbyteType.INTEGER, cursor=False).can_be_cursor
    assert TypeHandler(AirbyteType.BINARY, cursor=True).can_be_cursor
    assert TypeHandler(AirbyteType.INTEGER).with_(cursor=False).can_be_cursor is False


# ------------------------------------------------------------------------------ state values


@pytest.mark.parametrize(
    ("value", "state"),
    [
        (5, 5),
        ("x", "x"),
        (True, True),
        (1.5, {"float": "1.5"}),  # tagged: a 17-digit double must not come back as a Decimal
        (0.30000000000000004, {"float": "0.30000000000000004"}),
        (math.inf, {"float": "inf"}),  # not a JSON number, and not the text 'inf' either
        (-math.inf, {"float": "-inf"}),
        (Decimal("12345678901234567890.123"), {"decimal": "12345678901234567890.123"}),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 6), {"datetime": "2024-01-02T03:04:05.000006"}),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            {"datetime": "2024-01-02T03:04:05.000006+00:00"},
        ),
        (dt.date(2024, 1, 2), {"date": "2024-01-02"}),
        (dt.time(23, 59, 59, 999999), {"time": "23:59:59.999999"}),
        (dt.timedelta(days=-1, microseconds=5), {"timedelta": [-1, 0, 5]}),
        (uuid.UUID(int=7), {"uuid": "00000000-0000-0000-0000-000000000007"}),
        (b"\x00\xff", {"base64": "AP8="}),
        (memoryview(b"ab"), {"base64": "YWI="}),
    ],
)
def test_state_values(value: Any, state: Any) -> None:
    assert default_state_value(value) == state
    assert TypeHandler(AirbyteType.UNKNOWN).state_value(value) == state
    assert orjson.loads(orjson.dumps(state)) == state  # survives the trip through STATE
    back = state_to_python(loads_exact(orjson.dumps(state)))
    assert back == (bytes(value) if isinstance(value, memoryview) else value) or (
        isinstance(value, float) and math.isnan(value)
    ), "binds back as the very value the driver gave"


def test_state_value_hooks() -> None:
    handler = TypeHandler(AirbyteType.STRING, to_state=lambda v: f"<{v}>")
    assert handler.state_value("a") == "<a>"
    assert handler.state_value(None) is None


# ------------------------------------------------------------------------------ converters


def test_finite_float() -> None:
    assert finite_float(1.5) == 1.5
    assert finite_float(3) == 3.0
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(Unrepresentable) as info:
            finite_float(bad)
        assert info.value.reason == "SOURCE_SERIALIZATION_ERROR"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            Decimal("123456789012345678901234567890.000000000000000000001"),
            b"123456789012345678901234567890.000000000000000000001",
        ),
        (Decimal("1E+30"), b"1000000000000000000000000000000"),
        (Decimal("-0.00"), b"-0.00"),
        (Decimal("1.10"), b"1.10"),
        (Decimal("1E-7"), b"0.0000001"),
        (0.1, b"0.1"),
        (7, b"7"),
    ],
)
def test_exact_decimal(value: Any, text: bytes) -> None:
    rendered = dumps(exact_decimal(value))
    assert rendered == text
    assert json.loads(rendered, parse_float=Decimal) == Decimal(text.decode())


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")])
def test_exact_decimal_refuses_non_finite(bad: Decimal) -> None:
    with pytest.raises(Unrepresentable):
        exact_decimal(bad)


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_wide_int_keeps_every_digit(value: int) -> None:
    assert dumps(wide_int(value)) == str(value).encode()
    assert dumps({"v": wide_int(value)}) == b'{"v":' + str(value).encode() + b"}"


def test_wide_int_boundaries() -> None:
    assert wide_int(2**64 - 1) == 2**64 - 1  # orjson writes up to u64 natively
    assert isinstance(wide_int(2**64), orjson.Fragment)
    assert wide_int(-(2**63)) == -(2**63)
    assert isinstance(wide_int(-(2**63) - 1), orjson.Fragment)
    assert wide_int(Decimal(5)) == 5


def test_base64_bytes() -> None:
    assert base64_bytes(b"\x00\xff") == "AP8="
    assert base64_bytes(memoryview(b"hi")) == "aGk="
    assert base64_bytes(bytearray()) == ""


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ('{"a": 1, "b": [true, null, "x"]}', b'{"a":1,"b":[true,null,"x"]}'),
        ("123456789012345678901234567890", b"123456789012345678901234567890"),
        ('{"n": 123456789012345678901234567890}', b'{"n":123456789012345678901234567890}'),
        ('{"n": -123456789012345678901234567890}', b'{"n":-123456789012345678901234567890}'),
        ("[0.123456789012345678901234567890]", b"[0.123456789012345678901234567890]"),
        ('{"x": 1.5e300, "y": 1e999}', b'{"x":1.5E+300,"y":1E+999}'),
        ('{"u": 18446744073709551615}', b'{"u":18446744073709551615}'),
        ('{"id": "12345678901234567890"}', b'{"id":"12345678901234567890"}'),  # digits in a string
        ('  {"pretty":\n  [1,\n 2]}\n', b'{"pretty":[1,2]}'),  # one line, whatever the layout
        ('"text"', b'"text"'),
        ("null", b"null"),
    ],
)
def test_json_text_is_exact(text: str, rendered: bytes) -> None:
    assert dumps(parse_json_text(text)) == rendered
    assert dumps(parse_json_text(text.encode())) == rendered  # bytes are UTF-8 text


@pytest.mark.parametrize("bad", ["not json", "[1,", "NaN", '{"a": Infinity}', '"\\ud800"', b"\xff\xfe"])
def test_json_text_refuses_what_is_not_json(bad: str | bytes) -> None:
    with pytest.raises(Unrepresentable):
        parse_json_text(bad)


@pytest.mark.parametrize("depth", [300, 1100, 100_000])
@pytest.mark.parametrize("digits", ["", ",12345678901234567890"])
def test_json_text_nested_deeper_than_orjson_writes_is_refused_not_a_crash(depth: int, digits: str) -> None:
    """loads_exact reads any depth; orjson writes 255 levels: a deeper value is Unrepresentable
    (NULL with a change), as it was when loads_exact stopped near 1,000 levels."""
    with pytest.raises(Unrepresentable):
        parse_json_text("[" * depth + "1" + digits + "]" * depth)


def test_json_text_passes_numbers_stored_as_numbers() -> None:
    assert parse_json_text(42) == 42
    assert parse_json_text(True) is True
    assert parse_json_text(1.5) == 1.5
    assert dumps(parse_json_text(2**70)) == str(2**70).encode()
    with pytest.raises(Unrepresentable):
        parse_json_text(math.inf)  # orjson would silently write null


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=10,
    )
)
def test_json_text_round_trips_documents(document: Any) -> None:
    text = json.dumps(document, indent=1)
    assert json.loads(dumps(parse_json_text(text))) == document
