"""Strings: text-like types, text that never needs escaping (uuid, inet, interval...), bit
strings, bytea (base64), enums, ranges, and every type nobody registered (its text)."""

from __future__ import annotations

import base64
from typing import Any

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    Sql,
    compose,
    render_quoted,
    render_text,
    render_to_json,
    render_to_json_array,
    text_form,
)


def _string(value: Any) -> str:
    return text_form(value)


def _bytea(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if not raw.startswith(b"\\x"):
            return base64.b64encode(raw).decode("ascii")
        value = raw.decode("ascii")
    text = text_form(value)
    if not text.startswith("\\x"):
        raise Unrepresentable("bytea text is not in hex form (bytea_output = hex)")
    return base64.b64encode(bytes.fromhex(text[2:])).decode("ascii")


def _r_bytea(x: Sql) -> Sql:
    return compose("'\"' || translate(encode({}, 'base64'), E'\\n', '') || '\"'", x)


BITS = PgReadHandler(
    AirbyteType.STRING, _string, render=render_quoted, column=render_text, native_array=render_to_json_array
)


def _c_bytea(x: Sql) -> Sql:
    return compose("translate(encode({}, 'base64'), E'\\n', '')", x)


BYTEA = PgReadHandler(AirbyteType.BINARY, _bytea, render=_r_bytea, column=_c_bytea, cursor=False)


TEXT = PgReadHandler(
    AirbyteType.STRING, _string, render=render_to_json, column=render_text, native_array=render_to_json_array
)
"""text, varchar, char(n) (padding kept), name, citext, enums: to_json writes their text."""


OPAQUE_TEXT = TEXT.with_(cursor=False)
"""xml, tsvector, tsquery: strings, but no total order worth a cursor."""


QUOTED = PgReadHandler(
    AirbyteType.STRING, _string, render=render_quoted, column=render_text, native_array=render_to_json_array
)
"""uuid, cidr, macaddr, interval (ISO 8601): text that never needs escaping (and ``::text`` is
their output form)."""


RANGE = PgReadHandler(AirbyteType.STRING, _string, column=render_text, cursor=False)
"""Range and multirange types: their text form (``[1,5)``, ``{[1,3), [7,9)}``)."""


OTHER = PgReadHandler(AirbyteType.STRING, _string, column=render_text, cursor=False)
"""Types nobody registered (geometric types, pg_lsn, ...): their text as a string."""


ENUM = TEXT.with_(type_name="enum")
