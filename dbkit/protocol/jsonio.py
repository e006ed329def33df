"""JSON parsing that keeps every digit.

orjson is fast but parses every non-integer number (and integers wider than 64 bits) as a double,
which silently rounds ``12345678901234567890.123``. :func:`loads_exact` uses orjson for the vast
majority of lines and re-parses with the standard library (``Decimal`` for non-integers) only the
lines whose raw bytes contain a number that a double might not reproduce: 16 or more significant
digits, or an exponent with three digits. A digit run inside a string can trigger the slow path;
that costs time, never correctness.

Integers are ``int`` up to the interpreter's limit on decimal conversions (4,300 digits unless
``sys.set_int_max_str_digits`` changed it); a longer integer literal is read as a ``Decimal`` of
the same digits (exponent 0), which converts to text and back without that limit. The limit itself
is left alone: it is interpreter-wide and guards every other ``int(text)``.

Any nesting depth is read: a document nested deeper than the C parsers recurse (about 1,000
levels) is read level by level by :mod:`dbkit.protocol.deepjson`, at Python speed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson

from dbkit.protocol import deepjson
from dbkit.protocol.deepjson import int_or_decimal, number_from_text
from dbkit.protocol.errors import ProtocolInputError

# 16+ digits, optionally with one decimal point among them; or a 3-digit exponent.
_MAYBE_INEXACT = re.compile(rb"\d(?:\.?\d){15}|[eE][+-]?\d{3}")

ORJSON_MAX_DEPTH = 1024
"""orjson refuses to read arrays and objects nested deeper than this."""


def reject_constant(name: str) -> Any:
    """``parse_constant`` for the standard library's parser: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def loads_decimal(text: bytes | str) -> Any:
    """The standard library's parser with every number exact: ``Decimal`` for non-integers
    (:class:`~dbkit.protocol.deepjson.HugeNumber` for one whose exponent ``Decimal`` cannot hold),
    ``int`` for integers (``Decimal`` past the digit limit). NaN and Infinity are refused.

    Every failure is a ``ValueError`` (bad JSON, bad UTF-8)."""
    try:
        return json.loads(text, parse_float=number_from_text, parse_constant=reject_constant)
    except json.JSONDecodeError:
        raise
    except ValueError:  # maybe an integer past the digit limit: read the integers one by one
        try:
            return json.loads(
                text, parse_float=number_from_text, parse_int=int_or_decimal, parse_constant=reject_constant
            )
        except RecursionError:
            pass
    except RecursionError:
        pass
    # nested deeper than the C parser recurses: level by level
    return deepjson.parse(text if isinstance(text, str) else text.decode("utf-8"))


def loads_exact(line: bytes | str) -> Any:
    """Parse one JSON document; numbers that a double cannot hold exactly become ``Decimal``/``int``.

    Every failure is a ``ValueError`` (bad JSON, bad UTF-8).
    """
    raw = line.encode() if isinstance(line, str) else line
    if _MAYBE_INEXACT.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            if raw.count(b"[") + raw.count(b"{") <= ORJSON_MAX_DEPTH:
                raise
            # maybe nested deeper than orjson reads: the exact parser takes any depth
    return loads_decimal(raw)


class JsonFileError(ProtocolInputError):
    """A JSON input file is missing, unreadable or not JSON (reads as "<file> <problem>")."""

    def __str__(self) -> str:
        return f"{self.where} {self.problem}"


def read_json_file(path: str | Path, what: str, exact: bool = True) -> Any:
    """A JSON document from a file; any problem is a :class:`ProtocolInputError` naming the file
    and what is wrong, never the file's content.

    Integers are always exact; with ``exact`` non-integer numbers keep every digit too (Decimal).
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise JsonFileError(f"{what} file {path}", "does not exist") from None
    except IsADirectoryError:
        raise JsonFileError(f"{what} file {path}", "is a directory") from None
    except OSError as exc:
        raise JsonFileError(f"{what} file {path}", f"cannot be read ({exc.strerror})") from None
    try:
        if exact:
            return loads_exact(raw)
        return json.loads(raw, parse_constant=reject_constant)
    except UnicodeDecodeError:
        raise JsonFileError(f"{what} file {path}", "is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # the parsers' messages give a position, not content
        raise JsonFileError(f"{what} file {path}", f"is not valid JSON: {exc}") from None


def needs_exact_parse(line: bytes) -> bool:
    return _MAYBE_INEXACT.search(line) is not None
