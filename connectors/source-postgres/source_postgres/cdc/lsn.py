"""Log sequence numbers: PostgreSQL's ``X/Y`` text form <-> the 64-bit integer the wire carries."""

from __future__ import annotations

INVALID_LSN = 0
"""``0/0``: no position (the server's InvalidXLogRecPtr)."""


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` -> its integer; ValueError for anything that is not an LSN."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not a PostgreSQL LSN: {text!r} (expected the form 16/B374D848)")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(f"not a PostgreSQL LSN: {text!r} (expected the form 16/B374D848)") from None


def format_lsn(lsn: int) -> str:
    """The integer ``lsn`` in PostgreSQL's text form (``16/B374D848``)."""
    if not 0 <= lsn < 1 << 64:
        raise ValueError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
