"""Documents: json (kept as written, on one line), jsonb (as PostgreSQL normalizes it) and
hstore (an object of strings, as ``hstore::jsonb`` writes it)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    Sql,
    compose,
    json_string,
    render_text,
    render_to_json_array,
    text_form,
)


def _json(value: Any) -> Any:
    """json keeps its text (key order, duplicate keys, number spelling); line breaks and tabs,
    which JSON allows only between tokens, become spaces so the record stays one line."""
    return orjson.Fragment(text_form(value).translate(_JSON_WS))


_JSON_WS = str.maketrans("\n\r\t", "   ")


def _jsonb(value: Any) -> Any:
    return orjson.Fragment(text_form(value))


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
    pairs = parse_hstore(text_form(value))
    body = ", ".join(f"{json_string(k)}: {'null' if v is None else json_string(v)}" for k, v in pairs)
    return orjson.Fragment("{" + body + "}")


def _r_json(x: Sql) -> Sql:
    return compose("translate({}::text, E'\\n\\r\\t', '   ')", x)


def _r_json_array(a: Sql) -> Sql:
    return compose("translate(to_json({})::text, E'\\n\\r\\t', '   ')", a)


def _r_hstore(x: Sql) -> Sql:
    return compose("({})::jsonb::text", x)


JSON = PgReadHandler(AirbyteType.UNKNOWN, _json, render=_r_json, native_array=_r_json_array, cursor=False)


JSONB = PgReadHandler(
    AirbyteType.UNKNOWN, _jsonb, render=render_text, native_array=render_to_json_array, cursor=False
)


HSTORE = PgReadHandler(AirbyteType.OBJECT, _hstore, render=_r_hstore, cursor=False)
