"""Calendar arithmetic for any year (BC and past 9999), and Airbyte's textual forms.

Python's ``datetime`` stops at years 1..9999; databases do not (PostgreSQL: 4713 BC to 294276 AD).
Days and microseconds since 1970-01-01 in the proleptic Gregorian calendar, with astronomical
years (1 BC is year 0), are the exact common currency; Airbyte's text forms put " BC" after
dates and timestamps before year 1 (``0001-01-01 BC`` is astronomical year 0), and years past
9999 are written as ISO 8601 expanded years, sign and all their digits (``+10000-01-01``), which
is also how Java's formatters (and so Airbyte's own connectors) write them.
"""

from __future__ import annotations

from dbkit.protocol.civil import civil_from_days as civil_from_days
from dbkit.protocol.civil import format_time_micros as format_time_micros

DAY_MICROS = 86_400_000_000


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (H. Hinnant's algorithm, with Python's floor division)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    return [31, 29 if is_leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def format_year(year: int) -> tuple[str, str]:
    """An astronomical year as Airbyte shows it: (year text, era suffix).

    ``2024 -> ("2024", "")``, ``0 -> ("0001", " BC")``, ``10000 -> ("+10000", "")``.
    """
    shown, era = (1 - year, " BC") if year <= 0 else (year, "")
    return (f"+{shown}" if shown > 9999 else f"{shown:04d}"), era


def format_ymd(year: int, month: int, day: int) -> str:
    """Airbyte's date form of an astronomical (year, month, day); the date is not validated."""
    text, era = format_year(year)
    return f"{text}-{month:02d}-{day:02d}{era}"


def format_date(days: int) -> str:
    """Airbyte's date form: ``YYYY-MM-DD``, ``YYYY-MM-DD BC`` before year 1, ``+YYYYY-MM-DD`` after 9999."""
    return format_ymd(*civil_from_days(days))


def format_timestamp(micros: int, with_zone: bool) -> str:
    """Airbyte's timestamp form, microseconds always shown; UTC as ``Z`` when ``with_zone``."""
    days, rest = divmod(micros, DAY_MICROS)
    year, month, day = civil_from_days(days)
    text, era = format_year(year)
    zone = "Z" if with_zone else ""
    return f"{text}-{month:02d}-{day:02d}T{format_time_micros(rest)}{zone}{era}"
