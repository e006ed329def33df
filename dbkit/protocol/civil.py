"""Days since 1970-01-01 as proleptic Gregorian dates and microseconds as clock times, in the
lowest layer (the typed frames' canonical strings need them; ``dbkit.db.temporal`` uses the
same functions)."""

from __future__ import annotations


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(astronomical year, month, day) of a day number since 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def format_time_micros(micros: int) -> str:
    """``HH:MM:SS.ffffff`` of microseconds since midnight (0 <= micros < one day)."""
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}"
