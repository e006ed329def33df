"""Numbers: integers (and oid), numeric (bounded or not), floats, money. Their text form is
already a JSON number; NaN and the infinities have none (null, with a change)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    Render,
    Sql,
    compose,
    render_text,
    render_to_json_array,
    text_form,
)


def _integer(value: Any) -> Any:
    return int(text_form(value))


_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"})


def _number(value: Any) -> Any:
    """numeric and float text is already a JSON number (``1.50``, ``1e+20``); NaN/Infinity are not."""
    text = text_form(value)
    if text in _NON_FINITE:
        raise Unrepresentable(f"{text} has no JSON number form")
    return orjson.Fragment(text)


_MONEY_NOISE = re.compile(r"[^0-9.\-]")


def _money(value: Any) -> Any:
    """``-$1,234.50`` (lc_monetary C) -> ``-1234.50``: the exact number, as ``money::numeric``."""
    text = text_form(value).strip()
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    digits = _MONEY_NOISE.sub("", text).lstrip("-")
    if not digits or digits.count(".") > 1:
        raise Unrepresentable("money text is not a number")
    integral, _, fraction = digits.partition(".")
    number = (integral.lstrip("0") or "0") + (f".{fraction}" if fraction else "")
    if negative and number.strip("0.") != "":
        number = "-" + number
    return orjson.Fragment(number)


def _r_number(nan_only: bool) -> tuple[Render, Render, Render]:
    if nan_only:  # numeric(p,s) cannot hold the infinities

        def bad(x: Sql) -> Sql:
            return compose("({} = 'NaN')", x)
    else:

        def bad(x: Sql) -> Sql:
            return compose("({} IN ('NaN', 'Infinity', '-Infinity'))", x)

    def render(x: Sql) -> Sql:
        return compose("CASE WHEN {} THEN NULL ELSE {}::text END", bad(x), x)

    def array(a: Sql) -> Sql:
        return compose("regexp_replace(to_json({})::text, '\"(NaN|-?Infinity)\"', 'null', 'g')", a)

    return render, bad, array


_NUM_RENDER, _NUM_PROBLEM, _NUM_ARRAY = _r_number(nan_only=False)


_NUMP_RENDER, _NUMP_PROBLEM, _NUMP_ARRAY = _r_number(nan_only=True)


INTEGER = PgReadHandler(
    AirbyteType.INTEGER, _integer, render=render_text, column=render_text, native_array=render_to_json_array
)


OID = INTEGER.with_(native_array=None)
"""``to_json`` of an ``oid[]`` gives strings (``["1"]``): its elements are rendered one by one."""


NUMERIC = PgReadHandler(
    AirbyteType.NUMBER, _number, render=_NUM_RENDER, problem=_NUM_PROBLEM, native_array=_NUM_ARRAY
)


NUMERIC_BOUNDED = PgReadHandler(
    AirbyteType.NUMBER, _number, render=_NUMP_RENDER, problem=_NUMP_PROBLEM, native_array=_NUMP_ARRAY
)
"""numeric(p, s): only NaN needs a check (it cannot hold the infinities)."""


FLOAT = NUMERIC


MONEY = PgReadHandler(AirbyteType.NUMBER, _money, render=lambda x: compose("({})::numeric::text", x))
