"""PostgreSQL types: one handler per type, rendering the same JSON in Python and on the server.

Every handler (:class:`PgType`) carries

- its Airbyte type and JSON schema, and whether it can be a cursor;
- ``convert``: the **Python path**. It takes the value in PostgreSQL's *text output form* (what
  psycopg returns with the text loader, and what logical decoding sends), under the session
  settings :meth:`source_postgres.dialect.PostgresSourceDialect.on_connect` fixes (TimeZone UTC,
  DateStyle ISO, IntervalStyle iso_8601, extra_float_digits 1, bytea_output hex, lc_monetary C),
  and returns the JSON-ready value; a value without a JSON form raises
  :class:`~dbkit.db.types.Unrepresentable` (a partly representable one, such as an array holding
  a NaN, carries the rest as its ``replacement``);
- ``render``: the **server path**. SQL that turns the (non-NULL) value into its JSON text, NULL
  for a value without a JSON form (so NULL in gives NULL out), and ``problem``: SQL that is true
  when the value (or a part of it) is emitted as null. The two paths give identical bytes: the
  tests compare them on every type case.

Scalar handlers are registered by type name (``TYPES``); arrays, domains, composites, enums and
ranges are built from their parts' handlers by :func:`array_of`, :func:`domain_of`,
:func:`composite_of` (see :mod:`source_postgres.catalog`).

Values (documented in the README): NaN and infinite numbers and floats, and infinite dates and
timestamps, are null with a ``NULLED``/``SOURCE_SERIALIZATION_ERROR`` change; timestamps always
show six fraction digits, ``timestamptz`` in UTC as ``+00:00``; years before 1 carry `` BC``,
years after 9999 a leading ``+``; money is its exact number; bytea base64; json is kept as
written (on one line), jsonb as PostgreSQL normalizes it; hstore an object of strings;
composites an object; ranges their text; arrays nested JSON arrays.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from psycopg import sql

from dbkit.db.temporal import civil_from_days, days_from_civil, format_year
from dbkit.db.types import AirbyteType, TypeHandler, TypeRegistry, Unrepresentable

Sql = sql.Composable
Render = Callable[[Sql], Sql]

SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
)
"""Session settings both paths rely on (text forms of timestamps, floats, bytea, money)."""


def q(template: str, *parts: Sql) -> sql.Composed:
    """``template`` with ``{}`` replaced by SQL parts (literal braces are written ``{{ }}``)."""
    return sql.SQL(template).format(*parts)


def lit(text: str) -> Sql:
    return sql.Literal(text)


def json_string(text: str) -> str:
    """A JSON string exactly as PostgreSQL's ``to_json(text)`` writes it (orjson escapes the same)."""
    return orjson.dumps(text).decode()


@dataclass(frozen=True)
class PgType(TypeHandler):
    """A PostgreSQL type (see the module doc). ``convert`` takes the text output form."""

    render: Render = field(default=lambda x: q("to_json({}::text)::text", x))
    problem: Render | None = None
    native_array: Render | None = None
    """JSON text of a whole array of this type (any dimensions), when ``to_json`` renders the
    elements exactly as ``render`` does; None: arrays are rendered element by element."""
    type_name: str = ""

    def with_(self, **changes: Any) -> PgType:
        return replace(self, **changes)


# ------------------------------------------------------------------------------ text parsing


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    raise Unrepresentable(f"expected the text form of a value, got {type(value).__name__}")


def _string(value: Any) -> str:
    return _text(value)


def _integer(value: Any) -> Any:
    return int(_text(value))


_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"})


def _number(value: Any) -> Any:
    """numeric and float text is already a JSON number (``1.50``, ``1e+20``); NaN/Infinity are not."""
    text = _text(value)
    if text in _NON_FINITE:
        raise Unrepresentable(f"{text} has no JSON number form")
    return orjson.Fragment(text)


_MONEY_NOISE = re.compile(r"[^0-9.\-]")


