"""Dates and times. DATE as ``YYYY-MM-DD``; DATETIME as local time and TIMESTAMP as an instant
(read in UTC, ``+00:00``), both with six fraction digits; TIME as a time of day with six
fraction digits. Zero and invalid dates (``0000-00-00``, ``2024-02-00``), and TIME values that
are no time of day (negative, or 24 hours and more: TIME spans -838:59:59 to 838:59:59), have no
form of their declared type: they are null with a change, never a failed read."""

from __future__ import annotations

import re
from typing import Any

from dbkit.db import AirbyteType, Unrepresentable, days_in_month
from source_mysql.types.base import MySqlReadHandler, text_form

_DATE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)$")
_DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")
_TIME = re.compile(r"^(-?)(\d{2,3}):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")


def _valid(year: str, month: str, day: str) -> None:
    y, m, d = int(year), int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= days_in_month(y, m)):
        raise Unrepresentable(f"{year}-{month}-{day} is a zero or invalid date")


def _date(value: Any) -> Any:
    text = text_form(value)
    m = _DATE.match(text)
    if m is None:
        raise Unrepresentable("not a date")
    _valid(*m.group(1, 2, 3))
    return text


def _datetime_text(value: Any) -> str:
    m = _DATETIME.match(text_form(value))
    if m is None:
        raise Unrepresentable("not a datetime")
    _valid(*m.group(1, 2, 3))
    fraction = (m.group(7) or "").ljust(6, "0")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}.{fraction}"


def _datetime(value: Any) -> Any:
    return _datetime_text(value)


def _timestamp(value: Any) -> Any:
    return _datetime_text(value) + "+00:00"


def _time(value: Any) -> Any:
    m = _TIME.match(text_form(value))
    if m is None:
        raise Unrepresentable("not a time")
    if m.group(1) or int(m.group(2)) >= 24:
        raise Unrepresentable("TIME value outside 00:00:00..23:59:59.999999 is no time of day")
    return f"{int(m.group(2)):02d}:{m.group(3)}:{m.group(4)}.{(m.group(5) or '').ljust(6, '0')}"


def _p_date(x: str) -> str:
    # zero dates, zero parts and impossible days give NULL in date arithmetic
    return f"(({x}) + INTERVAL 0 DAY IS NULL)"


def _r_date(x: str) -> str:
    return f"IF({_p_date(x)}, NULL, CONCAT('\"', {x}, '\"'))"


def _r_datetime(suffix: str) -> Any:
    def render(x: str) -> str:
        return f"IF({_p_date(x)}, NULL, CONCAT('\"', DATE_FORMAT({x}, '%Y-%m-%dT%H:%i:%s.%f'), '{suffix}\"'))"

    return render


def _p_time(x: str) -> str:
    return f"(({x}) < TIME'00:00:00' OR ({x}) >= TIME'24:00:00')"


def _r_time(x: str) -> str:
    return f"IF({_p_time(x)}, NULL, CONCAT('\"', TIME_FORMAT({x}, '%H:%i:%s.%f'), '\"'))"


DATE = MySqlReadHandler(AirbyteType.DATE, _date, render=_r_date, problem=_p_date)


DATETIME = MySqlReadHandler(
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE, _datetime, render=_r_datetime(""), problem=_p_date
)


TIMESTAMP = MySqlReadHandler(
    AirbyteType.TIMESTAMP_WITH_TIMEZONE, _timestamp, render=_r_datetime("+00:00"), problem=_p_date
)


TIME = MySqlReadHandler(AirbyteType.TIME_WITHOUT_TIMEZONE, _time, render=_r_time, problem=_p_time)
