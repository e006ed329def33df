"""loads_exact: every number equals its source text, the fast path is taken for plain documents."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkit.protocol.jsonio import loads_exact, needs_exact_parse


@dataclass(frozen=True)
class Num:
    """A JSON number token, kept as the text that was written."""

    text: str


def render(node: Any) -> str:
    if isinstance(node, Num):
        return node.text
    if isinstance(node, list):
        return "[" + ", ".join(render(v) for v in node) + "]"
    if isinstance(node, dict):
        return "{" + ",".join(f"{orjson.dumps(k).decode()}: {render(v)}" for k, v in node.items()) + "}"
    return orjson.dumps(node).decode()


def as_decimal(value: Any) -> Decimal:
    assert not isinstance(value, bool)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text that reads back as this double
    assert isinstance(value, int | Decimal), type(value)
    return Decimal(value)


def assert_exact(node: Any, parsed: Any) -> None:
    if isinstance(node, Num):
        assert as_decimal(parsed) == Decimal(node.text), (node.text, parsed)
        if not any(c in node.text for c in ".eE"):
            assert type(parsed) is int  # an integer literal stays an integer, of any width
    elif isinstance(node, list):
        assert isinstance(parsed, list)
        assert len(parsed) == len(node)
        for a, b in zip(node, parsed, strict=True):
            assert_exact(a, b)
    elif isinstance(node, dict):
        assert isinstance(parsed, dict)
        assert list(parsed) == list(node)
        for key, value in node.items():
            assert_exact(value, parsed[key])
    else:
        assert type(parsed) is type(node)
        assert parsed == node


# ------------------------------------------------------------------------------ strategies


@st.composite
def decimals(draw: st.DrawFn, max_digits: int = 60, max_exponent: int = 400, min_digits: int = 1) -> Num:
    """A decimal literal with ``min_digits`` to ``max_digits`` significant digits, maybe with an exponent."""
    count = draw(st.integers(min_digits, max_digits))
    digits = draw(st.sampled_from("123456789")) + draw(
        st.text("0123456789", min_size=count - 1, max_size=count - 1)
    )
    if count == 1 and draw(st.booleans()):
        digits = "0"
    point = draw(st.integers(0, len(digits) - 1))
    text = digits[: point + 1] + ("." + digits[point + 1 :] if point + 1 < len(digits) else "")
    if draw(st.booleans()):
        exponent = draw(st.integers(-max_exponent, max_exponent))
        text += draw(st.sampled_from(["e", "E"])) + ("+" if exponent >= 0 and draw(st.booleans()) else "")
        text += str(exponent)
    elif "." not in text:  # a decimal literal needs a point or an exponent; keep the digit count
        text = digits[:-1] + "." + digits[-1] if len(digits) > 1 else digits + ".0"
    return Num(draw(st.sampled_from(["", "-"])) + text)


big_ints = st.one_of(st.integers(2**64, 10**80), st.integers(-(10**80), -(2**63) - 1)).map(
    lambda i: Num(str(i))
)
small_ints = st.integers(-(2**53), 2**53).map(lambda i: Num(str(i)))
floats = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Num(repr(f)))
digit_strings = st.builds(
    lambda head, run, tail: f"{head}{run}{tail}",
    st.sampled_from(["", "id ", "x"]),
    st.one_of(st.integers(10**15, 10**40), st.decimals(10**15, 10**30, places=5)).map(str),
    st.sampled_from(["", " kg", "."]),
)
texts = st.one_of(st.text(st.characters(codec="utf-8"), max_size=20), digit_strings)
scalars = st.one_of(decimals(), big_ints, small_ints, floats, texts, st.booleans(), st.none())


def documents(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=25,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(scalars, texts))
def test_numbers_equal_their_source_text(document: Any) -> None:
    text = render(document)
    assert_exact(document, loads_exact(text.encode()))
    assert_exact(document, loads_exact(text))  # str input too


@settings(max_examples=300, deadline=None)
@given(st.one_of(decimals(min_digits=14, max_digits=20, max_exponent=30), floats))
def test_numbers_at_the_precision_of_a_double_are_exact(number: Num) -> None:
    assert_exact(number, loads_exact(number.text))
    assert_exact([number], loads_exact(f"[{number.text}]"))


# Plain documents: at most 15 digits per number, exponents of at most two digits, no long digit
# runs in strings. A double reproduces every such number, so orjson alone parses them.
plain_decimals = decimals(max_digits=15, max_exponent=99)
plain_ints = st.integers(-(10**15) + 1, 10**15 - 1).map(lambda i: Num(str(i)))
plain_texts = st.text(st.characters(codec="utf-8", exclude_categories=["Nd"]), max_size=20) | st.integers(
    0, 10**15 - 1
).map(str)
plain_scalars = st.one_of(plain_decimals, plain_ints, plain_texts, st.booleans(), st.none())


@settings(max_examples=200, deadline=None)
@given(documents(plain_scalars, plain_texts))
def test_plain_documents_take_the_fast_path(document: Any) -> None:
    raw = render(document).encode()
    assert needs_exact_parse(raw) is False
    parsed = loads_exact(raw)
    assert parsed == orjson.loads(raw)
    assert_exact(document, parsed)


@pytest.mark.parametrize(
    "raw",
    [
        b"12345678901234567890.123",
        b"1234567890123456",
        b"[1e400]",
        b"[1.5E-308]",
        b'{"s": "1234567890123456"}',
        b'{"s": "123456789012345.6"}',
    ],
)
def test_long_numbers_take_the_exact_path(raw: bytes) -> None:
    assert needs_exact_parse(raw) is True


def test_exact_path_values() -> None:
    parsed = loads_exact(b'{"d": 12345678901234567890.123, "i": 123456789012345678901234567890, "e": 1e400}')
    assert parsed == {
        "d": Decimal("12345678901234567890.123"),
        "i": 123456789012345678901234567890,
        "e": Decimal("1e400"),
    }
    assert type(parsed["i"]) is int


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("padding", ["", ', "long": "12345678901234567890"'])
def test_nan_and_infinity_are_rejected(constant: str, padding: str) -> None:
    raw = f'{{"v": {constant}{padding}}}'.encode()
    assert needs_exact_parse(raw) is bool(padding)  # both paths are exercised
    with pytest.raises(ValueError):
        loads_exact(raw)


INVALID = [b"", b"{", b"[1,]", b"{'a': 1}", b'{"a": 01}', b"[1] [2]", b'{"a" 1}', b"[tru]"]


@pytest.mark.parametrize("raw", INVALID)
@pytest.mark.parametrize("padding", [b"", b' ["12345678901234567890"] '])
def test_invalid_json_is_rejected_on_both_paths(raw: bytes, padding: bytes) -> None:
    document = padding + raw if raw else raw
    assert needs_exact_parse(document) is bool(padding and raw)
    with pytest.raises(ValueError):
        loads_exact(document)


# ------------------------------------------------------------------------------ integers past 4,300 digits
# Python refuses to turn a decimal text of more than 4,300 digits into an int (and back) unless
# the interpreter-wide limit is raised; such an integer is read as a Decimal of the same digits.

HUGE = "9" * 4999 + "7"  # 5,000 digits, as source-postgres writes a numeric(5000, 0)


@pytest.mark.parametrize("text", [HUGE, "-" + HUGE, "1" + "0" * 4300, "4" * 4300])
@pytest.mark.parametrize("padding", ["", ', "s": "x"'])
def test_integers_past_the_digit_limit_are_read_exactly(text: str, padding: str) -> None:
    parsed = loads_exact(f'{{"n": {text}{padding}}}'.encode())
    value = parsed["n"]
    digits = len(text.lstrip("-"))
    if digits <= 4300:
        assert type(value) is int
    else:
        assert type(value) is Decimal
        assert value.as_tuple().exponent == 0
        assert str(value) == text, "every digit, written back without an exponent"
    assert value == Decimal(text)


def test_a_huge_integer_is_written_back_digit_for_digit() -> None:
    from dbkit.protocol.messages import dumps_exact

    document = f'{{"state": {{"n": {HUGE}, "m": [-{HUGE}]}}}}'.encode()
    assert dumps_exact(loads_exact(document)) == document.replace(b" ", b"")


# ------------------------------------------------------------------------------ any nesting depth
# The C parsers stop at their recursion limits (the standard library's near 1,000 levels,
# orjson's at 1,024, orjson's writer at 255); a deeper document is read and written level by level.

DEPTHS = [100, 256, 600, 1000, 1025, 100_000]


def nested_text(depth: int, padding: str = "") -> str:
    """``depth`` levels: arrays and objects in turn around ``{"v": 2}``."""
    opened, closed = [], []
    for level in range(depth - 1):
        if level % 2:
            opened.append('{"k":')
            closed.append("}")
        else:
            opened.append("[")
            closed.append("]")
    return "".join(opened) + '{"v":2' + padding + "}" + "".join(reversed(closed))


def innermost(value: Any) -> tuple[int, Any]:
    levels = 0
    while isinstance(value, list | dict):
        levels += 1
        inner = value[0] if isinstance(value, list) else value.get("k", value)
        if inner is value:
            return levels, value
        value = inner
    return levels, value


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("padding", ["", ',"long":12345678901234567890'], ids=["orjson", "exact"])
def test_documents_of_any_depth_are_read_and_written_back(depth: int, padding: str) -> None:
    from dbkit.protocol.messages import dumps_exact

    text = nested_text(depth, padding)
    parsed = loads_exact(text.encode())
    levels, inner = innermost(parsed)
    assert levels == depth
    assert inner["v"] == 2
    if padding:
        assert inner["long"] == 12345678901234567890
    written = dumps_exact({"state": parsed}, orjson.OPT_APPEND_NEWLINE)
    assert written == f'{{"state":{text}}}\n'.encode()
