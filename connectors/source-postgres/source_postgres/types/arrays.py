"""Arrays: nested JSON arrays of the element type's JSON, from any number of dimensions."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from psycopg import sql

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    Render,
    Sql,
    compose,
    text_form,
)
from source_postgres.types.numeric import INTEGER


def parse_array(text: str, delimiter: str = ",") -> list[Any]:
    """PostgreSQL's array text (``{1,"a b",NULL,{2,3}}``, ``[0:1]={1,2}``) -> nested lists of
    element texts (None for NULL)."""
    if text.startswith("["):  # explicit bounds: "[0:1]={...}"
        text = text[text.index("=") + 1 :]
    pos = 0

    def parse_level() -> list[Any]:
        nonlocal pos
        assert text[pos] == "{"
        pos += 1
        items: list[Any] = []
        if text[pos] == "}":
            pos += 1
            return items
        while True:
            ch = text[pos]
            if ch == "{":
                items.append(parse_level())
            elif ch == '"':
                pos += 1
                out = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    out.append(text[pos])
                    pos += 1
                pos += 1
                items.append("".join(out))
            else:
                start = pos
                while text[pos] not in (delimiter, "}"):
                    pos += 1
                token = text[start:pos].strip()
                items.append(None if token.upper() == "NULL" else token)
            if text[pos] == "}":
                pos += 1
                return items
            pos += 1  # the delimiter

    try:
        return parse_level()
    except (IndexError, AssertionError):
        raise Unrepresentable("malformed array text") from None


_MAX_DIMS = 6


def _elementwise(element: PgReadHandler) -> Render:
    """Nested JSON arrays of the rendered elements, for any number of dimensions (up to 6)."""

    def level(a: Sql, dims: int, depth: int, subscripts: list[Sql]) -> Sql:
        i = sql.Identifier(f"_i{depth}")
        here = [*subscripts, i]
        inner: Sql
        if depth == dims:
            index = sql.SQL("").join(compose("[{}]", s) for s in here)
            inner = compose("coalesce({}, 'null')", element.render(compose("({}){}", a, index)))
        else:
            inner = level(a, dims, depth + 1, here)
        return compose(
            "(SELECT '[' || string_agg({}, ',' ORDER BY {}) || ']' FROM generate_subscripts({}, {}) AS {})",
            inner,
            i,
            a,
            sql.Literal(depth),
            i,
        )

    def render(a: Sql) -> Sql:
        branches = sql.SQL(" ").join(
            compose("WHEN {} THEN {}", sql.Literal(n), level(a, n, 1, [])) for n in range(1, _MAX_DIMS + 1)
        )
        return compose(
            "CASE WHEN cardinality({0}) = 0 THEN '[]' ELSE CASE array_ndims({0}) {1} END END", a, branches
        )

    return render


INTEGER_ARRAYS: weakref.WeakSet[Callable[[Any], Any]] = weakref.WeakSet()
"""The ``convert`` of every array handler whose elements are integers delimited by ``,``: the
JSON of such an array's text ``{1,-2,3}`` (one dimension, no NULL) is ``[1,-2,3]``."""


def array_of(element: PgReadHandler, dims: int = 1, delimiter: str = ",") -> PgReadHandler:
    """Arrays: JSON arrays (nested for more dimensions) of the element's JSON; NULL elements are
    null; elements without a JSON form are null too, with a change for the column."""
    items: dict[str, Any] = element.json_schema(True)
    for _ in range(max(1, dims) - 1):
        items = {"type": ["array", "null"], "items": items}
    render = element.native_array or _elementwise(element)

    problem = None
    if element.problem is not None:
        element_problem = element.problem

        def problem(a: Sql) -> Sql:
            e = sql.Identifier("_e")
            return compose("EXISTS (SELECT FROM unnest({}) AS {} WHERE {})", a, e, element_problem(e))

    convert_element = element.convert
    # the fast path's elements are str: an integer's handler is int() of it
    fast_element = int if convert_element is INTEGER.convert else convert_element

    def convert(value: Any) -> Any:
        text = text_form(value)
        inner = text[1:-1]
        if (
            text[:1] == "{"
            and text[-1:] == "}"
            and "{" not in inner
            and '"' not in inner
            and "}" not in inner
            and "\\" not in inner
        ):
            # one dimension, no quoted element (the common case): what parse_array and walk
            # make of it, without the character loop
            if not inner:
                return []
            if fast_element is int and "n" not in inner and "N" not in inner:
                return [int(t) for t in inner.split(delimiter)]  # int() strips what strip() would
            tokens = [t.strip() for t in inner.split(delimiter)]
            if fast_element is None:
                return [None if t.upper() == "NULL" else t for t in tokens]
            try:
                return [None if t.upper() == "NULL" else fast_element(t) for t in tokens]
            except Unrepresentable:
                pass  # walk nulls the element and says so
        nested = parse_array(text, delimiter)
        nulled = False

        def walk(node: Any) -> Any:
            nonlocal nulled
            if isinstance(node, list):
                return [walk(n) for n in node]
            if node is None or convert_element is None:
                return node
            try:
                return convert_element(node)
            except Unrepresentable as exc:
                nulled = True
                return exc.replacement

        out = walk(nested)
        if nulled:
            raise Unrepresentable("an element has no JSON form", replacement=out)
        return out

    if fast_element is int and delimiter == ",":
        INTEGER_ARRAYS.add(convert)
    return PgReadHandler(
        AirbyteType.ARRAY,
        convert,
        items=items,
        cursor=False,
        render=render,
        problem=problem,
        type_name=f"{element.type_name}[]",
    )
