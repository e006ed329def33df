"""Airbyte's logical types, their JSON schemas, and the per-dialect registry of source type handlers.

A source dialect registers one :class:`TypeHandler` per database type name (never an if-chain).
A handler says which Airbyte type the column has and how a value from the driver becomes a
JSON-ready value. A value that cannot be represented raises :class:`Unrepresentable`; the reader
then emits ``null`` for it and records a ``meta.changes`` entry, so nothing is silently damaged.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import orjson

from dbkit.protocol import loads_exact
from dbkit.protocol.jsonio import needs_exact_parse
from dbkit.protocol.messages import exact_default


class AirbyteType(enum.StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    TIME_WITHOUT_TIMEZONE = "time_without_timezone"
    TIME_WITH_TIMEZONE = "time_with_timezone"
    TIMESTAMP_WITHOUT_TIMEZONE = "timestamp_without_timezone"
    TIMESTAMP_WITH_TIMEZONE = "timestamp_with_timezone"
    BINARY = "binary"
    OBJECT = "object"
    ARRAY = "array"
    UNKNOWN = "unknown"


_BASE_SCHEMAS: dict[AirbyteType, dict[str, Any]] = {
    AirbyteType.STRING: {"type": "string"},
    AirbyteType.BOOLEAN: {"type": "boolean"},
    AirbyteType.INTEGER: {"type": "integer"},
    AirbyteType.NUMBER: {"type": "number"},
    AirbyteType.DATE: {"type": "string", "format": "date"},
    AirbyteType.TIME_WITHOUT_TIMEZONE: {
        "type": "string",
        "format": "time",
        "airbyte_type": "time_without_timezone",
    },
    AirbyteType.TIME_WITH_TIMEZONE: {
        "type": "string",
        "format": "time",
        "airbyte_type": "time_with_timezone",
    },
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: {
        "type": "string",
        "format": "date-time",
        "airbyte_type": "timestamp_without_timezone",
    },
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: {
        "type": "string",
        "format": "date-time",
        "airbyte_type": "timestamp_with_timezone",
    },
    AirbyteType.BINARY: {"type": "string", "contentEncoding": "base64"},
    AirbyteType.OBJECT: {"type": "object"},
    AirbyteType.ARRAY: {"type": "array"},
    AirbyteType.UNKNOWN: {},
}

# Types a cursor column may have: totally ordered, comparable in SQL.
CURSOR_TYPES = frozenset(
    {
        AirbyteType.STRING,
        AirbyteType.INTEGER,
        AirbyteType.NUMBER,
        AirbyteType.DATE,
        AirbyteType.TIME_WITHOUT_TIMEZONE,
        AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
        AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    }
)


def json_schema_for(
    airbyte_type: AirbyteType,
    *,
    nullable: bool = True,
    items: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON schema of a column. Nullable columns declare ``["<type>", "null"]``."""
    schema = dict(_BASE_SCHEMAS[airbyte_type])
    if airbyte_type is AirbyteType.ARRAY:
        schema["items"] = dict(items) if items is not None else {}
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if extra:
        schema.update(extra)
    return schema


@dataclass(frozen=True)
class SchemaType:
    """What a destination reads out of a property's JSON schema."""

    airbyte_type: AirbyteType
    items: SchemaType | None = None


_AIRBYTE_TYPE_ALIASES = {
    "timestamp_with_timezone": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    "timestamp_without_timezone": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    "time_with_timezone": AirbyteType.TIME_WITH_TIMEZONE,
    "time_without_timezone": AirbyteType.TIME_WITHOUT_TIMEZONE,
    "integer": AirbyteType.INTEGER,
    "big_integer": AirbyteType.INTEGER,
}