def _money(value: Any) -> Any:
    """``-$1,234.50`` (lc_monetary C) -> ``-1234.50``: the exact number, as ``money::numeric``."""
    text = _text(value).strip()
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    digits = _MONEY_NOISE.sub("", text).lstrip("-")
    if not digits or digits.count(".") > 1:
        raise Unrepresentable("money text is not a number")
    integral, _, fraction = digits.partition(".")
    number = (integral.lstrip("0") or "0") + (f".{fraction}" if fraction else "")
    if negative and number.strip("0.") != "":
        number = "-" + number
    return orjson.Fragment(number)


def _boolean(value: Any) -> Any:
    text = _text(value)
    if text in ("t", "true"):
        return True
    if text in ("f", "false"):
        return False
    raise Unrepresentable("not a boolean")


def _bytea(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if not raw.startswith(b"\\x"):
            return base64.b64encode(raw).decode("ascii")
        value = raw.decode("ascii")
    text = _text(value)
    if not text.startswith("\\x"):
        raise Unrepresentable("bytea text is not in hex form (bytea_output = hex)")
    return base64.b64encode(bytes.fromhex(text[2:])).decode("ascii")


def _json(value: Any) -> Any:
    """json keeps its text (key order, duplicate keys, number spelling); line breaks and tabs,
    which JSON allows only between tokens, become spaces so the record stays one line."""
    return orjson.Fragment(_text(value).translate(_JSON_WS))


_JSON_WS = str.maketrans("\n\r\t", "   ")


def _jsonb(value: Any) -> Any:
    return orjson.Fragment(_text(value))


# ------------------------------------------------------------------------------ dates and times

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
    text = _text(value)
    _infinite(text)
    m = _DATE.match(text)
    if m is None:
        raise Unrepresentable("not a date in ISO form")
    year, era = _year_text(int(m.group(1)), m.group(4) is not None)
    return f"{year}-{m.group(2)}-{m.group(3)}{era}"


def _fraction(digits: str | None) -> str:
    return (digits or "").ljust(6, "0")


def _timestamp(value: Any) -> Any:
    text = _text(value)
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
    text = _text(value)
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
    m = _TIME.match(_text(value))
    if m is None or m.group(5) is not None:
        raise Unrepresentable("not a time of day")
    return f"{m.group(1)}:{m.group(2)}:{m.group(3)}.{_fraction(m.group(4))}"


def _timetz(value: Any) -> Any:
    m = _TIME.match(_text(value))
    if m is None or m.group(5) is None:
        raise Unrepresentable("not a time of day with a time zone offset")
    zone = _zone_text(_offset_seconds(m.group(5), m.group(6), m.group(7), m.group(8)))
    return f"{m.group(1)}:{m.group(2)}:{m.group(3)}.{_fraction(m.group(4))}{zone}"


# ------------------------------------------------------------------------------ structured text


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


def parse_record(text: str) -> list[str | None]:
    """PostgreSQL's composite text (``(1,"a b",,"")``) -> field texts (None for NULL)."""
    if not (text.startswith("(") and text.endswith(")")):
        raise Unrepresentable("malformed composite text")
    body = text[1:-1]
    fields: list[str | None] = []
    pos = 0
    n = len(body)
    while True:
        if pos < n and body[pos] == '"':
            pos += 1
            out = []
            while True:
                ch = body[pos]
                if ch == "\\":
                    out.append(body[pos + 1])
                    pos += 2
                elif ch == '"':
                    if pos + 1 < n and body[pos + 1] == '"':
                        out.append('"')
                        pos += 2
                    else:
                        pos += 1
                        break
                else:
                    out.append(ch)
                    pos += 1
            fields.append("".join(out))
        else:
            start = pos
            while pos < n and body[pos] != ",":
                pos += 1
            fields.append(body[start:pos] if pos > start else None)
        if pos >= n:
            return fields
        pos += 1  # the comma


_HSTORE_ITEM = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*=>\s*(?:"((?:[^"\\]|\\.)*)"|(NULL))\s*(?:,|$)')
_UNESCAPE = re.compile(r"\\(.)")


