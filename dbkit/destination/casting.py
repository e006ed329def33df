"""What each JSON value becomes in a typed column: stored, coerced losslessly, or NULL + a change.

Each column is converted with a vectorized path first (Arrow infers and casts the whole column
in C++) and falls back to the per-value path for the values the vectorized one cannot prove it
converts exactly as the per-value path would: the result never depends on which path ran (a
property the tests check). The per-value path decides value by value: stored as is, coerced
losslessly, or NULL with a ``_airbyte_meta.changes`` entry. Nothing here rounds a number
silently: integers stay int64, numbers travel as exact decimal text, timestamps as microseconds
(a fraction finer than microseconds is cut, a leap second ``:60`` is stored as ``:59``). Only
when the dialect says a bare number in a JSON column becomes a binary float
(``Limits.float_json_numbers``, SQLite's JSON columns) is such a number that no double holds
exactly stored as the nearest double, with a ``TRUNCATED`` change
(``DESTINATION_FIELD_SIZE_LIMITATION``).

Text the database cannot hold is repaired, never dropped: NUL characters are removed where the
database refuses them (``Limits.nul_in_text``, ``Limits.nul_in_json``), and lone UTF-16
surrogates (``"\\ud800"`` in the JSON, or invalid UTF-8 bytes in the input) become U+FFFD; both
are recorded as ``TRUNCATED`` (``DESTINATION_SERIALIZATION_ERROR``). Numbers past the database's
range (``Limits.number_digits``), time zone offsets past it (``Limits.max_zone_seconds``) and
JSON values nested deeper than its JSON type takes (``Limits.json_depth``) are NULL with
``DESTINATION_FIELD_SIZE_LIMITATION``.

Values of any depth and integers of any length are taken: nothing here recurses once per level
(:mod:`dbkit.protocol.deepjson` walks and writes deep values), and an integer past Python's
4,300-digit conversion limit arrives as a ``Decimal`` of the same digits.

Arrow representation per Airbyte type:

===========================  =================================  ==================================
Airbyte type                 Arrow type                         accepted JSON values
===========================  =================================  ==================================
string                       string                             strings; other scalars as JSON text
boolean                      bool                               true / false
integer                      int64                              integers, integral numbers
number                       string (decimal literal)           numbers (exact text; see below)
date                         date32                             "YYYY-MM-DD", "YYYY-MM-DD BC"
timestamp_with_timezone      timestamp[us, UTC]                 ISO 8601 (naive taken as UTC)
timestamp_without_timezone   timestamp[us]                      ISO 8601 (an offset is dropped)
time_without_timezone        time64[us]                         "HH:MM:SS[.ffffff]"
time_with_timezone           string (normalized)                "HH:MM:SS[.ffffff]+HH:MM" (naive = UTC)
binary                       binary                             base64 strings
object / array / unknown     string (JSON text)                 anything
===========================  =================================  ==================================

A number's text is the exact value: for records decoded by :mod:`dbkit.destination.typed` it is
the JSON token as it came (``1.50`` stays ``1.50``); for records given as Python values, floats
are written in Arrow's shortest form and ``Decimal`` as ``str``. JSON values keep every digit.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dbkit.db.dialect import Capabilities
from dbkit.db.temporal import DAY_MICROS, civil_from_days, days_from_civil, days_in_month, format_time_micros
from dbkit.db.types import AirbyteType
from dbkit.protocol import deepjson
from dbkit.protocol.messages import exact_default, int_text

TYPECAST = "DESTINATION_TYPECAST_ERROR"
SIZE = "DESTINATION_FIELD_SIZE_LIMITATION"
SERIALIZATION = "DESTINATION_SERIALIZATION_ERROR"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_EXACT_DOUBLE_INT = 2**53


class Rejected(Exception):
    def __init__(self, reason: str = TYPECAST, change: str = "NULLED", value: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.change = change
        self.value = value  # for TRUNCATED changes: the value that is stored instead


MAX_ARROW_YEAR = 294246
"""The last whole year of Arrow's ``timestamp[us]`` (int64 microseconds from 1970 end in January
294247): batches carry timestamps in it, so no destination can take a later one."""


@dataclass(frozen=True)
class Limits:
    """The value view of :class:`~dbkit.db.dialect.Capabilities` (:meth:`of`): what the target
    database can hold, which the casting rules take."""

    min_year: int = Capabilities.timestamp_years[0]
    max_year: int = MAX_ARROW_YEAR
    nul_in_text: bool = Capabilities.text_nul_bytes
    float_json_numbers: bool = Capabilities.float_json_numbers
    """A JSON column stores a bare number as an int64 or IEEE double (SQLite's NUMERIC affinity)."""
    nul_in_json: bool = Capabilities.json_nul_bytes
    """Strings inside JSON values may hold NUL (PostgreSQL's jsonb cannot)."""
    json_depth: int | None = Capabilities.json_depth
    """Deepest nesting of arrays and objects a JSON value may have; None: no limit."""
    number_digits: tuple[int, int] | None = Capabilities.number_digits
    """Most digits a number (also one inside a JSON value) may have before and after the decimal
    point, e.g. PostgreSQL's numeric: (131072, 16383); None: no limit."""
    json_number_digits: bool = Capabilities.json_number_digits
    """Numbers inside JSON values obey ``number_digits`` too."""
    max_zone_seconds: int = Capabilities.max_zone_seconds
    """Largest time zone offset a ``time with time zone`` value may carry (PostgreSQL: 15:59:59)."""

    @classmethod
    def of(cls, capabilities: Capabilities) -> Limits:
        """The value limits a database's capabilities imply (timestamps also within Arrow's range)."""
        low, high = capabilities.timestamp_years
        return cls(
            min_year=low,
            max_year=min(high, MAX_ARROW_YEAR),
            nul_in_text=capabilities.text_nul_bytes,
            float_json_numbers=capabilities.float_json_numbers,
            nul_in_json=capabilities.json_nul_bytes,
            json_depth=capabilities.json_depth,
            number_digits=capabilities.number_digits,
            json_number_digits=capabilities.json_number_digits,
            max_zone_seconds=capabilities.max_zone_seconds,
        )


# ------------------------------------------------------------------------- temporal parsing

_DATE_RE = re.compile(r"^([+-]?\d{4,})-(\d{2})-(\d{2})( BC)?$")
_TIME_PART = r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
_ZONE_PART = r"(Z|z|[+-]\d{2}(?::?\d{2})?(?::\d{2})?)?"
_TS_RE = re.compile(rf"^([+-]?\d{{4,}})-(\d{{2}})-(\d{{2}})[Tt ]{_TIME_PART}{_ZONE_PART}( BC)?$")
_TIME_RE = re.compile(rf"^{_TIME_PART}{_ZONE_PART}$")


def _check_ymd(year: int, month: int, day: int) -> None:
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        raise Rejected()


def _year(text: str, bc: str | None) -> int:
    year = int(text)
    if bc:
        if year <= 0:
            raise Rejected()
        return 1 - year  # 1 BC is astronomical year 0
    return year


def _zone_seconds(zone: str | None) -> int | None:
    if zone is None:
        return None
    if zone in ("Z", "z"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes, seconds = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise Rejected()
    return sign * (hours * 3600 + minutes * 60 + seconds)


def _micros_of_day(hh: str, mm: str, ss: str, frac: str | None) -> int:
    h, m, s = int(hh), int(mm), int(ss)
    if h > 24 or m > 59 or s > 60 or (h == 24 and (m or s or (frac and int(frac)))):
        raise Rejected()
    s = min(s, 59)  # a leap second is stored as :59
    micros = int((frac or "0")[:6].ljust(6, "0"))
    return ((h * 60 + m) * 60 + s) * 1_000_000 + micros


def parse_date(value: Any, limits: Limits) -> int:
    """A date string -> days since the epoch."""
    if not isinstance(value, str):
        raise Rejected()
    m = _DATE_RE.match(value.strip())
    if not m:
        raise Rejected()
    year = _year(m.group(1), m.group(4))
    month, day = int(m.group(2)), int(m.group(3))
    _check_ymd(year, month, day)
    if not limits.min_year <= year <= limits.max_year:
        raise Rejected(SIZE)
    return days_from_civil(year, month, day)


def parse_timestamp(value: Any, with_zone: bool, limits: Limits) -> int:
    """An ISO timestamp string -> microseconds since the epoch (UTC for with_zone)."""
    if not isinstance(value, str):
        raise Rejected()
    m = _TS_RE.match(value.strip())
    if not m:
        raise Rejected()
    ytext, mo, d, hh, mi, ss, frac, zone, bc = m.groups()
    year = _year(ytext, bc)
    month, day = int(mo), int(d)
    _check_ymd(year, month, day)
    micros = days_from_civil(year, month, day) * DAY_MICROS + _micros_of_day(hh, mi, ss, frac)
    offset = _zone_seconds(zone)
    if with_zone and offset:
        micros -= offset * 1_000_000
    utc_year = year if not offset else _year_of(micros)
    if not limits.min_year <= utc_year <= limits.max_year:
        raise Rejected(SIZE)
    return micros


def _year_of(micros: int) -> int:
    return civil_from_days(micros // DAY_MICROS)[0]


def parse_time(value: Any) -> int:
    if not isinstance(value, str):
        raise Rejected()
    m = _TIME_RE.match(value.strip())
    if not m or m.group(5) is not None:
        raise Rejected()
    micros = _micros_of_day(*m.groups()[:4])
    return min(micros, DAY_MICROS - 1)


def normalize_timetz(value: Any, limits: Limits | None = None) -> str:
    """A time with offset -> ``HH:MM:SS.ffffff+HH:MM[:SS]`` (no offset means UTC; the offset is kept)."""
    if not isinstance(value, str):
        raise Rejected()
    m = _TIME_RE.match(value.strip())
    if not m:
        raise Rejected()
    hh, mm, ss, frac, zone = m.groups()
    micros = min(_micros_of_day(hh, mm, ss, frac), DAY_MICROS - 1)  # 24:00:00 as for times
    offset = _zone_seconds(zone) or 0
    if limits is not None and abs(offset) > limits.max_zone_seconds:
        raise Rejected(SIZE)
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    zone_text = f"{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"
    if offset % 60:
        zone_text += f":{offset % 60:02d}"
    return format_time_micros(micros) + zone_text


# ------------------------------------------------------------------------- text repair

_SURROGATE = re.compile("[\ud800-\udfff]")


def repaired_text(text: str, keep_nul: bool) -> str | None:
    """``text`` without what no UTF-8 database stores (lone surrogates become U+FFFD) and, unless
    ``keep_nul``, without NUL characters; None when nothing had to change."""
    fixed = text
    if not keep_nul and "\x00" in fixed:
        fixed = fixed.replace("\x00", "")
    if not fixed.isascii():
        try:
            fixed.encode("utf-8")
        except UnicodeEncodeError:
            fixed = _SURROGATE.sub("\ufffd", fixed)
    return None if fixed is text else fixed


def _repaired_json(value: Any, keep_nul: bool) -> tuple[Any, bool]:
    """A JSON value with every string (and key) repaired; and whether anything changed."""
    return deepjson.map_strings(value, lambda text: repaired_text(text, keep_nul))


# ------------------------------------------------------------------------- numbers


def number_fits(number: Decimal, limits: Limits) -> bool:
    """Whether the database's number type holds ``number`` (``Limits.number_digits``)."""
    if limits.number_digits is None or not number:
        return True
    before, after = limits.number_digits
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return number.adjusted() < before and -exponent <= after


def _json_numbers_fit(value: Any, limits: Limits) -> bool:
    """Whether every number in a JSON value fits the database's number type (at any depth)."""
    for item in deepjson.scalars(value):
        if isinstance(item, Decimal):
            number = item
        elif type(item) is int and item.bit_length() > 13_000:  # fewer bits: under 4,000 digits
            number = Decimal(item)
        else:
            continue
        if not number_fits(number, limits):
            return False
    return True


# ------------------------------------------------------------------------- per-value converters


def _decimal_text(value: Any) -> str:
    """Exact decimal text of an integer or Decimal (floats are formatted by :func:`float_texts`)."""
    if type(value) is int:
        return int_text(value)
    if isinstance(value, Decimal):
        if isinstance(value, deepjson.HugeNumber):
            raise Rejected(SIZE)
        if not value.is_finite():
            raise Rejected()
        return str(value)
    raise Rejected()


def float_texts(values: Sequence[float]) -> list[str]:
    """Floats as Arrow writes them (shortest round-trip form), so both paths give the same text."""
    texts: list[str] = pa.array(values, type=pa.float64()).cast(pa.string()).to_pylist()
    return texts


def double_exact(text: str) -> str | None:
    """None when a double (or an int64) holds the decimal ``text`` exactly, as read back; else the
    nearest double's text. Raises when no finite double is near."""
    number = Decimal(text)
    if number == number.to_integral_value() and INT64_MIN <= number <= INT64_MAX:
        return None
    nearest = float(number)
    if not math.isfinite(nearest):
        raise Rejected(SIZE)
    shown = repr(nearest)
    return None if Decimal(shown) == number else shown


def _integer(value: Any) -> int:
    if not (
        type(value) is int
        or (type(value) is float and value.is_integer())
        or (isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value())
    ):
        raise Rejected()
    if not INT64_MIN <= value <= INT64_MAX:  # compared exactly, before any conversion
        raise Rejected(SIZE)
    return int(value)


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise Rejected()


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return to_json_text(value)


def _binary(value: Any) -> bytes:
    if not isinstance(value, str):
        raise Rejected()
    try:
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Rejected() from None


def to_json_text(value: Any) -> str:
    """Compact JSON text of a JSON value of any depth; every digit of numbers kept (also integers
    past 64 bits). A string holding a lone surrogate raises ``TypeError`` (orjson's
    ``JSONEncodeError``): no database stores it (see :func:`repaired_text`)."""
    try:
        return orjson.dumps(value, default=exact_default).decode("utf-8")
    except TypeError:  # integers past 64 bits, more than 255 levels: the writer without limits
        return deepjson.dumps(value, escape_surrogates=False).decode("utf-8")


# ------------------------------------------------------------------------- column casting


@dataclass
class ColumnResult:
    array: pa.Array
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (row, change, reason)


def _per_value(values: Sequence[Any], convert: Callable[[Any], Any], arrow_type: pa.DataType) -> ColumnResult:
    out: list[Any] = []
    changes: list[tuple[int, str, str]] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(convert(v))
        except Rejected as r:
            out.append(r.value)
            changes.append((i, r.change, r.reason))
    return ColumnResult(pa.array(out, type=arrow_type), changes)


def _vectorized(values: Sequence[Any]) -> pa.Array | None:
    """The values as the Arrow array Arrow infers; None when it cannot, or when a value is an
    array or object (no typed column takes one, and inferring the type of one nested a few
    thousand levels deep takes Arrow seconds to minutes)."""
    if any(type(v) is list or type(v) is dict for v in values):
        return None
    try:
        return pa.array(values, from_pandas=False)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None


# Strings the vectorized temporal casts are trusted with: the canonical shapes, which Arrow
# parses exactly as the per-value path does (Arrow alone would also take "2024-01-01T00" or a
# bare date as a timestamp, which the per-value path rejects). Anything else takes the slow path.
_HMS = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
_CANONICAL_DATE = r"^\d{4}-\d{2}-\d{2}$"
_CANONICAL_NAIVE = rf"^\d{{4}}-\d{{2}}-\d{{2}}[T ]{_HMS}$"
_CANONICAL_ZONED = rf"^\d{{4}}-\d{{2}}-\d{{2}}[T ]{_HMS}(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?$"
_HAS_ZONE = r"(?:Z|[+-]\d{2}:\d{2})$"
# Integral doubles below this magnitude are written by Arrow as plain integers (as ``str(int)``).
_PLAIN_FLOAT_LIMIT = 1e10


# Arrow scalars for compute calls: a Python literal there is converted on every call (and
# pyarrow then tries to import optional modules for it, a file system search each time).
_Z = pa.scalar("Z", pa.string())
_EMPTY = pa.scalar("", pa.string())


def may_contain(array: pa.Array, needle: bytes) -> bool:
    """False when no value of a string (or binary) array can contain ``needle``: a search of the
    array's whole data buffer (bytes of NULL or sliced-off values too), far cheaper than a
    per-value kernel; True means "look value by value"."""
    buffers = array.buffers()
    data = buffers[2] if len(buffers) > 2 else None
    if data is None:
        return False
    return needle in data.to_pybytes()


def _all_match(strings: pa.Array, pattern: str) -> bool:
    matched = pc.match_substring_regex(strings, pattern)
    return bool(pc.all(matched).as_py() is not False)


def patch(array: pa.Array, rows: Sequence[int], result: ColumnResult) -> ColumnResult:
    """``array`` with the values at ``rows`` replaced by ``result``'s (in that order); ``result``'s
    changes are renumbered to the rows they belong to."""
    if not rows:
        return ColumnResult(array)
    mask = pc.is_in(pa.array(range(len(array)), pa.int64()), value_set=pa.array(rows, pa.int64()))
    merged = pc.replace_with_mask(array, mask, result.array.cast(array.type))
    return ColumnResult(merged, [(rows[i], change, reason) for i, change, reason in result.changes])


class ColumnCaster:
    """Converts one column's values (a list of JSON values) to its Arrow array."""

    def __init__(self, airbyte_type: AirbyteType, limits: Limits) -> None:
        self.airbyte_type = airbyte_type
        self.limits = limits
        self.arrow_type = ARROW_TYPES[airbyte_type]

    def cast(self, values: Sequence[Any]) -> ColumnResult:
        """Vectorized where possible, the rest value by value; the same result as :meth:`slow`."""
        if self.airbyte_type is AirbyteType.STRING or self.airbyte_type in _TEMPORAL_SHAPES:
            try:
                strings = pa.array(values, type=pa.string(), from_pandas=False)
            except (pa.ArrowException, TypeError, ValueError):
                return self.slow(values)
            return self.cast_strings(strings, values)
        result = self.fast(values)
        return result if result is not None else self.slow(values)

    def cast_strings(self, strings: pa.Array, values: Sequence[Any] | None = None) -> ColumnResult:
        """A string (or temporal) column given as an Arrow string array: vectorized for the values
        the vectorized path takes, per value for the others (``values``: the same values as
        Python objects, when the caller has them)."""
        if self.airbyte_type is AirbyteType.STRING:
            array, redo = strings, self._strings_to_redo(strings)
        else:
            array, redo = self._temporal_rows(strings)
        if not redo:
            return ColumnResult(array)
        if values is not None:
            picked = [values[i] for i in redo]
        else:
            picked = strings.take(pa.array(redo, pa.int64())).to_pylist()
        return patch(array, redo, self.slow(picked))

    def fast(self, values: Sequence[Any]) -> ColumnResult | None:
        """The vectorized path, or None when it cannot prove it gives the per-value result."""
        fast: Callable[[Sequence[Any]], ColumnResult | None] | None = getattr(
            self, f"_fast_{self.airbyte_type.value}", None
        )
        return None if fast is None else fast(values)

    def slow(self, values: Sequence[Any]) -> ColumnResult:
        """The per-value path (the definition of what each value becomes)."""
        if self.airbyte_type is AirbyteType.NUMBER:
            return self._slow_number(values)
        return _per_value(values, self._slow_converter(), self.arrow_type)

    def convert(self, value: Any) -> Any:
        """One non-null value by the per-value rules (raises :class:`Rejected`)."""
        if self.airbyte_type is AirbyteType.NUMBER:
            if type(value) is float and math.isfinite(value):
                return float_texts([value])[0]
            return self._number_text(value)
        return self._slow_converter()(value)

    def _slow_converter(self) -> Callable[[Any], Any]:
        t, limits = self.airbyte_type, self.limits
        if t is AirbyteType.STRING:
            return self._checked_string
        if t is AirbyteType.BOOLEAN:
            return _boolean
        if t is AirbyteType.INTEGER:
            return _integer
        if t is AirbyteType.DATE:
            return lambda v: parse_date(v, limits)
        if t is AirbyteType.TIMESTAMP_WITH_TIMEZONE:
            return lambda v: parse_timestamp(v, True, limits)
        if t is AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE:
            return lambda v: parse_timestamp(v, False, limits)
        if t is AirbyteType.TIME_WITHOUT_TIMEZONE:
            return parse_time
        if t is AirbyteType.TIME_WITH_TIMEZONE:
            return lambda v: normalize_timetz(v, limits)
        if t is AirbyteType.BINARY:
            return _binary
        return self._checked_json

    def _number_text(self, value: Any) -> str:
        text = _decimal_text(value)
        if self.limits.number_digits is not None and not number_fits(Decimal(text), self.limits):
            raise Rejected(SIZE)
        return text

    def _slow_number(self, values: Sequence[Any]) -> ColumnResult:
        out: list[Any] = []
        changes: list[tuple[int, str, str]] = []
        float_rows: list[int] = []
        for i, v in enumerate(values):
            if type(v) is float and math.isfinite(v):
                float_rows.append(i)
                out.append(None)
                continue
            try:
                out.append(None if v is None else self._number_text(v))
            except Rejected as r:
                out.append(r.value)
                changes.append((i, r.change, r.reason))
        if float_rows:
            for i, text in zip(float_rows, float_texts([values[i] for i in float_rows]), strict=True):
                out[i] = text
        return ColumnResult(pa.array(out, type=pa.string()), changes)

    def _json_number(self, text: str) -> str:
        nearest = double_exact(text)
        if nearest is not None:
            raise Rejected(SIZE, "TRUNCATED", nearest)
        return text

    def _checked_string(self, value: Any) -> str:
        text = _string(value) if not isinstance(value, str) else value
        fixed = repaired_text(text, self.limits.nul_in_text)
        if fixed is not None:
            raise Rejected(SERIALIZATION, "TRUNCATED", fixed)
        return text

    def _checked_json(self, value: Any) -> str:
        limits = self.limits
        if any(isinstance(item, deepjson.HugeNumber) for item in deepjson.scalars(value)):
            raise Rejected(SIZE)  # a number no database holds
        if limits.float_json_numbers and type(value) in (int, Decimal):
            # a bare number is stored as a number by such a database (SQLite's JSON columns)
            return self._json_number(_decimal_text(value))
        if (
            limits.number_digits is not None
            and limits.json_number_digits
            and not _json_numbers_fit(value, limits)
        ):
            raise Rejected(SIZE)
        try:
            text = to_json_text(value)
        except (TypeError, UnicodeEncodeError):  # a string holds a lone surrogate
            text = None
        if (
            limits.json_depth is not None
            and (text is None or len(text) > 2 * limits.json_depth)  # each level takes 2 characters
            and deepjson.depth(value) > limits.json_depth
        ):
            raise Rejected(SIZE)
        if text is None or (not limits.nul_in_json and "\\u0000" in text):
            fixed, changed = _repaired_json(value, limits.nul_in_json)
            text = to_json_text(fixed)
            if changed:
                raise Rejected(SERIALIZATION, "TRUNCATED", self._checked_string(text))
        return self._checked_string(text)

    # ---- vectorized paths
    def _strings_to_redo(self, array: pa.Array) -> list[int]:
        """Rows of a string column the per-value path must see: NUL where the database refuses
        it (lone surrogates never reach an Arrow string array: it holds valid UTF-8 only)."""
        if self.limits.nul_in_text or not may_contain(array, b"\x00"):
            return []
        return _true_rows(pc.match_substring(array, "\x00"))

    def _fast_string(self, values: Sequence[Any]) -> ColumnResult | None:
        try:
            array = pa.array(values, type=pa.string(), from_pandas=False)
        except (pa.ArrowException, TypeError, ValueError):
            return None
        if self._strings_to_redo(array):
            return None
        return ColumnResult(array)

    def _fast_boolean(self, values: Sequence[Any]) -> ColumnResult | None:
        array = _vectorized(values)
        if array is None or not (pa.types.is_boolean(array.type) or pa.types.is_null(array.type)):
            return None
        return ColumnResult(array.cast(pa.bool_()))

    def _fast_integer(self, values: Sequence[Any]) -> ColumnResult | None:
        array = _vectorized(values)
        if array is None:
            return None
        if pa.types.is_int64(array.type) or pa.types.is_null(array.type):
            return ColumnResult(array.cast(pa.int64()))
        return None

    def _fast_number(self, values: Sequence[Any]) -> ColumnResult | None:
        array = _vectorized(values)
        if array is None:
            return None
        if pa.types.is_int64(array.type) or pa.types.is_null(array.type):
            return ColumnResult(array.cast(pa.string()))
        if pa.types.is_float64(array.type):
            # integers mixed with floats were made doubles: only below this bound are they exact
            # and written by Arrow exactly as the per-value path writes them (plain digits)
            biggest = pc.max(pc.abs(array)).as_py()
            if biggest is not None and not biggest < _PLAIN_FLOAT_LIMIT:
                return None
            return ColumnResult(array.cast(pa.string()))
        return None

    def _temporal_rows(self, strings: pa.Array) -> tuple[pa.Array, list[int]]:
        """The vectorized cast of the canonical values of a temporal column (the others NULL), and
        the rows the per-value path must convert: non-canonical values, and canonical ones
        outside the database's years (so that the per-value path records them)."""
        target, shape = _TEMPORAL_SHAPES[self.airbyte_type]
        canonical = pc.fill_null(pc.match_substring_regex(strings, shape), True)
        all_canonical = pc.all(canonical).as_py() is not False
        usable = strings if all_canonical else pc.if_else(canonical, strings, pa.scalar(None, pa.string()))
        if pa.types.is_timestamp(target) and target.tz is not None:
            # a timestamp without an offset is taken as UTC
            zoned = pc.match_substring_regex(usable, _HAS_ZONE)
            if pc.all(zoned).as_py() is False:
                usable = pc.if_else(zoned, usable, pc.binary_join_element_wise(usable, _Z, _EMPTY))
        try:
            array = pc.cast(usable, target)
        except pa.ArrowInvalid:
            # canonical in shape but not a calendar date (2024-02-30): find those, cast the rest
            ymd = pc.utf8_slice_codeunits(usable, 0, 10)
            parsed = pc.strptime(ymd, "%Y-%m-%d", "s", error_is_null=True)  # normalizes 02-30 to 03-01
            real = pc.fill_null(pc.equal(pc.strftime(parsed, "%Y-%m-%d"), ymd), False)
            real = pc.or_(real, pc.is_null(usable))
            canonical = pc.and_(canonical, real)
            all_canonical = False
            array = pc.cast(pc.if_else(real, usable, pa.scalar(None, pa.string())), target)
        redo = [] if all_canonical else _true_rows(pc.and_(pc.invert(canonical), pc.is_valid(strings)))
        if array.null_count < len(array):
            low, high = self._bounds(target)
            as_int = array.cast(pa.int32() if pa.types.is_date32(target) else pa.int64())
            smallest, largest = (v.as_py() for v in pc.min_max(as_int).values())
            if smallest < low or largest > high:
                outside = pc.fill_null(pc.or_(pc.less(as_int, low), pc.greater(as_int, high)), False)
                redo = sorted({*redo, *_true_rows(outside)})
        return array, redo

    def _temporal(self, values: Sequence[Any]) -> ColumnResult | None:
        try:
            strings = pa.array(values, type=pa.string(), from_pandas=False)
            array, redo = self._temporal_rows(strings)
        except (pa.ArrowException, TypeError, ValueError):
            return None
        return None if redo else ColumnResult(array)

    def _bounds(self, target: pa.DataType) -> tuple[int, int]:
        first = days_from_civil(self.limits.min_year, 1, 1)
        last = days_from_civil(self.limits.max_year + 1, 1, 1) - 1
        if pa.types.is_date32(target):
            return first, last
        return first * DAY_MICROS, (last + 1) * DAY_MICROS - 1

    def _fast_date(self, values: Sequence[Any]) -> ColumnResult | None:
        return self._temporal(values)

    def _fast_timestamp_with_timezone(self, values: Sequence[Any]) -> ColumnResult | None:
        return self._temporal(values)

    def _fast_timestamp_without_timezone(self, values: Sequence[Any]) -> ColumnResult | None:
        return self._temporal(values)


def _true_rows(mask: pa.Array) -> list[int]:
    rows: list[int] = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
    return rows


ARROW_TYPES: Mapping[AirbyteType, pa.DataType] = {
    AirbyteType.STRING: pa.string(),
    AirbyteType.BOOLEAN: pa.bool_(),
    AirbyteType.INTEGER: pa.int64(),
    AirbyteType.NUMBER: pa.string(),
    AirbyteType.DATE: pa.date32(),
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: pa.timestamp("us", tz="UTC"),
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: pa.timestamp("us"),
    AirbyteType.TIME_WITHOUT_TIMEZONE: pa.time64("us"),
    AirbyteType.TIME_WITH_TIMEZONE: pa.string(),
    AirbyteType.BINARY: pa.binary(),
    AirbyteType.OBJECT: pa.string(),
    AirbyteType.ARRAY: pa.string(),
    AirbyteType.UNKNOWN: pa.string(),
}

_TEMPORAL_SHAPES: Mapping[AirbyteType, tuple[pa.DataType, str]] = {
    AirbyteType.DATE: (pa.date32(), _CANONICAL_DATE),
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: (pa.timestamp("us", tz="UTC"), _CANONICAL_ZONED),
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: (pa.timestamp("us"), _CANONICAL_NAIVE),
}
