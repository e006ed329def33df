"""Per-column converters of the log path: the snapshot path's handler ``convert``, or a shortcut
that returns the identical value for every text form PostgreSQL writes.

pgoutput sends every value in its text output form (under the session settings of
:data:`~source_postgres.types.SESSION_SETTINGS`), the same form the snapshot path's handlers
convert. For the most common types a shorter function gives the same result:

- text-like types (text, varchar, uuid, enums, ranges, every unregistered type...): their
  handler returns the text itself, so no call at all (:data:`IDENTITY`);
- integers: ``int(text)`` (the handler's ``int(text_form(text))``);
- numeric and floats: a JSON number fragment of the text, the handler itself for NaN/infinities;
- boolean: ``t``/``f`` looked up, the handler for anything else;
- bytea: hex text straight to base64; jsonb: its text as a JSON fragment (the handler's own
  result, without its type checks);
- timestamptz, timestamp, date: the common shape (a four-digit year 0001-9999, the UTC offset
  ``+00`` the session's TimeZone gives) is rearranged by slicing; any other text (BC, years past
  9999, infinities, another offset) goes to the handler. For such text with a valid calendar date
  (PostgreSQL writes no other) the handler's calendar arithmetic returns the same digits it was
  given, so slicing is exact; a timestamptz like ``2023-02-30 ...+00``, which no server sends,
  would be normalised by the handler and not by the shortcut.

The tests compare every shortcut with its handler on edge values and on random ones.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Any

import orjson

from source_postgres.types import (
    BOOLEAN,
    BYTEA,
    DATE,
    INTEGER,
    JSONB,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    PgReadHandler,
)

Converter = Callable[[str], Any]

IDENTITY = None
"""The converter of a type whose handler returns its text unchanged: the value is used as it is."""


def _convert_of(handler: PgReadHandler) -> Converter:
    convert = handler.convert
    assert convert is not None
    return convert


_NUMBER = _convert_of(NUMERIC)
_BOOLEAN = _convert_of(BOOLEAN)
_TIMESTAMPTZ = _convert_of(TIMESTAMPTZ)
_TIMESTAMP = _convert_of(TIMESTAMP)
_DATE = _convert_of(DATE)
_BYTEA = _convert_of(BYTEA)
_BASE64 = binascii.b2a_base64  # what base64.b64encode calls
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"})
_BOOLEANS = {"t": True, "f": False}
_FRAGMENT = orjson.Fragment

# a four-digit year that is not 0000 (PostgreSQL writes years before 1 with " BC"), a month, day,
# hour, minute and second in range; an optional fraction of up to six digits
YMD = r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
HMS = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_TSTZ_COMMON = re.compile(rf"({YMD}) ({HMS})(?:\.([0-9]{{1,6}}))?\+00").fullmatch
_TS_COMMON = re.compile(rf"({YMD}) ({HMS})(?:\.([0-9]{{1,6}}))?").fullmatch
_DATE_COMMON = re.compile(YMD).fullmatch


def number(text: str) -> Any:
    """numeric, float: the text as a JSON number (NaN and the infinities: the handler raises)."""
    if text in _NON_FINITE:
        return _NUMBER(text)
    return _FRAGMENT(text)


def boolean(text: str) -> Any:
    value = _BOOLEANS.get(text)
    return _BOOLEAN(text) if value is None else value


def timestamptz(text: str) -> Any:
    """``2024-05-01 12:00:00.5+00`` -> ``2024-05-01T12:00:00.500000+00:00``."""
    m = _TSTZ_COMMON(text)
    if m is None:
        return _TIMESTAMPTZ(text)
    day, clock, fraction = m.groups()
    return f"{day}T{clock}.{(fraction or '').ljust(6, '0')}+00:00"


def timestamp(text: str) -> Any:
    """``2024-05-01 12:00:00.5`` -> ``2024-05-01T12:00:00.500000``."""
    m = _TS_COMMON(text)
    if m is None:
        return _TIMESTAMP(text)
    day, clock, fraction = m.groups()
    return f"{day}T{clock}.{(fraction or '').ljust(6, '0')}"


def bytea(text: str) -> Any:
    """``\\x0aff`` (hex, the session's ``bytea_output``) -> its bytes in base64."""
    if text[:2] != "\\x":
        return _BYTEA(text)
    return _BASE64(bytes.fromhex(text[2:]), newline=False).decode("ascii")


def date(text: str) -> Any:
    """``2024-05-01`` is its own form."""
    return text if _DATE_COMMON(text) is not None else _DATE(text)


_SHORTCUTS: dict[Any, Converter | None] = {
    TEXT.convert: IDENTITY,
    INTEGER.convert: int,
    NUMERIC.convert: number,
    BOOLEAN.convert: boolean,
    TIMESTAMPTZ.convert: timestamptz,
    TIMESTAMP.convert: timestamp,
    DATE.convert: date,
    BYTEA.convert: bytea,
    JSONB.convert: _FRAGMENT,  # jsonb's text is its JSON
}


def converter(handler: PgReadHandler) -> Converter | None:
    """The function that turns a text value of ``handler``'s type into its JSON-ready value, as
    ``handler.convert`` does; None when the text is the value (or the handler converts nothing)."""
    convert = handler.convert
    if convert is None:
        return None
    return _SHORTCUTS.get(convert, convert)
