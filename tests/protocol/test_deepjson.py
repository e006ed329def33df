"""dbkit.protocol.deepjson: the parser reads exactly what the standard library's parser reads
(same values, same refusals), the writer writes what orjson writes, both at any depth."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkit.protocol import deepjson
from dbkit.protocol.jsonio import reject_constant


def reference(text: str) -> Any:
    """The standard library's reading, every number exact."""
    return json.loads(text, parse_float=Decimal, parse_constant=reject_constant)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 == 1.0 == True would not do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return bool(a.as_tuple() == b.as_tuple())
    return bool(a == b)


numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "-0", "1e5", "1E-5", "-1.0e+10", "0.000", "10", "1.5e300"]),
)
strings = st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)) | st.sampled_from(
    ['"\\ud800"', '"\\u00e9\\n\\t\\"\\\\/"', '"\\uD83D\\uDE00"', '"a\\u0000b"']
)
scalars = st.one_of(numbers, strings, st.sampled_from(["true", "false", "null"]))
spacing = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A JSON text built token by token (whitespace anywhere JSON allows it)."""

    def value(budget: int) -> str:
        kind = draw(st.integers(0, 2 if budget > 0 else 0))
        ws = draw(spacing)
        if kind == 0:
            return ws + draw(scalars) + draw(spacing)
        items = [value(budget - 1) for _ in range(draw(st.integers(0, 3)))]
        if kind == 1:
            return ws + "[" + ",".join(items) + "]" + draw(spacing)
        keys = [draw(strings) + draw(spacing) for _ in items]
        return ws + "{" + ",".join(f"{k}:{v}" for k, v in zip(keys, items, strict=True)) + "}" + draw(spacing)

    return value(draw(st.integers(0, 4)))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A JSON text with a few characters deleted, inserted or replaced: valid or not."""
    text = draw(texts())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from([*'[]{},:"\\ 0-1.eE+tfnul', "\x00", "\x1f", "é", "NaN", "Infinity"]))
        if action == "delete":
            text = text[:at] + text[at + 1 :]
        elif action == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + 1 :]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.one_of(texts(), mutated()))
def test_the_parser_reads_what_the_standard_library_reads(text: str) -> None:
    try:
        expected = reference(text)
    except ValueError:
        with pytest.raises(ValueError):
            deepjson.parse(text)
        return
    assert same(deepjson.parse(text), expected), text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting value: line 1 column 1 (char 0)"),
        ("[1,]", "Expecting value: line 1 column 4 (char 3)"),
        ('{"a" 1}', "Expecting ':' delimiter: line 1 column 6 (char 5)"),
        ("[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
        ("[1] x", "Extra data: line 1 column 5 (char 4)"),
        ('{"a":1,}', "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"),
        ("[" * 5000 + "]" * 4999, "Expecting ',' delimiter: line 1 column 10000 (char 9999)"),
    ],
)
def test_errors_name_the_position_not_the_content(text: str, message: str) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        deepjson.parse(text)
    assert str(caught.value) == message


def test_an_unterminated_string_is_refused_in_linear_time() -> None:
    with pytest.raises(ValueError):
        deepjson.parse('["' + "a\\n" * 200_000)


def test_integers_past_the_digit_limit_keep_their_digits() -> None:
    huge = "9" * 5000
    parsed = deepjson.parse(f"[{huge}, -{huge}, 7]")
    assert [str(v) for v in parsed] == [huge, "-" + huge, "7"]
    assert [type(v) for v in parsed] == [Decimal, Decimal, int]
    assert deepjson.dumps(parsed) == f"[{huge},-{huge},7]".encode()
    assert deepjson.dumps([10**5000]) == b"[1" + b"0" * 5000 + b"]"


# ------------------------------------------------------------------------------ writing

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.decimals(allow_nan=False, allow_infinity=False),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, database=None)
@given(values, st.sampled_from([0, 2]))
def test_the_writer_writes_what_orjson_writes(value: Any, indent: int) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    expected = orjson.dumps(value, option=option, default=deepjson.exact_default)
    assert deepjson.dumps(value, indent=indent) == expected


def test_the_writer_takes_any_depth_mappings_tuples_and_lone_surrogates() -> None:
    deep: Any = "x"
    for level in range(100_000):
        deep = [deep] if level % 2 else {"k": deep}
    text = deepjson.dumps(deep)
    assert text == b'[{"k":' * 50_000 + b'"x"' + b"}]" * 50_000
    assert deepjson.depth(deepjson.parse(text.decode())) == 100_000
    proxy: Mapping[str, Any] = MappingProxyType({"a": (1, 2)})
    assert deepjson.dumps(proxy) == b'{"a":[1,2]}'
    assert deepjson.dumps({"s": "a\ud800é"}) == b'{"s":"a\\ud800\\u00e9"}'
    with pytest.raises(TypeError):
        deepjson.dumps({"s": "a\ud800"}, escape_surrogates=False)
    assert deepjson.dumps(["é"], ascii_only=True) == b'["\\u00e9"]'
    with pytest.raises(TypeError):
        deepjson.dumps({1: 2})
    with pytest.raises(TypeError):
        deepjson.dumps([Decimal("NaN")])


# ------------------------------------------------------------------------------ walks


def test_depth_scalars_and_map_strings() -> None:
    value = {"a": [1, {"b": "x\x00"}], "c\x00": [], "d": ()}
    assert deepjson.depth(value) == 3
    assert deepjson.depth(5) == 0
    assert deepjson.depth([]) == 1
    assert sorted(map(str, deepjson.scalars(value))) == ["1", "x\x00"]
    fixed, changed = deepjson.map_strings(value, lambda s: s.replace("\x00", "") if "\x00" in s else None)
    assert changed
    assert fixed == {"a": [1, {"b": "x"}], "c": [], "d": []}
    assert list(fixed) == ["a", "c", "d"]
    same_again, changed = deepjson.map_strings(fixed, lambda s: None)
    assert same_again == fixed
    assert not changed
    assert deepjson.map_strings("x\x00", lambda s: "x") == ("x", True)
    deep: Any = "\x00"
    for _ in range(50_000):
        deep = [deep]
    fixed, changed = deepjson.map_strings(deep, lambda s: "")
    assert changed
    assert deepjson.depth(fixed) == 50_000
    assert list(deepjson.scalars(deep)) == ["\x00"]


@pytest.mark.parametrize(
    "token", ["1E11111111111111111111", "-2.5e-11111111111111111111", "1.0E+1000000000000000000"]
)
def test_a_number_whose_exponent_decimal_cannot_hold_is_kept_as_its_text(token: str) -> None:
    """Valid JSON: read as a ``HugeNumber`` (never finite, so no number rule takes it), by the
    C parser and by the one for any depth, and written back as the same text."""
    from dbkit.protocol.jsonio import loads_decimal

    deep = "[" * 1100 + token + "]" * 1100
    for value in (loads_decimal(f'{{"n": {token}}}')["n"], deepjson.parse(deep)[0]):
        while isinstance(value, list):
            value = value[0]
        assert isinstance(value, deepjson.HugeNumber)
        assert not value.is_finite()
        assert deepjson.dumps({"n": value}) == b'{"n":' + token.encode() + b"}"
