"""RECORD messages as the consumer buffers them: decoded in C by msgspec, ``data`` kept as raw JSON.

:class:`RawRecord` is the one record type from the consumer's door on (buffers, loaders, batch
builders, raw tables): a line the fast path reads is one already, and a RECORD the general path
had to parse (an odd shape, text no database stores) is made one by :func:`as_raw_record`.

:func:`decode_envelope` reads one input line into an :class:`Envelope`. For a RECORD it checks
the message's shape (stream, namespace, ``data`` present) and the JSON syntax of the whole line,
without building a Python object per value: ``data`` stays a :class:`msgspec.Raw` slice of the
line (so a buffered record costs about its size in bytes), and the batch builder later decodes
a whole batch of them with the stream's typed decoder (:mod:`dbkit.destination.typed`). Lines it
cannot read this way (other message types, odd shapes, malformed JSON) are handled by the
consumer's general path, which decides what is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from dbkit.protocol import deepjson
from dbkit.protocol.jsonio import loads_decimal

DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
"""What decoding may raise for a line or value that does not have the expected form (or that is
nested deeper than msgspec recurses, near Python's recursion limit: the general path reads it)."""


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


def as_raw_record(record: Mapping[str, Any]) -> RawRecord:
    """The ``record`` object of a RECORD message the general path parsed (``data`` an object), as
    a :class:`RawRecord`: ``data`` and ``meta`` written back to JSON text that
    :func:`loads_lenient` reads as the same values (every digit, lone surrogates kept as escapes).
    Called once per such record, at the consumer's door; never on the fast path."""
    meta = record.get("meta")
    return RawRecord(
        stream=record.get("stream"),  # type: ignore[arg-type]
        data=msgspec.Raw(_exact_json(record.get("data")).encode("ascii")),
        namespace=record.get("namespace"),
        emitted_at=record.get("emitted_at"),
        meta=NO_META if meta is None else msgspec.Raw(_exact_json(meta).encode("ascii")),
    )


def _exact_json(value: Any) -> str:
    """ASCII JSON text of a parsed JSON value of any depth: integers of any size and ``Decimal``
    with every digit, strings with ``\\u`` escapes (lone surrogates included)."""
    return deepjson.dumps(value, ascii_only=True).decode("ascii")


def loads_lenient(raw: bytes | msgspec.Raw) -> Any:
    """A JSON document exactly (``Decimal`` for non-integers, ``int`` for integers, ``Decimal`` for
    one past Python's digit limit), accepting text no database stores: a lone surrogate escape
    (``"\\ud800"``) or invalid UTF-8 inside a string becomes a lone surrogate in the Python
    string, which casting repairs and records."""
    return loads_decimal(bytes(raw).decode("utf-8", "surrogateescape"))


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
