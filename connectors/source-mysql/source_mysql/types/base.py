"""What every MySQL type handler shares: :class:`MySqlReadHandler` (the two paths, Python and
server, see :mod:`source_mysql.types`) and helpers to write the server path's SQL."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from dbkit.db import TypeHandler, Unrepresentable

Render = Callable[[str], str]
"""SQL of a value (``x``: the quoted column, or any expression of the column's type) -> SQL."""

BindKind = Literal["int", "decimal", "float", "text", "binary"]

SESSION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("time_zone", "'+00:00'"),
    ("sql_mode", "'NO_ENGINE_SUBSTITUTION'"),
    ("max_sort_length", "8388608"),
    ("net_write_timeout", "3600"),
    ("net_read_timeout", "3600"),
    ("group_concat_max_len", "1048576"),
)
"""Session settings both paths rely on: TIMESTAMP values in UTC; no strict or ANSI mode (zero
dates read and compare, backslash escapes in literals, ``||`` is OR); ORDER BY on the whole of a
long string (a keyset read compares whole values); an unbuffered read whose consumer is slow is
not cut after 60 s."""


def sql_string(text: str) -> str:
    """``text`` as a MySQL string literal (backslash escapes on: the session's sql_mode)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def json_string(text: str) -> str:
    """A JSON string exactly as orjson writes it."""
    return orjson.dumps(text).decode()


def text_form(value: Any) -> str:
    """The value's text form as ``str`` (PyMySQL gives bytes for binary-charset results)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise Unrepresentable("text is not UTF-8") from None
    raise Unrepresentable(f"expected the text form of a value, got {type(value).__name__}")


def raw_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise Unrepresentable(f"expected bytes, got {type(value).__name__}")


def render_number(x: str) -> str:
    """Integers and decimals: their text is already a JSON number."""
    return x


def render_base64(x: str) -> str:
    return f"CONCAT('\"', REPLACE(TO_BASE64({x}), '\\n', ''), '\"')"


def to_base64(value: Any) -> str:
    return base64.b64encode(raw_bytes(value)).decode("ascii")


@dataclass(frozen=True)
class MySqlReadHandler(TypeHandler):
    """How source-mysql reads one MySQL type, on both paths.

    - ``convert`` (the **Python path**) takes the value as a text-protocol result gives it when
      the driver converts nothing (``str``; ``bytes`` for binary types) for the expression
      ``select(column)`` and returns its JSON value (raising Unrepresentable for none);
    - ``render`` (the **server path**) is SQL of the value's JSON text, NULL when the value has no
      JSON form; ``problem`` SQL true exactly then (None: every value has one);
    - ``bind`` says how a key or cursor value kept in STATE (its text) is bound back: as an
      integer, a decimal, a double, a string literal the server converts to the column's type,
      or bytes (``binary``: STATE holds base64);
    - ``select`` is what the Python path and key capture select for the column (default: itself).
    """

    render: Render = field(default=lambda x: f"JSON_QUOTE({x})")
    problem: Render | None = None
    bind: BindKind = "text"
    select: Render = field(default=lambda x: x)
    type_name: str = ""

    def json_schema(self, nullable: bool) -> dict[str, Any]:
        """Nullable also for a NOT NULL column when the type has values without a JSON form (a
        zero date in a NOT NULL DATE column is emitted as null)."""
        return super().json_schema(nullable or self.problem is not None)

    def with_(self, **changes: Any) -> MySqlReadHandler:
        return replace(self, **changes)