def schema_type(schema: Any) -> SchemaType:
    """Read the Airbyte type of a property schema (as destinations see it).

    Handles ``["null", X]`` unions, ``airbyte_type`` refinements, formats, base64 strings,
    ``$ref`` to Airbyte's well-known types, and ``oneOf``/``anyOf`` (unions of several non-null
    types become UNKNOWN, stored as JSON).
    """
    if not isinstance(schema, Mapping):
        return SchemaType(AirbyteType.UNKNOWN)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _well_known(ref.rsplit("/", 1)[-1])
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list):
            non_null = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            if len(non_null) == 1:
                return schema_type(non_null[0])
            return SchemaType(AirbyteType.UNKNOWN)
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null_types = [t for t in declared if t != "null"]
        if len(non_null_types) != 1:
            return SchemaType(AirbyteType.UNKNOWN)
        declared = non_null_types[0]
    airbyte_type = schema.get("airbyte_type")
    if declared == "string":
        if airbyte_type in _AIRBYTE_TYPE_ALIASES:
            return SchemaType(_AIRBYTE_TYPE_ALIASES[airbyte_type])
        fmt = schema.get("format")
        if fmt == "date":
            return SchemaType(AirbyteType.DATE)
        if fmt == "date-time":
            return SchemaType(AirbyteType.TIMESTAMP_WITH_TIMEZONE)
        if fmt == "time":
            return SchemaType(AirbyteType.TIME_WITHOUT_TIMEZONE)
        if schema.get("contentEncoding") == "base64":
            return SchemaType(AirbyteType.BINARY)
        return SchemaType(AirbyteType.STRING)
    if declared == "integer":
        return SchemaType(AirbyteType.INTEGER)
    if declared == "number":
        if airbyte_type in ("integer", "big_integer"):
            return SchemaType(AirbyteType.INTEGER)
        return SchemaType(AirbyteType.NUMBER)
    if declared == "boolean":
        return SchemaType(AirbyteType.BOOLEAN)
    if declared == "object":
        return SchemaType(AirbyteType.OBJECT)
    if declared == "array":
        items = schema.get("items")
        return SchemaType(AirbyteType.ARRAY, schema_type(items) if isinstance(items, Mapping) else None)
    return SchemaType(AirbyteType.UNKNOWN)


_WELL_KNOWN = {
    "String": AirbyteType.STRING,
    "BinaryData": AirbyteType.BINARY,
    "Date": AirbyteType.DATE,
    "TimestampWithTimezone": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    "TimestampWithoutTimezone": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    "TimeWithTimezone": AirbyteType.TIME_WITH_TIMEZONE,
    "TimeWithoutTimezone": AirbyteType.TIME_WITHOUT_TIMEZONE,
    "Number": AirbyteType.NUMBER,
    "Integer": AirbyteType.INTEGER,
    "Boolean": AirbyteType.BOOLEAN,
}


def _well_known(name: str) -> SchemaType:
    return SchemaType(_WELL_KNOWN.get(name, AirbyteType.UNKNOWN))


# ------------------------------------------------------------------------------ source values


