"""The ``data`` of buffered records as the Arrow columns of a typed frame, decoded in C.

:func:`RowDecoder.arrays` reads a batch of records' ``data`` (the raw JSON slices
:mod:`dbkit.destination.records` keeps) straight into Arrow buffers (``_rows.c``, compiled when
dbkit is installed; without it, or with ``DBKIT_ROW_DECODER=python``, this module decodes
nothing and the batch builder uses msgspec as before). The columns have the canonical form of a
``columns`` frame (:mod:`dbkit.protocol.arrow`): int64 for integers, bool for booleans, a string's
value for the string-like types, the exact token for numbers and JSON values, NULL for a JSON
null or an absent field. So the batch builder converts them with the code that converts typed
frames (:meth:`~dbkit.destination.typed.TypedDecoder.arrow_columns`), which gives the batch the
records would give.

The decoder takes a batch only when every record is in that form; any other value (a string
where an integer belongs, an integer past int64, a lone surrogate escape, invalid UTF-8, a key
with an escape, a field given twice) makes it return None, and the batch is decoded the way
that decides what such values become (msgspec, then the general path).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dbkit.db.types import AirbyteType
from dbkit.protocol import COLUMN_TYPES, TOKEN_TYPES

try:
    import dbkit.destination._rows as _rows
except ImportError:  # built without a C compiler
    _rows = None  # type: ignore[assignment]

_ARROW = {"int64": (b"i", pa.int64()), "bool": (b"b", pa.bool_())}


def _kind(airbyte_type: AirbyteType) -> tuple[bytes, pa.DataType]:
    """The C decoder's code and the Arrow type of a field's column: a typed frame's column
    (:data:`~dbkit.protocol.COLUMN_TYPES`), a string column holding the value or, for
    :data:`~dbkit.protocol.TOKEN_TYPES`, the exact token."""
    column = COLUMN_TYPES[airbyte_type.value]
    if column in _ARROW:
        return _ARROW[column]
    return (b"t" if airbyte_type.value in TOKEN_TYPES else b"s"), pa.string()


def built() -> bool:
    """True when the C decoder was built (dbkit installed where a C compiler was)."""
    return _rows is not None


def available() -> bool:
    """True when the C decoder was built and is not turned off (``DBKIT_ROW_DECODER=python``)."""
    return _rows is not None and os.environ.get("DBKIT_ROW_DECODER") != "python"


class RowDecoder:
    """The decoder of one stream's columns: (JSON field name, Airbyte type) pairs."""

    def __init__(self, fields: Sequence[tuple[str, AirbyteType]]) -> None:
        self.names = [name.encode("utf-8", "surrogatepass") for name, _ in fields]
        kinds = [_kind(t) for _, t in fields]
        self.kinds = b"".join(k for k, _ in kinds)
        self.types = [t for _, t in kinds]
        # a name the C decoder cannot match as written (an escape would be needed) or given twice
        distinct = len(set(self.names)) == len(self.names)
        self.usable = available() and distinct and all(_plain(n) for n in self.names)

    def arrays(self, datas: Sequence[Any]) -> list[pa.Array] | None:
        """One Arrow array per field of the records' ``data`` (buffers of JSON text), or None
        when some record is not in the canonical form (see the module doc)."""
        if not self.usable or not datas:
            return None
        buffers = _rows.decode(datas, self.names, self.kinds)
        if buffers is None:
            return None
        n = len(datas)
        out: list[pa.Array] = []
        for (nulls, validity, values, data), arrow_type in zip(buffers, self.types, strict=True):
            parts = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(values)]
            if data is not None:
                parts.append(pa.py_buffer(data))
            out.append(pa.Array.from_buffers(arrow_type, n, parts, null_count=nulls))
        return out


def _plain(name: bytes) -> bool:
    """Whether a key spelled ``name`` in JSON needs no escape (and is valid UTF-8)."""
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(b in b'"\\' or b < 0x20 for b in name)


def single_values(array: pa.Array) -> bool | None:
    """Whether each non-null value of a string array is exactly one JSON value (no white space
    around it, strings of valid text without a lone surrogate escape, nesting within 10,000
    levels), checked in C; None when the C decoder is not there."""
    if not available() or not pa.types.is_string(array.type):
        return None
    if len(array) == 0:  # its buffers may be empty, or absent
        return True
    validity, offsets, data = array.buffers()
    if data is None:  # every value empty or null
        data = pa.py_buffer(b"")
    return _rows.tokens(validity if array.null_count else None, offsets, data, array.offset, len(array))


def uuid_text(random: bytes) -> bytes | None:
    """The canonical text of the version-4 UUIDs made of each 16 of ``random``'s bytes (36
    characters each, no separator), formatted in C; None when the C module is not there."""
    make = getattr(_rows, "uuid_text", None) if built() else None  # None: an older build
    if make is None:
        return None
    text: bytes = make(random)
    return text
