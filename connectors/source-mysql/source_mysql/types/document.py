"""JSON: emitted as JSON (an object stays an object, numbers keep every digit), MySQL's native
type and MariaDB's (LONGTEXT with a ``CHECK (json_valid(...))``, which discovery detects)."""

from __future__ import annotations

from typing import Any

import orjson

from dbkit.db import AirbyteType
from source_mysql.types.base import MySqlReadHandler, text_form


def _json(value: Any) -> Any:
    """The document as stored, on one line: in valid JSON a line break can only be whitespace."""
    return orjson.Fragment(text_form(value).replace("\n", " ").replace("\r", " "))


def _r_json(x: str) -> str:
    return f"REPLACE(REPLACE(CAST({x} AS CHAR CHARACTER SET utf8mb4), '\\n', ' '), '\\r', ' ')"


JSON = MySqlReadHandler(AirbyteType.UNKNOWN, _json, render=_r_json, cursor=False)
