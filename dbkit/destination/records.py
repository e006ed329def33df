"""RECORD messages as the consumer buffers them: decoded in C by msgspec, ``data`` kept as raw JSON.

:func:`decode_envelope` reads one input line into an :class:`Envelope`. For a RECORD it checks
the message's shape (stream, namespace, ``data`` present) and the JSON syntax of the whole line,
without building a Python object per value: ``data`` stays a :class:`msgspec.Raw` slice of the
line (so a buffered record costs about its size in bytes), and the batch builder later decodes
a whole batch of them with the stream's typed decoder (:mod:`dbkit.destination.typed`). Lines it
cannot read this way (other message types, odd shapes, malformed JSON) are handled by the
consumer's general path, which decides what is an error.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
"""What decoding may raise for a line or value that does not have the expected form."""


NO_META = msgspec.Raw(b"null")
"""``meta`` of a record without one (msgspec cannot decode ``Raw | None``: an object would fail)."""


class RawRecord(msgspec.Struct, gc=False):
    """The ``record`` of a RECORD message, its ``data`` (and ``meta``) as raw JSON."""

    stream: str
    data: msgspec.Raw
    namespace: str | None = None
    emitted_at: Any = None
    meta: msgspec.Raw = NO_META


class Envelope(msgspec.Struct, gc=False):
    type: str
    record: RawRecord | None = None


decode_envelope = msgspec.json.Decoder(Envelope).decode


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_lenient(raw: bytes | msgspec.Raw) -> Any:
    """A JSON document exactly (``Decimal`` for non-integers, ``int`` of any size), accepting text
    no database stores: a lone surrogate escape (``"\\ud800"``) or invalid UTF-8 inside a string
    becomes a lone surrogate in the Python string, which casting repairs and records."""
    text = bytes(raw).decode("utf-8", "surrogateescape")
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def source_changes(meta: msgspec.Raw | None) -> list[Any]:
    """The ``meta.changes`` a source put on a record (raw form), or []."""
    if meta is None or meta == NO_META:
        return []
    try:
        value = loads_lenient(meta)
    except ValueError:
        return []
    changes = value.get("changes") if isinstance(value, dict) else None
    return changes if isinstance(changes, list) else []
