"""Dates and times: ISO text, six fraction digits, timestamptz in UTC as ``+00:00``; years
before 1 carry `` BC``, years after 9999 a leading ``+``; infinite values are null (a change)."""

from __future__ import annotations

import re
from typing import Any

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
    civil_from_days,
    days_from_civil,
    format_year,
)
from source_postgres.types.base import (
    PgReadHandler,
    Render,
    Sql,
    compose,
    text_form,
    text_literal,
)

_TS = re.compile(
    r"^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$"
)


_DATE = re.compile(r"^(\d{4,})-(\d\d)-(\d\d)( BC)?$")


_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?$")


_DAY_MICROS = 86_400_000_000


def _year_text(year: int, bc: bool) -> tuple[str, str]:
    """PostgreSQL's year (BC years counted from 1) as Airbyte writes it: (year text, era)."""
    if bc:
        return f"{year:04d}", " BC"
    return format_year(year)


def _infinite(text: str) -> None:
    if text in ("infinity", "-infinity"):
        raise Unrepresentable(f"{text} has no date/time form")


def _date(value: Any) -> Any:
    text = text_form(value)
    _infinite(text)
    m = _DATE.match(text)
    if m is None:
        raise Unrepresentable("not a date in ISO form")
    year, era = _year_text(int(m.group(1)), m.group(4) is not None)
    return f"{year}-{m.group(2)}-{m.group(3)}{era}"


def _fraction(digits: str | None) -> str:
    return (digits or "").ljust(6, "0")


def _timestamp(value: Any) -> Any:
    text = text_form(value)
    _infinite(text)
    m = _TS.match(text)
    if m is None or m.group(8) is not None:
        raise Unrepresentable("not a timestamp in ISO form")
    year, era = _year_text(int(m.group(1)), m.group(12) is not None)
    clock = f"{m.group(4)}:{m.group(5)}:{m.group(6)}.{_fraction(m.group(7))}"
    return f"{year}-{m.group(2)}-{m.group(3)}T{clock}{era}"


def _offset_seconds(sign: str | None, hh: str | None, mm: str | None, ss: str | None) -> int:
    if sign is None:
        return 0
    seconds = int(hh or 0) * 3600 + int(mm or 0) * 60 + int(ss or 0)
    return -seconds if sign == "-" else seconds


def _timestamptz(value: Any) -> Any:
    """The instant in UTC, ``+00:00``, six fraction digits; ` BC` before year 1, ``+`` after 9999."""
    text = text_form(value)
    _infinite(text)
    m = _TS.match(text)
    if m is None or m.group(8) is None:
        raise Unrepresentable("not a timestamp with time zone in ISO form")
    year = int(m.group(1))
    astronomical = 1 - year if m.group(12) else year
    days = days_from_civil(astronomical, int(m.group(2)), int(m.group(3)))
    micros = (
        days * _DAY_MICROS
        + ((int(m.group(4)) * 60 + int(m.group(5))) * 60 + int(m.group(6))) * 1_000_000
        + int(_fraction(m.group(7)))
    )
    micros -= _offset_seconds(m.group(8), m.group(9), m.group(10), m.group(11)) * 1_000_000
    days, rest = divmod(micros, _DAY_MICROS)
    y, mo, d = civil_from_days(days)
    shown, era = (1 - y, True) if y <= 0 else (y, False)
    year_text, era_text = _year_text(shown, era)
    seconds, fraction = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{year_text}-{mo:02d}-{d:02d}T{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}+00:00{era_text}"


def _zone_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _time(value: Any) -> Any:
    m = _TIME.match(text_form(value))
    if m is None or m.group(5) is not None:
        raise Unrepresentable("not a time of day")
    return f"{m.group(1)}:{m.group(2)}:{m.group(3)}.{_fraction(m.group(4))}"


def _timetz(value: Any) -> Any:
    m = _TIME.match(text_form(value))
    if m is None or m.group(5) is None:
        raise Unrepresentable("not a time of day with a time zone offset")
    zone = _zone_text(_offset_seconds(m.group(5), m.group(6), m.group(7), m.group(8)))
    return f"{m.group(1)}:{m.group(2)}:{m.group(3)}.{_fraction(m.group(4))}{zone}"


_TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US'


