"""Generic type handlers, keyed by the names SQLAlchemy compiles reflected column types to.

Any source can use them: source-sql reads every database with :func:`generic_types`, and a
declarative manifest (:mod:`dbkit.manifest`) names them (:data:`GENERIC_HANDLERS`) to override
how a database type is read.

The names are those of PostgreSQL, MySQL/MariaDB and SQLite (``TIMESTAMP WITH TIME ZONE``,
``BIGINT(20) UNSIGNED``, ``LONGTEXT CHARACTER SET utf8mb4``, ...), which most other databases
share. Parameters are ignored (``numeric(40, 10)`` is ``numeric``), and so are MySQL's column
attributes (``unsigned``, ``character set``, ``collate``). A name nobody registered reads as text.

Converters take what the driver returns — Python ``datetime``, ``Decimal``, ``bytes``,
``timedelta`` (MySQL's TIME), JSON text, or from SQLite the stored value of any kind — and check
it: a value that does not fit its column's type (text in an INTEGER column, NaN, an impossible
date) becomes NULL with a ``meta.changes`` entry, never a wrong value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from dbkit.db.types import (
    AirbyteType,
    TypeHandler,
    TypeRegistry,
    Unrepresentable,
    base64_bytes,
    exact_decimal,
    finite_float,
    parse_json_text,
    wide_int,
)

_UTC = dt.UTC
_DAY = dt.timedelta(days=1)


def _integer(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return wide_int(value)
    if isinstance(value, float) and value.is_integer():
        return wide_int(int(value))  # 1e20 stored as REAL in an SQLite INTEGER column
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return wide_int(int(value))
    raise Unrepresentable(f"{type(value).__name__} value in an integer column")


def _number(value: Any) -> Any:
    """Every digit kept: decimals as number text, integers of any width, finite floats."""
    if isinstance(value, bool):
        raise Unrepresentable("boolean value in a numeric column")
    if isinstance(value, int):
        return wide_int(value)
    if isinstance(value, float):
        return finite_float(value)
    if isinstance(value, str):  # numeric text SQLite kept as text (too many digits for a REAL)
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise Unrepresentable("text that is not a number in a numeric column") from None
    if isinstance(value, Decimal):
        return exact_decimal(value)
    raise Unrepresentable(f"{type(value).__name__} value in a numeric column")


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "t", "f", "1", "0"):
        return value.strip().lower() in ("true", "t", "1")
    raise Unrepresentable("value in a boolean column is not true/false/0/1")


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise Unrepresentable("bytes that are not UTF-8 in a text column") from None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | dict):  # arrays and the like of types nobody registered
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            raise Unrepresentable(f"{type(value).__name__} value has no text form") from None
    return str(value)  # numbers, UUID, IP addresses, intervals, ...


def _binary(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64_bytes(value)
    if isinstance(value, str):
        return base64_bytes(value.encode("utf-8"))
    raise Unrepresentable(f"{type(value).__name__} value in a binary column")


def _date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time() or value.tzinfo is not None:
            raise Unrepresentable("a date and time in a date column")
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise Unrepresentable("value in a date column is not a YYYY-MM-DD date")


def _time(value: Any) -> Any:
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):  # MySQL TIME: a duration, -838:59:59 .. 838:59:59
        if dt.timedelta(0) <= value < _DAY:
            return (dt.datetime.min + value).time().isoformat()
        raise Unrepresentable("a TIME value outside 00:00:00..23:59:59 is not a time of day")
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise Unrepresentable("value in a time column is not HH:MM[:SS[.ffffff]]")


def _timestamp(with_zone: bool) -> Any:
    """Naive datetimes as ``timestamp_without_timezone``; aware ones (PostgreSQL's timestamptz) as
    the instant in UTC, so a row reads the same whatever the session's time zone. Microseconds kept."""

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise Unrepresentable("value in a timestamp column is not an ISO date and time") from None
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value, dt.time())
        if not isinstance(value, dt.datetime):
            raise Unrepresentable(f"{type(value).__name__} value in a timestamp column")
        if value.tzinfo is None:
            return value.replace(tzinfo=_UTC).isoformat() if with_zone else value.isoformat()
        if not with_zone:
            raise Unrepresentable("a time zone offset in a timestamp-without-time-zone column")
        return value.astimezone(_UTC).isoformat()

    return convert


def _json(value: Any) -> Any:
    """JSON text (MariaDB, SQLite, psycopg as the dialect sets it up) becomes the JSON value
    itself with every digit kept; documents a driver already parsed are written back as JSON."""
    if isinstance(value, dict | list):
        try:
            value = json.dumps(value)
        except (TypeError, ValueError):
            raise Unrepresentable(f"{type(value).__name__} value is not a JSON document") from None
    return parse_json_text(value)