def parse_hstore(text: str) -> list[tuple[str, str | None]]:
    """hstore's text (``"a"=>"1", "b"=>NULL``) -> (key, value or None) pairs, in its order."""
    pairs: list[tuple[str, str | None]] = []
    pos = 0
    while pos < len(text):
        m = _HSTORE_ITEM.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise Unrepresentable("malformed hstore text")
            break
        key = _UNESCAPE.sub(r"\1", m.group(1))
        val = None if m.group(3) else _UNESCAPE.sub(r"\1", m.group(2))
        pairs.append((key, val))
        pos = m.end()
    return pairs


def _hstore(value: Any) -> Any:
    """An object of strings, written exactly as PostgreSQL writes ``hstore::jsonb``."""
    pairs = parse_hstore(_text(value))
    body = ", ".join(f"{json_string(k)}: {'null' if v is None else json_string(v)}" for k, v in pairs)
    return orjson.Fragment("{" + body + "}")


# ------------------------------------------------------------------------------ SQL renderers


def _r_text(x: Sql) -> Sql:
    return q("{}::text", x)


def _r_to_json(x: Sql) -> Sql:
    return q("to_json({})::text", x)


def _r_quoted(x: Sql) -> Sql:
    """For types whose text never needs JSON escaping (uuid, inet, bit strings, ISO intervals)."""
    return q("'\"' || {}::text || '\"'", x)


def _r_to_json_array(a: Sql) -> Sql:
    return q("to_json({})::text", a)


def _r_number(nan_only: bool) -> tuple[Render, Render, Render]:
    if nan_only:  # numeric(p,s) cannot hold the infinities

        def bad(x: Sql) -> Sql:
            return q("({} = 'NaN')", x)
    else:

        def bad(x: Sql) -> Sql:
            return q("({} IN ('NaN', 'Infinity', '-Infinity'))", x)

    def render(x: Sql) -> Sql:
        return q("CASE WHEN {} THEN NULL ELSE {}::text END", bad(x), x)

    def array(a: Sql) -> Sql:
        return q("regexp_replace(to_json({})::text, '\"(NaN|-?Infinity)\"', 'null', 'g')", a)

    return render, bad, array


def _r_bytea(x: Sql) -> Sql:
    return q("'\"' || translate(encode({}, 'base64'), E'\\n', '') || '\"'", x)


def _r_json(x: Sql) -> Sql:
    return q("translate({}::text, E'\\n\\r\\t', '   ')", x)


def _r_json_array(a: Sql) -> Sql:
    return q("translate(to_json({})::text, E'\\n\\r\\t', '   ')", a)


def _r_hstore(x: Sql) -> Sql:
    return q("({})::jsonb::text", x)


_TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US'


def _r_timestamp(with_zone: bool) -> tuple[Render, Render]:
    zone = "+00:00" if with_zone else ""
    low = "0001-01-01 00:00:00+00" if with_zone else "0001-01-01 00:00:00"
    high = "10000-01-01 00:00:00+00" if with_zone else "10000-01-01 00:00:00"
    fmt = lit(_TS_FORMAT)

    def render(x: Sql) -> Sql:
        # {0} value, {1} year 1, {2} year 10000, {3} to_char format, {4} zone + quote, {5} zone + BC + quote
        return q(
            "CASE WHEN {0} >= {1} AND {0} < {2} THEN '\"' || to_char({0}, {3}) || {4}"
            " WHEN {0} < {1} AND {0} > '-infinity' THEN '\"' || to_char({0}, {3}) || {5}"
            " WHEN {0} >= {2} AND {0} < 'infinity' THEN '\"+' || to_char({0}, {3}) || {4} END",
            x,
            lit(low),
            lit(high),
            fmt,
            lit(zone + '"'),
            lit(zone + ' BC"'),
        )

    def problem(x: Sql) -> Sql:
        return q("(NOT isfinite({}))", x)

    return render, problem


