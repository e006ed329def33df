"""JSON of any nesting depth: a parser, a writer and walks that use no recursion.

The C parsers and writers recurse once per level and stop at a depth limit of their own: the
standard library's and msgspec's at Python's recursion limit (about 1,000 levels, less the
caller's own frames), orjson's parser at 1,024 levels and its writer at 255. A document nested
deeper is still valid JSON. The functions here take it level by level with a stack of their own,
so only memory bounds the depth; they run at Python speed, and the callers use them only where
the C functions refused a document (:func:`dbkit.protocol.jsonio.loads_exact` and
:func:`~dbkit.protocol.messages.dumps_exact` fall back on them).

Values are those of the standard library's parser with every number exact: ``int`` for integer
literals (``Decimal`` of the same digits past Python's 4,300-digit conversion limit), ``Decimal``
for the others; NaN and Infinity are refused, as is anything else JSON does not allow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# One token after optional whitespace: a string (escapes checked when it is decoded), a number as
# JSON writes it (integer part, then fraction and exponent), a punctuation mark or a literal.
# Possessive quantifiers: a string that never ends is refused in linear time.
_TOKEN = re.compile(
    r"[ \t\n\r]*+(?:"
    r'("(?:[^"\\\x00-\x1f]++|\\.)*+")'
    r"|(-?(?:0|[1-9][0-9]*+))((?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+)"
    r"|([\[\]{},:])"
    r"|(true|false|null)"
    r")"
)
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}

# what the parser expects next
_VALUE, _FIRST_ITEM, _FIRST_KEY, _KEY, _COLON, _NEXT, _END = range(7)
_EXPECTED = {
    _VALUE: "Expecting value",
    _FIRST_ITEM: "Expecting value",
    _FIRST_KEY: "Expecting property name enclosed in double quotes",
    _KEY: "Expecting property name enclosed in double quotes",
    _COLON: "Expecting ':' delimiter",
    _NEXT: "Expecting ',' delimiter",
}


class HugeNumber(Decimal):
    """A JSON number whose exponent is past what ``Decimal`` holds (beyond 10**18 in size, e.g.
    ``1E11111111111111111111``): valid JSON that no database stores. Its value is NaN (it is
    never finite, so every number rule refuses it); :attr:`token` keeps its text, which JSON
    written back from it holds (:func:`exact_default`)."""

    token: str

    def __new__(cls, token: str) -> HugeNumber:
        number = super().__new__(cls, "NaN")
        number.token = token
        return number


def number_from_text(token: str) -> Decimal:
    """A JSON number literal with a fraction or an exponent as an exact ``Decimal``; one whose
    exponent ``Decimal`` cannot hold as a :class:`HugeNumber`. Also the ``parse_float`` of
    :func:`dbkit.protocol.jsonio.loads_decimal`."""
    try:
        return Decimal(token)
    except InvalidOperation:
        return HugeNumber(token)


def int_or_decimal(text: str) -> int | Decimal:
    """An integer literal as ``int``; one too long for ``int`` (past the interpreter's limit on
    decimal conversions, 4,300 digits unless ``sys.set_int_max_str_digits`` changed it) as a
    ``Decimal`` of the same digits (exponent 0), which converts to text and back without that
    limit. Also the ``parse_int`` of :func:`dbkit.protocol.jsonio.loads_decimal`."""
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def _string(token: str) -> str:
    if "\\" not in token:
        return token[1:-1]
    value: str = json.loads(token)  # the escapes, decoded (and checked) in C
    return value


def parse(text: str) -> Any:
    """The JSON document ``text`` (see the module doc for the values); raises
    :class:`json.JSONDecodeError` (a ``ValueError``) naming the position of the first error."""
    containers: list[Any] = []  # the open arrays and objects, innermost last
    keys: list[Any] = []  # for each open container: the key its next value goes under
    root: Any = None
    state = _VALUE
    pos = 0
    match = _TOKEN.match
    while state != _END:
        m = match(text, pos)
        if m is None:
            raise _error(state, text, pos)
        string, whole, rest, mark, literal = m.groups()
        start, pos = pos, m.end()
        if mark is not None:
            if mark == "[" or mark == "{":
                if state != _VALUE and state != _FIRST_ITEM:
                    raise _error(state, text, start)
                value: Any = [] if mark == "[" else {}
                if containers:
                    parent = containers[-1]
                    if type(parent) is list:
                        parent.append(value)
                    else:
                        parent[keys[-1]] = value
                else:
                    root = value
                containers.append(value)
                keys.append(None)
                state = _FIRST_ITEM if mark == "[" else _FIRST_KEY
            elif mark == "]" or mark == "}":
                closes = list if mark == "]" else dict
                first = _FIRST_ITEM if mark == "]" else _FIRST_KEY
                if (state != _NEXT and state != first) or type(containers[-1]) is not closes:
                    raise _error(state, text, start)
                containers.pop()
                keys.pop()
                state = _NEXT if containers else _END
            elif mark == ",":
                if state != _NEXT:
                    raise _error(state, text, start)
                state = _VALUE if type(containers[-1]) is list else _KEY
            else:  # ":"
                if state != _COLON:
                    raise _error(state, text, start)
                state = _VALUE
            continue
        if state in (_FIRST_KEY, _KEY):
            if string is None:
                raise _error(state, text, start)
            keys[-1] = _string(string)
            state = _COLON
            continue
        if state != _VALUE and state != _FIRST_ITEM:
            raise _error(state, text, start)
        if string is not None:
            value = _string(string)
        elif whole is not None:
            value = number_from_text(whole + rest) if rest else int_or_decimal(whole)
        else:
            value = _LITERALS[literal]
        if containers:
            parent = containers[-1]
            if type(parent) is list:
                parent.append(value)
            else:
                parent[keys[-1]] = value
            state = _NEXT
        else:
            root = value
            state = _END
    end = _skip(text, pos)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return root


def _skip(text: str, pos: int) -> int:
    """The position of the first character at or after ``pos`` that is not whitespace."""
    m = _WHITESPACE.match(text, pos)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def _error(state: int, text: str, pos: int) -> json.JSONDecodeError:
    """What is wrong at ``pos`` (after whitespace), by what the parser expected there."""
    return json.JSONDecodeError(_EXPECTED[state], text, _skip(text, pos))


# ------------------------------------------------------------------------------ writing

_DONE = object()


def int_text(value: int) -> str:
    """The decimal digits of an integer of any size (``str`` refuses more than 4,300 digits
    unless the interpreter-wide limit is raised; ``Decimal`` converts without it)."""
    try:
        return str(value)
    except ValueError:
        return str(Decimal(value))


def exact_default(value: Any) -> Any:
    """orjson ``default``: exact numbers (``Decimal``, integers of any width) are written digit
    for digit."""
    if isinstance(value, HugeNumber):
        return orjson.Fragment(value.token)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} has no JSON form")
        return orjson.Fragment(str(value))
    if isinstance(value, int):  # wider than 64 bits
        return orjson.Fragment(int_text(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, escape_surrogates: bool = True, ascii_only: bool = False, indent: int = 0) -> bytes:
    """JSON of ``value`` (dicts and other mappings, lists and tuples, of any depth; leaves as
    orjson writes them, integers of any width and ``Decimal`` digit for digit): compact, or
    indented by ``indent`` spaces per level as orjson's ``OPT_INDENT_2`` does.

    A string holding a lone UTF-16 surrogate (which only a ``"\\ud800"`` escape in parsed input
    makes) is written with ``\\u`` escapes when ``escape_surrogates``, else refused with
    orjson's ``JSONEncodeError`` (a ``TypeError``); with ``ascii_only`` every string is written
    in ASCII. A key must be a string; anything else that is not JSON raises ``TypeError``."""
    out: list[bytes] = []
    append = out.append
    stack: list[list[Any]] = []  # [items iterator, is an object, nothing written in it yet]
    colon = b": " if indent else b":"
    current = value
    fresh = True  # ``current`` is still to be written
    while True:
        if fresh:
            if isinstance(current, Mapping):
                append(b"{")
                stack.append([iter(current.items()), True, True])
            elif isinstance(current, list | tuple):
                append(b"[")
                stack.append([iter(current), False, True])
            else:
                append(_leaf(current, escape_surrogates, ascii_only))
        if not stack:
            return b"".join(out)
        top = stack[-1]
        item: Any = next(top[0], _DONE)
        if item is _DONE:
            stack.pop()
            if indent and not top[2]:
                append(b"\n" + b" " * (indent * len(stack)))
            append(b"}" if top[1] else b"]")
            fresh = False
            continue
        if not top[2]:
            append(b",")
        top[2] = False
        if indent:
            append(b"\n" + b" " * (indent * len(stack)))
        if top[1]:
            key, current = item
            if not isinstance(key, str):
                raise TypeError("Dict key must be str")
            append(_leaf(key, escape_surrogates, ascii_only))
            append(colon)
        else:
            current = item
        fresh = True


def _leaf(value: Any, escape_surrogates: bool, ascii_only: bool) -> bytes:
    if isinstance(value, str):
        if ascii_only:
            return json.dumps(value).encode("ascii")
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            if not escape_surrogates:
                raise
            return json.dumps(value).encode("ascii")  # the lone surrogate as its escape
    if type(value) is int:
        return int_text(value).encode("ascii")
    return orjson.dumps(value, default=exact_default)


# ------------------------------------------------------------------------------ walks


def depth(value: Any) -> int:
    """How deeply ``value`` nests arrays and objects: 0 for a scalar, 1 for ``[]`` or ``[1]``,
    2 for ``[[1]]`` or ``{"a": {}}``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list | tuple))
    return deepest


def scalars(value: Any) -> Iterator[Any]:
    """Every value in ``value`` that is not an array or object (object keys excluded), in no
    particular order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            yield item


def map_strings(value: Any, fix: Callable[[str], str | None]) -> tuple[Any, bool]:
    """``value`` with every string, object keys included, replaced by ``fix(string)`` (``None``:
    kept); and whether any was replaced. Containers are copied (tuples become lists); nothing
    else is."""
    changed = False

    def leaf(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, str):
            fixed = fix(item)
            if fixed is not None:
                changed = True
                return fixed
        return item

    def empty(item: Any) -> Any:
        return {} if isinstance(item, dict) else []

    if not isinstance(value, dict | list | tuple):
        return leaf(value), changed
    root = empty(value)
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        if isinstance(source, dict):
            for key, item in source.items():
                key = leaf(key)
                if isinstance(item, dict | list | tuple):
                    target[key] = child = empty(item)
                    stack.append((item, child))
                else:
                    target[key] = leaf(item)
        else:
            for item in source:
                if isinstance(item, dict | list | tuple):
                    target.append(child := empty(item))
                    stack.append((item, child))
                else:
                    target.append(leaf(item))
    return root, changed