INTEGER = TypeHandler(AirbyteType.INTEGER, _integer)
NUMBER = TypeHandler(AirbyteType.NUMBER, _number)
BOOLEAN = TypeHandler(AirbyteType.BOOLEAN, _boolean)
STRING = TypeHandler(AirbyteType.STRING, _text)
BINARY = TypeHandler(AirbyteType.BINARY, _binary, cursor=False)
DATE = TypeHandler(AirbyteType.DATE, _date)
TIME = TypeHandler(AirbyteType.TIME_WITHOUT_TIMEZONE, _time)
TIMETZ = TypeHandler(AirbyteType.TIME_WITH_TIMEZONE, _time)
TIMESTAMP = TypeHandler(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE, _timestamp(with_zone=False))
TIMESTAMPTZ = TypeHandler(AirbyteType.TIMESTAMP_WITH_TIMEZONE, _timestamp(with_zone=True))
JSON = TypeHandler(AirbyteType.UNKNOWN, _json, cursor=False)
OTHER = TypeHandler(AirbyteType.STRING, _text, cursor=False)
"""Types nobody registered (intervals, arrays, network addresses, ...): their text."""

# MySQL column attributes that follow the type name; they do not change how values read
_ATTRIBUTES = re.compile(r" (?:unsigned|signed|zerofill|character set \S+|charset \S+|collate \S+)")


HANDLER_NOTES: dict[str, str] = {
    "integer": "integers of any width (past 64 bits as number text); integral decimals and floats too",
    "number": "decimals with every digit, integers, finite floats, numeric text; NaN and infinities: NULL",
    "boolean": "true/false, 0/1 and their text forms",
    "string": "text; UTF-8 bytes decoded; dates, numbers and the like as their text",
    "binary": "bytes as base64",
    "date": "a date (YYYY-MM-DD)",
    "time": "a time of day (MySQL's TIME durations within a day)",
    "timetz": "a time of day with its offset",
    "timestamp": "a date and time without time zone",
    "timestamptz": "an instant, written in UTC",
    "json": "a JSON document held as text or parsed by the driver, every digit kept",
    "text": "any value as its text (the default for type names nobody registered)",
}
"""What each generic handler does (the manifest reference lists them)."""

GENERIC_HANDLERS: dict[str, TypeHandler] = {
    "integer": INTEGER,
    "number": NUMBER,
    "boolean": BOOLEAN,
    "string": STRING,
    "binary": BINARY,
    "date": DATE,
    "time": TIME,
    "timetz": TIMETZ,
    "timestamp": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "json": JSON,
    "text": OTHER,
}
"""The generic handlers by name: what a manifest's ``types`` rules name (see :data:`HANDLER_NOTES`).
A value a handler cannot represent is NULL with a ``meta.changes`` entry."""


def generic_types() -> TypeRegistry:
    """A new registry of the generic handlers under the type names of PostgreSQL, MySQL/MariaDB
    and SQLite (and the many databases that share them); unknown names read as ``text``."""
    types = TypeRegistry(default=OTHER)
    types.register(
        ["smallint", "integer", "int", "bigint", "tinyint", "mediumint", "int2", "int4", "int8", "year"],
        INTEGER,
    )
    types.register(
        ["numeric", "decimal", "dec", "fixed", "real", "float", "double precision", "double"],
        NUMBER,
    )
    types.register(["float4", "float8"], NUMBER)
    types.register(["boolean", "bool"], BOOLEAN)
    types.register(
        [
            *("char", "character", "varchar", "character varying", "nchar", "nvarchar", "national char"),
            *("text", "tinytext", "mediumtext", "longtext", "string", "clob", "citext", "name"),
            *("enum", "set", "uuid"),
        ],
        STRING,
    )
    types.register("date", DATE)
    types.register(["time", "time without time zone"], TIME)
    types.register(["timetz", "time with time zone"], TIMETZ)
    types.register(["timestamp", "timestamp without time zone", "datetime"], TIMESTAMP)
    types.register(["timestamptz", "timestamp with time zone"], TIMESTAMPTZ)
    types.register(
        ["bytea", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "image"], BINARY
    )
    types.register(["json", "jsonb"], JSON)

    def without_attributes(name: str) -> TypeHandler | None:
        bare = _ATTRIBUTES.sub("", name)
        return types.resolve(bare) if bare != name else None

    types.fallback = without_attributes
    return types


TYPES = generic_types()