def _r_date(x: Sql) -> Sql:
    return q(
        "CASE WHEN {0} > '-infinity' AND {0} < '10000-01-01' THEN '\"' || {0}::text || '\"'"
        " WHEN {0} >= '10000-01-01' AND {0} < 'infinity' THEN '\"+' || {0}::text || '\"' END",
        x,
    )


def _p_date(x: Sql) -> Sql:
    return q("(NOT isfinite({}))", x)


def _r_time(x: Sql) -> Sql:
    return q(
        "'\"' || CASE WHEN length({0}::text) = 8 THEN {0}::text || '.000000'"
        " ELSE rpad({0}::text, 15, '0') END || '\"'",
        x,
    )


def _r_timetz(x: Sql) -> Sql:
    time = q("({})::time", x)
    zone = q("extract(timezone FROM {})::int", x)
    return q(
        "'\"' || CASE WHEN length({0}::text) = 8 THEN {0}::text || '.000000'"
        " ELSE rpad({0}::text, 15, '0') END || CASE WHEN {1} < 0 THEN '-' ELSE '+' END"
        " || lpad((abs({1}) / 3600)::text, 2, '0') || ':' || lpad((abs({1}) % 3600 / 60)::text, 2, '0')"
        " || CASE WHEN abs({1}) % 60 <> 0 THEN ':' || lpad((abs({1}) % 60)::text, 2, '0') ELSE '' END"
        " || '\"'",
        time,
        zone,
    )


# ------------------------------------------------------------------------------ the scalar handlers

_NUM_RENDER, _NUM_PROBLEM, _NUM_ARRAY = _r_number(nan_only=False)
_NUMP_RENDER, _NUMP_PROBLEM, _NUMP_ARRAY = _r_number(nan_only=True)
_TS_RENDER, _TS_PROBLEM = _r_timestamp(with_zone=False)
_TSTZ_RENDER, _TSTZ_PROBLEM = _r_timestamp(with_zone=True)

INTEGER = PgType(AirbyteType.INTEGER, _integer, render=_r_text, native_array=_r_to_json_array)
OID = INTEGER.with_(native_array=None)
"""``to_json`` of an ``oid[]`` gives strings (``["1"]``): its elements are rendered one by one."""
NUMERIC = PgType(
    AirbyteType.NUMBER, _number, render=_NUM_RENDER, problem=_NUM_PROBLEM, native_array=_NUM_ARRAY
)
NUMERIC_BOUNDED = PgType(
    AirbyteType.NUMBER, _number, render=_NUMP_RENDER, problem=_NUMP_PROBLEM, native_array=_NUMP_ARRAY
)
"""numeric(p, s): only NaN needs a check (it cannot hold the infinities)."""
FLOAT = NUMERIC
MONEY = PgType(AirbyteType.NUMBER, _money, render=lambda x: q("({})::numeric::text", x))
BOOLEAN = PgType(AirbyteType.BOOLEAN, _boolean, render=_r_text, native_array=_r_to_json_array)
BITS = PgType(AirbyteType.STRING, _string, render=_r_quoted, native_array=_r_to_json_array)
BYTEA = PgType(AirbyteType.BINARY, _bytea, render=_r_bytea, cursor=False)
TEXT = PgType(AirbyteType.STRING, _string, render=_r_to_json, native_array=_r_to_json_array)
"""text, varchar, char(n) (padding kept), name, citext, enums: to_json writes their text."""
OPAQUE_TEXT = TEXT.with_(cursor=False)
"""xml, tsvector, tsquery: strings, but no total order worth a cursor."""
QUOTED = PgType(AirbyteType.STRING, _string, render=_r_quoted, native_array=_r_to_json_array)
"""uuid, cidr, macaddr, interval (ISO 8601): text that never needs escaping (and ``::text`` is
their output form)."""
JSON = PgType(AirbyteType.UNKNOWN, _json, render=_r_json, native_array=_r_json_array, cursor=False)
JSONB = PgType(AirbyteType.UNKNOWN, _jsonb, render=_r_text, native_array=_r_to_json_array, cursor=False)
HSTORE = PgType(AirbyteType.OBJECT, _hstore, render=_r_hstore, cursor=False)
DATE = PgType(AirbyteType.DATE, _date, render=_r_date, problem=_p_date)
TIME = PgType(AirbyteType.TIME_WITHOUT_TIMEZONE, _time, render=_r_time)
TIMETZ = PgType(AirbyteType.TIME_WITH_TIMEZONE, _timetz, render=_r_timetz)
TIMESTAMP = PgType(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE, _timestamp, render=_TS_RENDER, problem=_TS_PROBLEM)
TIMESTAMPTZ = PgType(
    AirbyteType.TIMESTAMP_WITH_TIMEZONE, _timestamptz, render=_TSTZ_RENDER, problem=_TSTZ_PROBLEM
)
RANGE = PgType(AirbyteType.STRING, _string, cursor=False)
"""Range and multirange types: their text form (``[1,5)``, ``{[1,3), [7,9)}``)."""
OTHER = PgType(AirbyteType.STRING, _string, cursor=False)
"""Types nobody registered (geometric types, pg_lsn, ...): their text as a string."""


