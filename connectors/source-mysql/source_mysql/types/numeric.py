"""Numbers: integers of every size, signed and unsigned (their text is a JSON number, however
wide), decimals (every digit), FLOAT and DOUBLE, YEAR; TINYINT(1) and BIT(1) as booleans."""

from __future__ import annotations

from typing import Any

import orjson

from dbkit.db import AirbyteType, Unrepresentable
from source_mysql.types.base import MySqlReadHandler, raw_bytes, render_number, text_form


def _integer(value: Any) -> Any:
    text = text_form(value)
    try:
        number = int(text)
    except ValueError:
        raise Unrepresentable("not an integer") from None
    return number if -(2**63) <= number < 2**64 else orjson.Fragment(text)


def _number(value: Any) -> Any:
    """DECIMAL and DOUBLE text (``-1.50``, ``1e300``, ``0.0000001``) is a JSON number as it is."""
    return orjson.Fragment(text_form(value))


def _flag(value: Any) -> Any:
    """TINYINT(1): 0 is false, every other value true (as Connector/J reads it for Airbyte)."""
    return int(text_form(value)) != 0


def _bit1(value: Any) -> Any:
    return any(raw_bytes(value))


INTEGER = MySqlReadHandler(AirbyteType.INTEGER, _integer, render=render_number, bind="int")


DECIMAL = MySqlReadHandler(AirbyteType.NUMBER, _number, render=render_number, bind="decimal")


DOUBLE = MySqlReadHandler(AirbyteType.NUMBER, _number, render=render_number, bind="float")


def _as_double(x: str) -> str:
    return f"CAST({x} AS DOUBLE)"


FLOAT = DOUBLE.with_(render=_as_double, select=_as_double)
"""FLOAT (single precision): the stored value exactly, as the double it converts to
(``1.1`` stored reads ``1.100000023841858``): the server's own text of a FLOAT has six digits."""


YEAR = INTEGER.with_(render=lambda x: f"({x} + 0)")
"""YEAR: the year as an integer (``0000`` reads 0)."""


BOOLEAN_TINYINT = MySqlReadHandler(
    AirbyteType.BOOLEAN, _flag, render=lambda x: f"IF({x} <> 0, 'true', 'false')", bind="int"
)


BIT1 = MySqlReadHandler(
    AirbyteType.BOOLEAN,
    _bit1,
    render=lambda x: f"IF({x} + 0 <> 0, 'true', 'false')",
    bind="binary",
    cursor=False,
)
