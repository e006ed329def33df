"""Calendar arithmetic for any year, and Airbyte's text forms of dates and timestamps."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbkit.db.temporal import (
    DAY_MICROS,
    civil_from_days,
    days_from_civil,
    days_in_month,
    format_date,
    format_time_micros,
    format_timestamp,
    format_year,
    format_ymd,
    is_leap,
)

EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@given(st.dates())
def test_days_agree_with_python_dates(date: dt.date) -> None:
    days = date.toordinal() - EPOCH_ORDINAL
    assert days_from_civil(date.year, date.month, date.day) == days
    assert civil_from_days(days) == (date.year, date.month, date.day)
    assert format_date(days) == date.isoformat()


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_civil_round_trip_for_any_day(days: int) -> None:
    year, month, day = civil_from_days(days)
    assert 1 <= month <= 12
    assert 1 <= day <= days_in_month(year, month)
    assert days_from_civil(year, month, day) == days
    # the next day is the next calendar date
    y2, m2, d2 = civil_from_days(days + 1)
    if d2 == 1:
        assert day == days_in_month(year, month)
        assert (y2, m2) == ((year + 1, 1) if month == 12 else (year, month + 1))
    else:
        assert (y2, m2, d2) == (year, month, day + 1)


@given(st.integers(min_value=-300_000, max_value=300_000), st.integers(1, 12), st.data())
def test_civil_round_trip_for_any_date(year: int, month: int, data: st.DataObject) -> None:
    day = data.draw(st.integers(1, days_in_month(year, month)))
    assert civil_from_days(days_from_civil(year, month, day)) == (year, month, day)


def test_leap_years_of_the_proleptic_gregorian_calendar() -> None:
    assert [y for y in (1900, 2000, 2024, 2100, 0, -4, -100, -400) if is_leap(y)] == [2000, 2024, 0, -4, -400]
    assert days_in_month(0, 2) == 29  # 1 BC was a leap year
    assert days_in_month(-1, 2) == 28
    # 1 BC Dec 31 and AD 1 Jan 1 are consecutive days
    assert days_from_civil(1, 1, 1) - days_from_civil(0, 12, 31) == 1
    assert days_from_civil(1, 1, 1) == dt.date(1, 1, 1).toordinal() - EPOCH_ORDINAL


@pytest.mark.parametrize(
    ("ymd", "text"),
    [
        ((2024, 2, 29), "2024-02-29"),
        ((1, 1, 1), "0001-01-01"),
        ((0, 12, 31), "0001-12-31 BC"),  # astronomical year 0 is 1 BC
        ((-43, 3, 15), "0044-03-15 BC"),
        ((-4712, 1, 1), "4713-01-01 BC"),  # PostgreSQL's first date
        ((9999, 12, 31), "9999-12-31"),
        ((10000, 1, 1), "+10000-01-01"),  # ISO 8601 expanded year
        ((294276, 12, 31), "+294276-12-31"),  # PostgreSQL's last timestamp year
    ],
)
def test_airbyte_date_forms(ymd: tuple[int, int, int], text: str) -> None:
    assert format_date(days_from_civil(*ymd)) == text
    assert format_ymd(*ymd) == text


def test_format_year() -> None:
    assert format_year(2024) == ("2024", "")
    assert format_year(33) == ("0033", "")
    assert format_year(0) == ("0001", " BC")
    assert format_year(-9999) == ("+10000", " BC")
    assert format_year(12345) == ("+12345", "")


@pytest.mark.parametrize(
    ("ymd", "micros_of_day", "with_zone", "text"),
    [
        ((1970, 1, 1), 0, True, "1970-01-01T00:00:00.000000Z"),
        ((2024, 1, 2), 3_723_000_001, False, "2024-01-02T01:02:03.000001"),
        ((0, 6, 1), DAY_MICROS - 1, True, "0001-06-01T23:59:59.999999Z BC"),
        ((-4712, 1, 1), 0, False, "4713-01-01T00:00:00.000000 BC"),
        ((10000, 1, 1), 1, True, "+10000-01-01T00:00:00.000001Z"),
    ],
)
def test_airbyte_timestamp_forms(
    ymd: tuple[int, int, int], micros_of_day: int, with_zone: bool, text: str
) -> None:
    micros = days_from_civil(*ymd) * DAY_MICROS + micros_of_day
    assert format_timestamp(micros, with_zone) == text


@given(st.datetimes())
def test_timestamps_agree_with_python(value: dt.datetime) -> None:
    micros = (value - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    assert format_timestamp(micros, with_zone=False) == value.isoformat(timespec="microseconds")
    assert format_timestamp(micros, with_zone=True) == value.isoformat(timespec="microseconds") + "Z"


@given(st.times())
def test_time_of_day(value: dt.time) -> None:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    assert format_time_micros(micros) == value.isoformat(timespec="microseconds")


def test_forms_pass_the_protocol_validator() -> None:
    from dbkit.protocol.validate import record_validator

    schema = {
        "type": "object",
        "properties": {
            "d": {"type": "string", "format": "date"},
            "ts": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        },
    }
    validator = record_validator(schema)
    for ymd in ((2024, 2, 29), (0, 1, 1), (-4712, 12, 31), (10000, 6, 30), (99999, 1, 1)):
        days = days_from_civil(*ymd)
        record = {"d": format_date(days), "ts": format_timestamp(days * DAY_MICROS, with_zone=True)}
        assert not list(validator.iter_errors(record)), record