def build_types() -> TypeRegistry:
    """Scalar types by ``pg_type.typname`` (and their SQL spellings)."""
    types = TypeRegistry(default=OTHER)
    reg: list[tuple[Sequence[str], PgType]] = [
        (("int2", "int4", "int8", "smallint", "integer", "int", "bigint"), INTEGER),
        (("oid",), OID),
        (("numeric", "decimal"), NUMERIC),
        (("float4", "float8", "real", "double precision"), FLOAT),
        (("money",), MONEY),
        (("bool", "boolean"), BOOLEAN),
        (("bit", "varbit", "bit varying"), BITS),
        (("bytea",), BYTEA),
        (("text", "varchar", "character varying", "bpchar", "character", "char", "name", "citext"), TEXT),
        (('"char"', "xml", "tsvector", "tsquery"), OPAQUE_TEXT),
        (("uuid", "cidr", "macaddr", "macaddr8", "interval"), QUOTED),
        (("inet",), TEXT),  # inet::text always shows the netmask (::1/128); its output does not
        (("json",), JSON),
        (("jsonb",), JSONB),
        (("hstore",), HSTORE),
        (("date",), DATE),
        (("time", "time without time zone"), TIME),
        (("timetz", "time with time zone"), TIMETZ),
        (("timestamp", "timestamp without time zone"), TIMESTAMP),
        (("timestamptz", "timestamp with time zone"), TIMESTAMPTZ),
    ]
    for names, handler in reg:
        for name in names:
            types.register(name, handler.with_(type_name=name))
    return types


TYPES = build_types()


def scalar(type_name: str) -> PgType:
    """The registered handler of a scalar type (OTHER when nobody registered it)."""
    handler = TYPES.resolve(type_name)
    return handler if isinstance(handler, PgType) else OTHER


# ------------------------------------------------------------------------------ built types


def domain_of(base: PgType, base_type_name: str) -> PgType:
    """A domain reads as its base type (its value cast to the base type on the server)."""
    cast = sql.SQL(base_type_name)

    def render(x: Sql) -> Sql:
        return base.render(q("CAST({} AS {})", x, cast))

    problem = None
    if base.problem is not None:
        base_problem = base.problem

        def problem(x: Sql) -> Sql:
            return base_problem(q("CAST({} AS {})", x, cast))

    native = None
    if base.native_array is not None:
        base_native = base.native_array

        def native(a: Sql) -> Sql:
            return base_native(q("CAST({} AS {}[])", a, cast))

    return base.with_(render=render, problem=problem, native_array=native)


