"""Strings and bytes: text of every character set (read as UTF-8 JSON strings), binary strings,
BLOBs, BIT(n) and geometries (base64), ENUM and SET (their text), and every type nobody
registered (its text)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from dbkit.db import AirbyteType
from source_mysql.types.base import MySqlReadHandler, render_base64, text_form, to_base64

_CONTROL = re.compile(r"[\x00-\x1f]")
_SHORT_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")


def _string(value: Any) -> Any:
    """The text; a text with control characters as the server's JSON_QUOTE writes it (``\\u001F``:
    upper-case hex, where orjson writes lower case), so that both paths give the same bytes."""
    text = text_form(value)
    if _CONTROL.search(text) is None:
        return text
    dumped = orjson.dumps(text).decode()
    return orjson.Fragment(_SHORT_ESCAPE.sub(lambda m: m.group(1) + "\\u00" + m.group(2).upper(), dumped))


NEEDS_ESCAPE = r"""'[\\x00-\\x1f"\\\\]'"""
r"""SQL of a regular expression matching the characters a JSON string must escape: the control
characters, ``"`` and backslash (the SQL literal of ``[\x00-\x1f"\\]``)."""


def render_string(v: str) -> str:
    """SQL of the JSON string of ``v`` (a utf8mb4 string expression). JSON_QUOTE works character
    by character and was a sixth of the server's work on a read of typical rows: it is kept for
    the strings that need an escape, the others are put between quotes (the same bytes)."""
    return f"IF({v} REGEXP {NEEDS_ESCAPE}, JSON_QUOTE({v}), CONCAT('\"', {v}, '\"'))"


def _r_text(x: str) -> str:
    return render_string(f"CONVERT({x} USING utf8mb4)")


TEXT = MySqlReadHandler(AirbyteType.STRING, _string, render=_r_text)
"""CHAR, VARCHAR and the TEXT types in any character set (utf8mb3, utf8mb4, latin1, ...) and
collation (binary collations too): the characters, as UTF-8. CHAR drops its trailing spaces as
MySQL does."""


BINARY = MySqlReadHandler(AirbyteType.BINARY, to_base64, render=render_base64, bind="binary")
"""BINARY (zero-padded, as stored), VARBINARY and the BLOB types: base64."""


BITS = BINARY.with_(cursor=False)
"""BIT(n), n > 1: the value's bytes (big-endian, ``ceil(n / 8)`` of them), base64, as Airbyte's
source-mysql reads them: BIT(9) b'101010101' reads ``AVU=``."""


GEOMETRY = BINARY.with_(cursor=False)
"""Spatial types: MySQL's internal form, base64: the 4-byte little-endian SRID, then the
geometry's WKB (``ST_GeomFromWKB(SUBSTRING(v, 5), <srid>)`` reads it back)."""


ENUM = TEXT.with_(cursor=False)
"""ENUM: the member's text (an invalid value stored as the empty string reads ``""``). Not a
cursor: ORDER BY sorts members by their index, comparisons by their text."""


SET = ENUM
"""SET: its members' text, comma-separated in definition order (``"a,c"``)."""


def _r_other(x: str) -> str:
    return render_string(f"CAST({x} AS CHAR CHARACTER SET utf8mb4)")


OTHER = MySqlReadHandler(AirbyteType.STRING, _string, render=_r_other, cursor=False)
"""Types nobody registered: their text."""


SPECIAL_TEXT = OTHER.with_(cursor=True)
"""MariaDB's UUID, INET4 and INET6: their text."""