def _r_timestamp(with_zone: bool, quote: str = '"') -> tuple[Render, Render]:
    """The JSON text (``quote`` ``"``) or, ``quote`` empty, the string value of a timestamp."""
    zone = "+00:00" if with_zone else ""
    low = "0001-01-01 00:00:00+00" if with_zone else "0001-01-01 00:00:00"
    high = "10000-01-01 00:00:00+00" if with_zone else "10000-01-01 00:00:00"
    fmt = text_literal(_TS_FORMAT)
    opening = f"'{quote}' || " if quote else ""

    def render(x: Sql) -> Sql:
        # {0} value, {1} year 1, {2} year 10000, {3} to_char format, {4} zone + quote,
        # {5} zone + BC + quote, {6} quote + '+'
        return compose(
            "CASE WHEN {0} >= {1} AND {0} < {2} THEN " + opening + "to_char({0}, {3}) || {4}"
            " WHEN {0} < {1} AND {0} > '-infinity' THEN " + opening + "to_char({0}, {3}) || {5}"
            " WHEN {0} >= {2} AND {0} < 'infinity' THEN {6} || to_char({0}, {3}) || {4} END",
            x,
            text_literal(low),
            text_literal(high),
            fmt,
            text_literal(zone + quote),
            text_literal(zone + " BC" + quote),
            text_literal(quote + "+"),
        )

    def problem(x: Sql) -> Sql:
        return compose("(NOT isfinite({}))", x)

    return render, problem


def _r_date(x: Sql) -> Sql:
    return compose(
        "CASE WHEN {0} > '-infinity' AND {0} < '10000-01-01' THEN '\"' || {0}::text || '\"'"
        " WHEN {0} >= '10000-01-01' AND {0} < 'infinity' THEN '\"+' || {0}::text || '\"' END",
        x,
    )


def _c_date(x: Sql) -> Sql:
    return compose(
        "CASE WHEN {0} > '-infinity' AND {0} < '10000-01-01' THEN {0}::text"
        " WHEN {0} >= '10000-01-01' AND {0} < 'infinity' THEN '+' || {0}::text END",
        x,
    )


def _p_date(x: Sql) -> Sql:
    return compose("(NOT isfinite({}))", x)


def _c_time(x: Sql) -> Sql:
    return compose(
        "CASE WHEN length({0}::text) = 8 THEN {0}::text || '.000000' ELSE rpad({0}::text, 15, '0') END", x
    )


def _r_time(x: Sql) -> Sql:
    return compose("'\"' || {} || '\"'", _c_time(x))


def _c_timetz(x: Sql) -> Sql:
    time = compose("({})::time", x)
    zone = compose("extract(timezone FROM {})::int", x)
    return compose(
        "CASE WHEN length({0}::text) = 8 THEN {0}::text || '.000000'"
        " ELSE rpad({0}::text, 15, '0') END || CASE WHEN {1} < 0 THEN '-' ELSE '+' END"
        " || lpad((abs({1}) / 3600)::text, 2, '0') || ':' || lpad((abs({1}) % 3600 / 60)::text, 2, '0')"
        " || CASE WHEN abs({1}) % 60 <> 0 THEN ':' || lpad((abs({1}) % 60)::text, 2, '0') ELSE '' END",
        time,
        zone,
    )


def _r_timetz(x: Sql) -> Sql:
    return compose("'\"' || {} || '\"'", _c_timetz(x))


_TS_RENDER, _TS_PROBLEM = _r_timestamp(with_zone=False)


_TSTZ_RENDER, _TSTZ_PROBLEM = _r_timestamp(with_zone=True)


_TS_COLUMN, _ = _r_timestamp(with_zone=False, quote="")


_TSTZ_COLUMN, _ = _r_timestamp(with_zone=True, quote="")


DATE = PgReadHandler(AirbyteType.DATE, _date, render=_r_date, problem=_p_date, column=_c_date)


TIME = PgReadHandler(AirbyteType.TIME_WITHOUT_TIMEZONE, _time, render=_r_time, column=_c_time)


TIMETZ = PgReadHandler(AirbyteType.TIME_WITH_TIMEZONE, _timetz, render=_r_timetz, column=_c_timetz)


TIMESTAMP = PgReadHandler(
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    _timestamp,
    render=_TS_RENDER,
    problem=_TS_PROBLEM,
    column=_TS_COLUMN,
)


TIMESTAMPTZ = PgReadHandler(
    AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    _timestamptz,
    render=_TSTZ_RENDER,
    problem=_TSTZ_PROBLEM,
    column=_TSTZ_COLUMN,
)