ENUM = TEXT.with_(type_name="enum")


_MAX_DIMS = 6


def _elementwise(element: PgType) -> Render:
    """Nested JSON arrays of the rendered elements, for any number of dimensions (up to 6)."""

    def level(a: Sql, dims: int, depth: int, subscripts: list[Sql]) -> Sql:
        i = sql.Identifier(f"_i{depth}")
        here = [*subscripts, i]
        inner: Sql
        if depth == dims:
            index = sql.SQL("").join(q("[{}]", s) for s in here)
            inner = q("coalesce({}, 'null')", element.render(q("({}){}", a, index)))
        else:
            inner = level(a, dims, depth + 1, here)
        return q(
            "(SELECT '[' || string_agg({}, ',' ORDER BY {}) || ']' FROM generate_subscripts({}, {}) AS {})",
            inner,
            i,
            a,
            sql.Literal(depth),
            i,
        )

    def render(a: Sql) -> Sql:
        branches = sql.SQL(" ").join(
            q("WHEN {} THEN {}", sql.Literal(n), level(a, n, 1, [])) for n in range(1, _MAX_DIMS + 1)
        )
        return q(
            "CASE WHEN cardinality({0}) = 0 THEN '[]' ELSE CASE array_ndims({0}) {1} END END", a, branches
        )

    return render


def array_of(element: PgType, dims: int = 1, delimiter: str = ",") -> PgType:
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
            return q("EXISTS (SELECT FROM unnest({}) AS {} WHERE {})", a, e, element_problem(e))

    convert_element = element.convert

    def convert(value: Any) -> Any:
        nested = parse_array(_text(value), delimiter)
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

    return PgType(
        AirbyteType.ARRAY,
        convert,
        items=items,
        cursor=False,
        render=render,
        problem=problem,
        type_name=f"{element.type_name}[]",
    )


def composite_of(attributes: Sequence[tuple[str, PgType]]) -> PgType:
    """Composite types: an object of the attributes, each rendered by its own type's handler."""
    names = [name for name, _ in attributes]
    handlers = [handler for _, handler in attributes]
    properties = {name: handler.json_schema(True) for name, handler in attributes}

    def render(x: Sql) -> Sql:
        parts: list[Sql] = []
        for i, (name, handler) in enumerate(attributes):
            key = ("{" if i == 0 else ",") + json_string(name) + ":"
            field_sql = q("({}).{}", x, sql.Identifier(name))
            parts.append(q("{} || coalesce({}, 'null')", lit(key), handler.render(field_sql)))
        body = sql.SQL(" || ").join(parts) if parts else lit("{")
        return q("CASE WHEN num_nulls({}) = 0 THEN {} || '}}' END", x, body)

    problems = [(name, h.problem) for name, h in attributes if h.problem is not None]
    problem = None
    if problems:

        def problem(x: Sql) -> Sql:
            terms = [
                q("coalesce({}, false)", p(q("({}).{}", x, sql.Identifier(name)))) for name, p in problems
            ]
            return q("({})", sql.SQL(" OR ").join(terms))

    def convert(value: Any) -> Any:
        fields = parse_record(_text(value))
        if len(fields) != len(names):
            raise Unrepresentable("composite text has another number of fields than the type")
        out: dict[str, Any] = {}
        nulled = False
        for name, handler, text in zip(names, handlers, fields, strict=True):
            if text is None or handler.convert is None:
                out[name] = text
                continue
            try:
                out[name] = handler.convert(text)
            except Unrepresentable as exc:
                nulled = True
                out[name] = exc.replacement
        if nulled:
            raise Unrepresentable("an attribute has no JSON form", replacement=out)
        return out

    return PgType(
        AirbyteType.OBJECT,
        convert,
        cursor=False,
        render=render,
        problem=problem,
        schema_extra={"properties": properties},
        type_name="record",
    )