class Unrepresentable(Exception):
    """A database value has no faithful JSON form under the column's declared type.

    ``reason`` is an Airbyte change reason (default SOURCE_SERIALIZATION_ERROR). ``replacement``
    is emitted instead of the value (default ``None``: null); a container value with a few bad
    parts (an array holding a NaN) passes itself with those parts nulled, and the change is
    recorded for the whole field all the same.
    """

    def __init__(
        self, detail: str, reason: str = "SOURCE_SERIALIZATION_ERROR", replacement: Any = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.replacement = replacement


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class TypeHandler:
    """How one database type is discovered and read.

    - ``airbyte_type`` / ``items``: the declared JSON schema;
    - ``convert``: driver value -> JSON-ready value (``None`` means the driver value is already
      JSON-ready); called only for non-NULL values; raises :class:`Unrepresentable`;
    - ``to_state``: driver value -> JSON value kept in STATE for a cursor or key column, so that
      the value can be bound again exactly (default: the converted value, or its ``str``);
    - ``cursor``: whether the type can serve as an incremental cursor.
    """

    airbyte_type: AirbyteType
    convert: Converter | None = None
    items: Mapping[str, Any] | None = None
    to_state: Converter | None = None
    cursor: bool | None = None
    schema_extra: Mapping[str, Any] = field(default_factory=dict)

    def json_schema(self, nullable: bool) -> dict[str, Any]:
        return json_schema_for(
            self.airbyte_type, nullable=nullable, items=self.items, extra=self.schema_extra or None
        )

    @property
    def can_be_cursor(self) -> bool:
        return self.cursor if self.cursor is not None else self.airbyte_type in CURSOR_TYPES

    def state_value(self, value: Any) -> Any:
        if value is None:
            return None
        if self.to_state is not None:
            return self.to_state(value)
        return default_state_value(value)

    def with_(self, **changes: Any) -> TypeHandler:
        return replace(self, **changes)


_STATE_TAGS: dict[str, Callable[[Any], Any]] = {
    "decimal": Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda parts: dt.timedelta(*parts),
    "uuid": uuid.UUID,
    "float": float,
    "base64": base64.b64decode,
}


def default_state_value(value: Any) -> Any:
    """A JSON form of a key/cursor value that :func:`state_to_python` turns back into the same value.

    Integers, text and booleans stay plain; every other kind is tagged (``{"datetime": "..."}``,
    ``{"decimal": "..."}``, ``{"float": "0.1"}``, ``{"base64": "..."}``...), so it binds back as the
    very Python object the driver gave, whatever JSON parsing does to numbers on the way.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}  # also inf/nan; never re-parsed as a Decimal
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    for tag, kind in (("datetime", dt.datetime), ("date", dt.date), ("time", dt.time)):
        if isinstance(value, kind):
            return {tag: value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return str(value)  # anything else binds back as its text (the database casts it)


def state_to_python(value: Any) -> Any:
    """The Python value a :func:`default_state_value` form stands for."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        convert = _STATE_TAGS.get(tag)
        if convert is not None:
            return convert(text)
    return value


def _normalize_type_name(name: str) -> str:
    """Lower case, single spaces, parameters dropped: ``VARCHAR (20)`` -> ``varchar``,
    ``timestamp(6) with time zone`` -> ``timestamp with time zone``, ``enum('a)', 'b')`` -> ``enum``."""
    out: list[str] = []
    depth = 0
    quote: str | None = None
    for ch in name:
        if quote is not None:
            if ch == quote:
                quote = None
        elif depth and ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
            out.append(" ")
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return re.sub(r"\s+", " ", "".join(out).strip().lower())


class TypeRegistry:
    """Database type name -> :class:`TypeHandler`; names are matched case-insensitively, with
    parameters (``varchar(20)``, ``numeric(10,2)``) ignored. ``fallback`` decides for names that
    were not registered (e.g. SQLite's affinity rules) and ``default`` is the last resort."""

    def __init__(
        self,
        default: TypeHandler,
        fallback: Callable[[str], TypeHandler | None] | None = None,
    ) -> None:
        self._handlers: dict[str, TypeHandler] = {}
        self.default = default
        self.fallback = fallback

    def register(self, names: str | Iterable[str], handler: TypeHandler) -> None:
        for name in [names] if isinstance(names, str) else names:
            self._handlers[_normalize_type_name(name)] = handler

    def copy(self) -> TypeRegistry:
        other = TypeRegistry(self.default, self.fallback)
        other._handlers = dict(self._handlers)
        return other

    def resolve(self, type_name: str) -> TypeHandler:
        key = _normalize_type_name(type_name)
        handler = self._handlers.get(key)
        if handler is not None:
            return handler
        if self.fallback is not None:
            handler = self.fallback(key)
            if handler is not None:
                return handler
        return self.default

    def __contains__(self, type_name: str) -> bool:
        return _normalize_type_name(type_name) in self._handlers

    def knows(self, type_name: str) -> bool:
        """True when ``type_name`` is registered or the fallback decides it (it does not fall to
        the default)."""
        key = _normalize_type_name(type_name)
        return key in self._handlers or (self.fallback is not None and self.fallback(key) is not None)


# --------------------------------------------------------------------- common value converters


def finite_float(value: Any) -> Any:
    """Floats: NaN and the infinities have no JSON number form; they become NULL + a change."""
    f = float(value)
    if math.isfinite(f):
        return f
    raise Unrepresentable(f"{f!r} has no JSON number form")


def exact_decimal(value: Any) -> Any:
    """Decimals are emitted as number text (orjson Fragment): every digit kept."""
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    if not value.is_finite():
        raise Unrepresentable(f"{value} has no JSON number form")
    text = format(value, "f")
    return orjson.Fragment(text)


def wide_int(value: Any) -> Any:
    """Integers outside 64 bits are emitted as number text."""
    i = int(value)
    if -(2**63) <= i < 2**64:
        return i
    return orjson.Fragment(str(i))


def base64_bytes(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _exact_json(value: Any) -> Any:
    """Replace the exact numbers of a :func:`loads_exact` result by their number text."""
    if isinstance(value, dict):
        return {k: _exact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact_json(v) for v in value]
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Unrepresentable(f"{value} has no JSON number form")
        return orjson.Fragment(str(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return wide_int(value)
    return value


def parse_json_text(value: Any) -> Any:
    """A JSON document held as text becomes the JSON value itself (object, array, ...), compact
    (one line) and with every digit of its numbers kept. Numbers stored as such pass through
    (:func:`wide_int` / :func:`finite_float`); text that is not JSON raises Unrepresentable."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise Unrepresentable("stored bytes are not UTF-8 JSON text") from None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return wide_int(value)
    if isinstance(value, float):
        return finite_float(value)
    if not isinstance(value, str):
        return value
    raw = value.encode("utf-8", "surrogatepass")
    try:
        parsed = loads_exact(raw)
        if needs_exact_parse(raw):
            parsed = _exact_json(parsed)
        return orjson.Fragment(orjson.dumps(parsed, default=exact_default))
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: deeper than orjson writes
        raise Unrepresentable("stored text is not valid JSON") from exc
