"""What every PostgreSQL type handler shares: :class:`PgReadHandler` (the two paths, Python and
server, see :mod:`source_postgres.types`), SQL composition helpers, the session settings both
paths rely on, and the renderers several type families use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from psycopg import sql

from dbkit.db import (
    TypeHandler,
    Unrepresentable,
)

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


def compose(template: str, *parts: Sql) -> sql.Composed:
    """``template`` with ``{}`` replaced by SQL parts (literal braces are written ``{{ }}``)."""
    return sql.SQL(template).format(*parts)


def text_literal(text: str) -> Sql:
    """``text`` as a quoted SQL string literal."""
    return sql.Literal(text)


def json_string(text: str) -> str:
    """A JSON string exactly as PostgreSQL's ``to_json(text)`` writes it (orjson escapes the same)."""
    return orjson.dumps(text).decode()


@dataclass(frozen=True)
class PgReadHandler(TypeHandler):
    """How source-postgres reads one PostgreSQL type, on both paths (see
    :mod:`source_postgres.types`): ``convert`` takes the text output form, ``render`` makes the
    server write the JSON text, ``problem`` is true where the value is emitted as null."""

    render: Render = field(default=lambda x: compose("to_json({}::text)::text", x))
    problem: Render | None = None
    native_array: Render | None = None
    """JSON text of a whole array of this type (any dimensions), when ``to_json`` renders the
    elements exactly as ``render`` does; None: arrays are rendered element by element."""
    type_name: str = ""
    column: Render | None = None
    """The value as a typed frame's column (:mod:`source_postgres.columns`) as text: what the JSON
    value ``render`` gives stands for (a string's value, unquoted; an integer's or a boolean's
    text); None: the JSON token itself (number and JSON types), or none (see ``columns``)."""

    def with_(self, **changes: Any) -> PgReadHandler:
        return replace(self, **changes)


def text_form(value: Any) -> str:
    """The value's text output form as ``str`` (psycopg's text loader may give bytes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    raise Unrepresentable(f"expected the text form of a value, got {type(value).__name__}")


def render_text(x: Sql) -> Sql:
    return compose("{}::text", x)


def render_to_json(x: Sql) -> Sql:
    return compose("to_json({})::text", x)


def render_quoted(x: Sql) -> Sql:
    """For types whose text never needs JSON escaping (uuid, inet, bit strings, ISO intervals)."""
    return compose("'\"' || {}::text || '\"'", x)


def render_output(x: Sql) -> Sql:
    """The value's output form as text (``x::text`` trims ``char(n)`` and gives inet's netmask)."""
    return compose("CASE WHEN {0} IS NOT NULL THEN format('%s', {0}) END", x)  # format gives '' for NULL


def render_to_json_array(a: Sql) -> Sql:
    return compose("to_json({})::text", a)
