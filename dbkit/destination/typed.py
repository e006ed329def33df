"""Typed decoding of buffered records: a msgspec decoder compiled per stream from its columns.

msgspec checks each value's JSON kind in C while it decodes (an int64 integer, a boolean, a
string, a calendar date), keeps numbers and JSON values as their exact token text
(:class:`msgspec.Raw`: no float is ever made) and ignores fields the stream does not declare.
What msgspec proves is then converted column by column with Arrow; a value only the per-value
rules of :mod:`dbkit.destination.casting` can judge (a timestamp in a rare form, a number token
that is not a number, NUL where the database refuses it, a number past its range) is converted
by those rules, value by value, so the result is the one the per-value path gives. A record
whose ``data`` msgspec cannot decode with the stream's types at all (a string where an integer
belongs, an integral float for an integer, a lone surrogate) is decoded exactly, as Python
values, and goes through the per-value path as a whole row, except its number and JSON values,
which keep their tokens as in every other row (:meth:`TypedDecoder.raw_column`).

Typed frames (:mod:`dbkit.protocol.arrow`, ``columns`` and ``native`` kinds) come as Arrow
columns already (:meth:`TypedDecoder.arrow_columns`): the same conversions, with no JSON to
decode; a native column (a date, timestamp, time or binary column of its Arrow type) is the batch
column as it is, except the values outside the database's years, which take the per-value rules
as their canonical strings (and get the same changes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from dbkit.db.types import AirbyteType
from dbkit.destination.casting import (
    INT64_MAX,
    INT64_MIN,
    ColumnCaster,
    ColumnResult,
    Limits,
    Rejected,
    may_contain,
    patch,
)
from dbkit.destination.records import loads_lenient
from dbkit.protocol import NATIVE_TYPES, canonical_strings

RAW_NULL = msgspec.Raw(b"null")
_INT64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

# The msgspec type each column's values are decoded to (None: a raw JSON token).
_DECODED: dict[AirbyteType, Any] = {
    AirbyteType.STRING: str | None,
    AirbyteType.BOOLEAN: bool | None,
    AirbyteType.INTEGER: _INT64 | None,
    AirbyteType.DATE: dt.date | None,
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: str | None,
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: str | None,
    AirbyteType.TIME_WITHOUT_TIMEZONE: str | None,
    AirbyteType.TIME_WITH_TIMEZONE: str | None,
    AirbyteType.BINARY: str | None,
    AirbyteType.NUMBER: None,
    AirbyteType.OBJECT: None,
    AirbyteType.ARRAY: None,
    AirbyteType.UNKNOWN: None,
}
_STRING_LIKE = frozenset(
    {AirbyteType.STRING, AirbyteType.TIMESTAMP_WITH_TIMEZONE, AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE}
)
_JSON = frozenset({AirbyteType.OBJECT, AirbyteType.ARRAY, AirbyteType.UNKNOWN})
TOKEN_COLUMNS = frozenset({AirbyteType.NUMBER, *_JSON})
"""The types whose values a column holds as their exact JSON tokens."""
_NUMBER_START = r"^-?[0-9]"
_BIG_EXPONENT = r"[0-9][eE][+-]?[0-9]{5}"  # a digit first: not the text of a string such as "e12345"
_PLAIN_NUMBER = r"^-?[0-9][0-9.]*$"
_SHORT_EXPONENT_NUMBER = r"^-?[0-9][0-9.]*(?:[eE][+-]?[0-9]{1,3})?$"
_LONG_TOKEN = 1000  # number tokens longer than this are checked against the database's range
_LONG_TOKEN_SCALAR = pa.scalar(_LONG_TOKEN, pa.int32())
_NULL_TOKEN = pa.scalar("null", pa.string())
_NATIVE = frozenset(NATIVE_TYPES.values())
# times the vectorized cast takes (as the per-value path reads them); the others (24:00:00, a
# leap second, more than six fraction digits, white space) take the per-value path
_CANONICAL_TIME = r"^(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?$"
_EPOCH_DAY = pa.scalar("1970-01-01T", pa.string())
_EMPTY = pa.scalar("", pa.string())


class TypedDecoder:
    """Decodes the ``data`` of one stream's records into typed columns (one per ``fields`` entry).

    ``fields`` are (JSON field name, Airbyte type) pairs; ``casters`` the per-value rules of each
    column, in the same order.
    """

    def __init__(
        self, fields: Sequence[tuple[str, AirbyteType]], casters: Sequence[ColumnCaster], limits: Limits
    ) -> None:
        self.types = [t for _, t in fields]
        self.casters = list(casters)
        self.limits = limits
        spec = []
        for i, (_, airbyte_type) in enumerate(fields):
            decoded = _DECODED[airbyte_type]
            spec.append((f"c{i}", msgspec.Raw, RAW_NULL) if decoded is None else (f"c{i}", decoded, None))
        self.decode: Callable[[Any], Any] = _undecodable
        if all(_msgspec_can_name(name) for name, _ in fields):
            row = msgspec.defstruct(
                "Row", spec, rename={f"c{i}": name for i, (name, _) in enumerate(fields)}, gc=False
            )
            self.decode = msgspec.json.Decoder(row).decode
        self._getters = [attrgetter(f"c{i}") for i in range(len(fields))]

    def columns(self, rows: Sequence[Any]) -> list[ColumnResult]:
        """Arrow columns (and per-row changes) of decoded rows."""
        return [
            self._column(airbyte_type, caster, list(map(getter, rows)))
            for airbyte_type, caster, getter in zip(self.types, self.casters, self._getters, strict=True)
        ]

    def arrow_columns(self, arrays: Sequence[pa.Array]) -> list[ColumnResult]:
        """The same results from the columns of a typed frame (:mod:`dbkit.protocol.arrow`: int64,
        bool, or text: a string's value, or a number's or JSON value's exact token), one per
        ``fields`` entry: the conversions :meth:`columns` makes, on Arrow arrays; only the values
        the vectorized checks cannot vouch for are taken to Python."""
        return [
            self._arrow_column(airbyte_type, caster, array)
            for airbyte_type, caster, array in zip(self.types, self.casters, arrays, strict=True)
        ]

    def _arrow_column(self, airbyte_type: AirbyteType, caster: ColumnCaster, array: pa.Array) -> ColumnResult:
        if str(array.type) in _NATIVE and not pa.types.is_string(array.type):
            return self._native(caster, array)
        if airbyte_type is AirbyteType.TIME_WITHOUT_TIMEZONE:
            return self._times(caster, array)
        if airbyte_type in (AirbyteType.INTEGER, AirbyteType.BOOLEAN):
            return ColumnResult(array.cast(caster.arrow_type))
        if airbyte_type in _STRING_LIKE or airbyte_type is AirbyteType.DATE:
            return caster.cast_strings(array)
        if airbyte_type is AirbyteType.NUMBER or airbyte_type in _JSON:
            tokens = pc.if_else(pc.equal(array, _NULL_TOKEN), pa.scalar(None, pa.string()), array)

            def raw(i: int) -> bytes:
                return str(array[i].as_py()).encode()

            return self._token_column(caster, tokens, None, raw, airbyte_type is AirbyteType.NUMBER)
        return caster.slow(array.to_pylist())  # binary: strings converted value by value

    def _native(self, caster: ColumnCaster, array: pa.Array) -> ColumnResult:
        """A native column of a ``native`` frame: the values as they are; dates and timestamps
        outside the database's years by the per-value rules, as the string path takes them."""
        target = caster.arrow_type
        if pa.types.is_binary(target) or pa.types.is_time64(target):
            return ColumnResult(array.cast(target))
        out = array.cast(target)
        if out.null_count == len(out):
            return ColumnResult(out)
        low, high = caster._bounds(target)
        values = out.cast(pa.int32()).cast(pa.int64()) if pa.types.is_date32(target) else out.cast(pa.int64())
        smallest, largest = (v.as_py() for v in pc.min_max(values).values())
        if low <= smallest and largest <= high:
            return ColumnResult(out)
        below = pa.scalar(max(low, INT64_MIN), pa.int64())  # a database's years may pass Arrow's
        above = pa.scalar(min(high, INT64_MAX), pa.int64())
        outside = pc.fill_null(pc.or_(pc.less(values, below), pc.greater(values, above)), False)
        rows: list[int] = pc.indices_nonzero(outside).to_pylist()
        strings = canonical_strings(array.take(pa.array(rows, pa.int64()))).to_pylist()
        return patch(out, rows, caster.slow(strings))

    def _times(self, caster: ColumnCaster, strings: pa.Array) -> ColumnResult:
        """Times as strings: the canonical ones cast by Arrow (as the time of day of a
        timestamp), the others by the per-value rules."""
        canonical = pc.fill_null(pc.match_substring_regex(strings, _CANONICAL_TIME), True)
        every = pc.all(canonical).as_py() is not False
        usable = strings if every else pc.if_else(canonical, strings, pa.scalar(None, pa.string()))
        stamps = pc.binary_join_element_wise(_EPOCH_DAY, usable, _EMPTY).cast(pa.timestamp("us"))
        array = stamps.cast(pa.int64()).cast(pa.time64("us"))
        if every:
            return ColumnResult(array)
        rows: list[int] = pc.indices_nonzero(pc.invert(canonical)).to_pylist()
        return patch(array, rows, caster.slow(strings.take(pa.array(rows, pa.int64())).to_pylist()))

    def _column(self, airbyte_type: AirbyteType, caster: ColumnCaster, values: Sequence[Any]) -> ColumnResult:
        if airbyte_type in (AirbyteType.INTEGER, AirbyteType.BOOLEAN):
            return ColumnResult(pa.array(values, caster.arrow_type))
        if airbyte_type in _STRING_LIKE:
            return caster.cast_strings(pa.array(values, pa.string()), values)
        if airbyte_type is AirbyteType.DATE:
            return self._dates(caster, values)
        if airbyte_type is AirbyteType.NUMBER:
            return self.raw_column(caster, values, number=True)
        if airbyte_type in _JSON:
            return self.raw_column(caster, values, number=False)
        if airbyte_type is AirbyteType.TIME_WITHOUT_TIMEZONE:
            try:
                strings = pa.array(values, pa.string())
            except (pa.ArrowException, TypeError, ValueError):
                return caster.slow(values)
            return self._times(caster, strings)
        return caster.slow(values)  # binary: strings converted value by value

    def _dates(self, caster: ColumnCaster, values: Sequence[Any]) -> ColumnResult:
        array = pa.array(values, pa.date32())
        if self.limits.min_year <= 1 and self.limits.max_year >= 9999:
            return ColumnResult(array)  # every date msgspec accepts (years 1..9999) fits
        low, high = caster._bounds(pa.date32())
        days = array.cast(pa.int32())
        outside = pc.fill_null(pc.or_(pc.less(days, low), pc.greater(days, high)), False)
        rows: list[int] = pc.indices_nonzero(outside).to_pylist()
        return patch(array, rows, caster.slow([values[i].isoformat() for i in rows]))

    def raw_column(self, caster: ColumnCaster, raws: Sequence[Any], number: bool) -> ColumnResult:
        """Number and JSON columns: the exact token text; the tokens the vectorized checks
        cannot vouch for are converted by the per-value rules."""
        array, broken = raw_strings(raws)
        return self._token_column(caster, array, broken, raws.__getitem__, number)

    def _token_column(
        self,
        caster: ColumnCaster,
        array: pa.Array,
        broken: pa.Array | None,
        raw: Callable[[int], Any],
        number: bool,
    ) -> ColumnResult:
        """Exact token texts (NULL: null) and the mask of tokens that were not text; ``raw(i)``
        is row i's token as bytes."""
        limits = self.limits
        suspects: list[pa.Array] = [broken] if broken is not None else []
        if number:
            if limits.number_digits is None:
                suspects.append(pc.invert(pc.match_substring_regex(array, _NUMBER_START)))
            else:
                # a valid JSON token that starts like a number and has no exponent is plain digits
                # (one regex: not a number, or an exponent; the same rows as the two checks). A
                # token of at most _LONG_TOKEN characters with an exponent of at most 3 digits
                # has fewer than 2 * _LONG_TOKEN digits before and after the point: where the
                # database holds that many, it fits, and the database reads the token itself
                # (PostgreSQL's numeric_in gives it the scale Decimal's exponent gives)
                before, after = limits.number_digits
                roomy = min(before, after) > 2 * _LONG_TOKEN
                plain = _SHORT_EXPONENT_NUMBER if roomy else _PLAIN_NUMBER
                suspects.append(pc.invert(pc.match_substring_regex(array, plain)))
                suspects.append(pc.greater(pc.binary_length(array), _LONG_TOKEN_SCALAR))
        else:
            if not limits.nul_in_json and may_contain(array, b"\\u0000"):
                suspects.append(pc.match_substring(array, "\\u0000"))
            if limits.float_json_numbers:
                suspects.append(pc.match_substring_regex(array, _NUMBER_START))
            if limits.number_digits is not None and limits.json_number_digits:
                suspects.append(pc.match_substring_regex(array, _BIG_EXPONENT))
            if limits.json_depth is not None:  # each level takes two characters
                longest = pa.scalar(2 * limits.json_depth, pa.int32())
                suspects.append(pc.greater(pc.binary_length(array), longest))
        if not suspects:
            return ColumnResult(array)
        mask = suspects[0]
        for other in suspects[1:]:
            mask = pc.or_(mask, other)
        rows: list[int] = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
        if not rows:
            return ColumnResult(array)
        out: list[Any] = []
        changes: list[tuple[int, str, str]] = []
        for k, i in enumerate(rows):
            value = loads_lenient(raw(i))
            try:
                out.append(None if value is None else caster.convert(value))
            except Rejected as r:
                out.append(r.value)
                changes.append((k, r.change, r.reason))
        return patch(array, rows, ColumnResult(pa.array(out, pa.string()), changes))


def _msgspec_can_name(name: str) -> bool:
    """msgspec refuses field names with a quote, a backslash or a control character."""
    return not any(ch in '"\\' or ord(ch) < 0x20 for ch in name)


def _undecodable(data: Any) -> Any:
    """The decoder of a stream whose field names msgspec cannot take: every row takes the
    general path."""
    raise msgspec.ValidationError("field names msgspec cannot take")


def raw_strings(raws: Sequence[Any]) -> tuple[pa.Array, pa.Array | None]:
    """Raw JSON tokens as an Arrow string array of their exact text (``null`` -> NULL), and, when
    some are not valid UTF-8 (msgspec does not check the inside of a raw token), a mask of those
    (their text in the array is then NULL)."""
    n = len(raws)
    if n == 0:
        return pa.array([], pa.string()), None
    data = b"".join(raws)
    lengths = pa.array(list(map(len, raws)), pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths)])
    broken = None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        flags = []
        for raw in raws:
            try:
                bytes(raw).decode("utf-8")
                flags.append(False)
            except UnicodeDecodeError:
                flags.append(True)
        broken = pa.array(flags, pa.bool_())
        data = b"".join(b"null" if bad else raw for raw, bad in zip(raws, flags, strict=True))
        lengths = pa.array([4 if bad else len(raw) for raw, bad in zip(raws, flags, strict=True)], pa.int32())
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths)])
    array = pa.StringArray.from_buffers(n, offsets.buffers()[1], pa.py_buffer(data))
    return pc.if_else(pc.equal(array, _NULL_TOKEN), pa.scalar(None, pa.string()), array), broken
