"""Row images of binlog row events -> each value in the text form a SELECT of the column gives
(the form the type handlers' ``convert`` takes, :mod:`source_mysql.types`), so a change's record
is byte for byte the record a snapshot makes of the same row.

What a row event carries is the storage form: integers without their signedness, DECIMAL in
MySQL's binary decimal format, FLOAT as the 4-byte single, temporal values packed (the
fractional-seconds ``*2`` formats and the old ones), strings in the column's character set
(CHAR without its trailing spaces, BINARY without its trailing zero bytes), ENUM as the member's
index, SET as a bit mask, BIT as big-endian bytes. The table's columns (``information_schema``:
signedness, character set, members, length) complete what the table map does not say.

Zero and invalid dates, and TIME values that are no time of day, come out as the text a SELECT
gives (``0000-00-00``, ``-12:00:00.5``); the handlers make them null with a change, as on the
snapshot path.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from source_mysql.cdc.events import BinlogError, Cursor, Rows, TableMap

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)

CHARSETS = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "ascii": "ascii",
    "latin1": "mysql-latin1",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "koi8r": "koi8-r",
    "koi8u": "koi8-u",
    "latin2": "iso8859-2",
    "latin5": "iso8859-9",
    "latin7": "iso8859-13",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "sjis": "shift_jis",
    "cp932": "cp932",
    "ujis": "euc-jp",
    "eucjpms": "euc-jp",
    "gbk": "gbk",
    "gb2312": "gb2312",
    "gb18030": "gb18030",
    "big5": "big5",
    "euckr": "euc-kr",
    "tis620": "tis-620",
}
"""MySQL character sets -> Python codecs (``None``/binary: bytes as they are)."""


def _mysql_latin1(data: bytes) -> str:
    """MySQL's latin1 is cp1252 whose five undefined bytes map to the C1 controls."""
    return "".join(
        chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes((b,)).decode("cp1252") for b in data
    )


def decode_text(data: bytes, codec: str | None) -> Any:
    if codec is None:
        return data
    if codec == "mysql-latin1":
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return _mysql_latin1(data)
    return data.decode(codec, "surrogateescape")


def double_text(value: float) -> str:
    """A double as MariaDB's SELECT writes it: the shortest digits that read back to the value,
    in fixed notation unless the decimal point is more than 14 places left of the first digit, or
    more than 15 right of it with no fraction (``1e15``, ``1.2345678901234568e16``, ``1e-15``)."""
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e15:  # Python's repr is fixed notation here, with the same digits
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    sign, digits_t, exp = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digits_t))
    stripped = digits.rstrip("0")
    exp = int(exp) + len(digits) - len(stripped)
    digits = stripped
    n = len(digits)
    decpt = n + exp
    minus = "-" if sign else ""
    if decpt < -14 or (decpt > 15 and decpt >= n):
        mantissa = digits[0] + ("." + digits[1:] if n > 1 else "")
        return f"{minus}{mantissa}e{decpt - 1}"
    if decpt <= 0:
        return f"{minus}0.{'0' * -decpt}{digits}"
    if decpt >= n:
        return f"{minus}{digits}{'0' * (decpt - n)}"
    return f"{minus}{digits[:decpt]}.{digits[decpt:]}"


def decimal_text(raw: bytes, precision: int, scale: int) -> tuple[str, int]:
    """MySQL's binary DECIMAL -> its text (``-1.50``) and the number of bytes it took."""
    intg = precision - scale
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    size = intg0 * 4 + _DIG2BYTES[intg0x] + frac0 * 4 + _DIG2BYTES[frac0x]
    data = bytearray(raw[:size])
    if len(data) < size:
        raise BinlogError("DECIMAL value truncated")
    negative = not data[0] & 0x80
    data[0] ^= 0x80
    if negative:
        data = bytearray(b ^ 0xFF for b in data)
    pos = 0
    parts: list[str] = []
    if intg0x:
        k = _DIG2BYTES[intg0x]
        parts.append(str(int.from_bytes(data[pos : pos + k], "big")))
        pos += k
    for _ in range(intg0):
        parts.append(f"{int.from_bytes(data[pos : pos + 4], 'big'):09d}")
        pos += 4
    integer = "".join(parts).lstrip("0") or "0"
    fraction: list[str] = []
    for _ in range(frac0):
        fraction.append(f"{int.from_bytes(data[pos : pos + 4], 'big'):09d}")
        pos += 4
    if frac0x:
        k = _DIG2BYTES[frac0x]
        fraction.append(f"{int.from_bytes(data[pos : pos + k], 'big'):0{frac0x}d}")
        pos += k
    text = integer + ("." + "".join(fraction) if scale else "")
    if negative and text.strip("0.") != "":
        text = "-" + text
    return text, size


def decimal_decoder(precision: int, scale: int) -> Decoder:
    """:func:`decimal_text` with the layout worked out once: the value read as one big-endian
    integer, its 9-digit groups taken off from the right."""
    intg0, intg0x = divmod(precision - scale, 9)
    frac0, frac0x = divmod(scale, 9)
    # (bytes, digits) of each group, least significant first
    fraction = [(_DIG2BYTES[frac0x], frac0x)] if frac0x else []
    fraction += [(4, 9)] * frac0
    integer = [(4, 9)] * intg0 + ([(_DIG2BYTES[intg0x], intg0x)] if intg0x else [])
    size = sum(b for b, _ in fraction) + sum(b for b, _ in integer)
    bits = size * 8
    sign_bit = 1 << (bits - 1)
    full = (1 << bits) - 1

    def decode(c: Cursor) -> str:
        value = int.from_bytes(c.take(size), "big")
        negative = not value & sign_bit
        value ^= sign_bit
        if negative:
            value ^= full
        parts: list[str] = []
        for nbytes, digits in fraction:
            group = value & ((1 << (nbytes * 8)) - 1)
            value >>= nbytes * 8
            parts.append(f"{group:0{digits}d}")
        frac_text = "".join(reversed(parts))
        whole = 0
        groups: list[int] = []
        for nbytes, _digits in integer:
            groups.append(value & ((1 << (nbytes * 8)) - 1))
            value >>= nbytes * 8
        for group in reversed(groups):
            whole = whole * 1_000_000_000 + group
        text = str(whole) + ("." + frac_text if scale else "")
        if negative and (whole or frac_text.strip("0")):
            text = "-" + text
        return text

    return decode


def _fraction(cur: Cursor, fsp: int) -> tuple[int, str]:
    """The fractional seconds of a ``*2`` temporal value: (microseconds, digits as SELECT shows)."""
    if fsp <= 0:
        return 0, ""
    size = (fsp + 1) // 2
    value = int.from_bytes(cur.take(size), "big")
    micro = value * (10 ** (6 - 2 * size))
    return micro, "." + f"{micro:06d}"[:fsp]


def _datetime2(cur: Cursor, fsp: int) -> str:
    packed = int.from_bytes(cur.take(5), "big") - 0x8000000000
    _, frac = _fraction(cur, fsp)
    ymd = packed >> 17
    ym = ymd >> 5
    hms = packed & 0x1FFFF
    year, month = divmod(ym, 13)
    day = ymd & 31
    return f"{year:04d}-{month:02d}-{day:02d} {hms >> 12:02d}:{(hms >> 6) & 63:02d}:{hms & 63:02d}{frac}"


def _timestamp2(cur: Cursor, fsp: int) -> str:
    seconds = int.from_bytes(cur.take(4), "big")
    micro, frac = _fraction(cur, fsp)
    if seconds == 0 and micro == 0:
        return "0000-00-00 00:00:00" + (("." + "0" * fsp) if fsp else "")
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + frac


def _time2(cur: Cursor, fsp: int) -> str:
    if fsp == 0:
        packed = (int.from_bytes(cur.take(3), "big") - 0x800000) << 24
    elif fsp <= 2:
        intpart = int.from_bytes(cur.take(3), "big") - 0x800000
        frac = cur.uint(1)
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x100
        packed = (intpart << 24) + frac * 10000
    elif fsp <= 4:
        intpart = int.from_bytes(cur.take(3), "big") - 0x800000
        frac = int.from_bytes(cur.take(2), "big")
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x10000
        packed = (intpart << 24) + frac * 100
    else:
        packed = int.from_bytes(cur.take(6), "big") - 0x800000000000
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    hms, micro = packed >> 24, packed % (1 << 24)
    hour = (hms >> 12) % (1 << 10)
    text = f"{sign}{hour:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}"
    return text + ("." + f"{micro:06d}"[:fsp] if fsp else "")


def _old_time(cur: Cursor) -> str:
    value = int.from_bytes(cur.take(3), "little", signed=True)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 10000:02d}:{value // 100 % 100:02d}:{value % 100:02d}"


def _old_datetime(cur: Cursor) -> str:
    value = cur.uint(8)
    date, time = divmod(value, 1000000)
    return (
        f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d} "
        f"{time // 10000:02d}:{time // 100 % 100:02d}:{time % 100:02d}"
    )


_ENUM_MEMBER = re.compile(r"'((?:[^']|'')*)'")


def members(column_type: str) -> tuple[str, ...]:
    """The members of ``enum('a','b')`` / ``set('a','b')`` (quotes doubled inside)."""
    start = column_type.find("(")
    return tuple(m.replace("''", "'") for m in _ENUM_MEMBER.findall(column_type[start:]))


@dataclass(frozen=True)
class ColumnSpec:
    """What decoding a column needs beyond its table-map type: from ``information_schema``."""

    name: str
    data_type: str
    column_type: str
    charset: str | None
    octet_length: int | None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def codec(self) -> str | None:
        if self.charset is None or self.charset == "binary":
            return None
        codec = CHARSETS.get(self.charset)
        if codec is None:
            try:
                codecs.lookup(self.charset)
            except LookupError:
                raise BinlogError(
                    f"column {self.name!r}: character set {self.charset!r} is not one change data "
                    "capture can decode"
                ) from None
            return self.charset
        return codec


Decoder = Callable[[Cursor], Any]


def _uuid(raw: bytes) -> str:
    h = raw.ljust(16, b"\x00").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _inet6(raw: bytes) -> str:
    address = ipaddress.IPv6Address(raw.ljust(16, b"\x00"))
    mapped = address.ipv4_mapped
    if mapped is not None:
        return f"::ffff:{mapped}"
    return address.compressed


def _inet4(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw.ljust(4, b"\x00")))


_SPECIAL: dict[str, Callable[[bytes], str]] = {"uuid": _uuid, "inet6": _inet6, "inet4": _inet4}
"""MariaDB's UUID, INET6 and INET4: fixed binary in the binlog, text in a SELECT."""

_INT_TYPES = {1: 1, 2: 2, 9: 3, 3: 4, 8: 8}


def decoder(type_code: int, meta: int, spec: ColumnSpec) -> Decoder:
    """How one column's value is read from a row image (the cursor at its first byte)."""
    t = type_code
    if spec.data_type in _SPECIAL and t in (254, 15, 253):
        prefix = 1 if (meta & 0xFFFF if t == 254 else meta) < 256 else 2
        render = _SPECIAL[spec.data_type]
        return lambda c: render(c.take(c.uint(prefix)))
    if t in _INT_TYPES:
        width = _INT_TYPES[t]
        signed = not spec.unsigned
        if spec.data_type == "year":
            raise BinlogError(f"column {spec.name!r}: YEAR logged as an integer")
        return lambda c: str(int.from_bytes(c.take(width), "little", signed=signed))
    if t == 13:  # YEAR
        return lambda c: "0000" if (v := c.uint(1)) == 0 else str(1900 + v)
    if t == 4:  # FLOAT: the single, as the double it converts to
        return lambda c: double_text(struct.unpack("<f", c.take(4))[0])
    if t == 5:
        return lambda c: double_text(struct.unpack("<d", c.take(8))[0])
    if t == 246:
        return decimal_decoder(meta >> 8, meta & 0xFF)
    if t in (10, 14):  # DATE
        return lambda c: f"{(v := c.uint(3)) >> 9:04d}-{(v >> 5) & 15:02d}-{v & 31:02d}"
    if t == 18:
        return lambda c: _datetime2(c, meta)
    if t == 17:
        return lambda c: _timestamp2(c, meta)
    if t == 19:
        return lambda c: _time2(c, meta)
    if t == 12:
        return _old_datetime
    if t == 7:
        return lambda c: (
            "0000-00-00 00:00:00"
            if (s := c.uint(4)) == 0
            else datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S")
        )
    if t == 11:
        return _old_time
    if t == 16:  # BIT: bits, bytes
        size = (meta >> 8) + (1 if meta & 0xFF else 0)
        return lambda c: c.take(size)
    codec = spec.codec
    if t in (15, 253):  # VARCHAR / VARBINARY
        prefix = 1 if meta < 256 else 2
        return lambda c: decode_text(c.take(c.uint(prefix)), codec)
    if t in (254, 247, 248):
        real, length = meta >> 16, meta & 0xFFFF
        if real == 247:  # ENUM
            names = members(spec.column_type)

            def enum(c: Cursor) -> str:
                index = c.uint(length)
                return names[index - 1] if 0 < index <= len(names) else ""

            return enum
        if real == 248:  # SET
            names = members(spec.column_type)

            def set_(c: Cursor) -> str:
                mask = c.uint(length)
                return ",".join(n for i, n in enumerate(names) if mask >> i & 1)

            return set_
        prefix = 1 if length < 256 else 2
        if codec is None:  # BINARY(n): zero-padded as stored
            size = spec.octet_length or 0
            return lambda c: c.take(c.uint(prefix)).ljust(size, b"\x00")

        def char(c: Cursor) -> Any:
            text = decode_text(c.take(c.uint(prefix)), codec)
            return text.rstrip(" ")

        return char
    if t in (249, 250, 251, 252, 255):  # BLOB and TEXT types, GEOMETRY
        return lambda c: decode_text(c.take(c.uint(meta)), codec if t != 255 else None)
    if t == 245:
        raise BinlogError(
            f"column {spec.name!r}: MySQL's binary JSON in the binlog is not decoded by this version"
        )
    raise BinlogError(f"column {spec.name!r}: binlog type {t} is not one change data capture reads")


# table-map type codes each information_schema DATA_TYPE may be logged as
_COMPATIBLE: dict[str, frozenset[int]] = {
    "tinyint": frozenset({1}),
    "smallint": frozenset({2}),
    "mediumint": frozenset({9}),
    "int": frozenset({3}),
    "integer": frozenset({3}),
    "bigint": frozenset({8}),
    "float": frozenset({4}),
    "double": frozenset({5}),
    "decimal": frozenset({246}),
    "year": frozenset({13}),
    "date": frozenset({10, 14}),
    "datetime": frozenset({12, 18}),
    "timestamp": frozenset({7, 17}),
    "time": frozenset({11, 19}),
    "bit": frozenset({16}),
    "char": frozenset({254}),
    "binary": frozenset({254}),
    "varchar": frozenset({15, 253}),
    "varbinary": frozenset({15, 253}),
    "enum": frozenset({254, 247}),
    "set": frozenset({254, 248}),
    "tinytext": frozenset({252, 249}),
    "text": frozenset({252}),
    "mediumtext": frozenset({252, 250}),
    "longtext": frozenset({252, 251}),
    "tinyblob": frozenset({252, 249}),
    "blob": frozenset({252}),
    "mediumblob": frozenset({252, 250}),
    "longblob": frozenset({252, 251}),
    "json": frozenset({245, 252}),
}


def compatible(spec: ColumnSpec, type_code: int) -> bool:
    """Whether a table map's type can be the column's (False: the table changed since the event)."""
    allowed = _COMPATIBLE.get(spec.data_type.lower())
    if allowed is None:  # geometry, uuid, inet ...: the storage family is enough
        return type_code in (255, 252, 254, 15, 253)
    return type_code in allowed


class RowDecoder:
    """Decodes the row images of one table map: column names and decoders fixed once."""

    def __init__(self, table_map: TableMap, specs: Sequence[ColumnSpec]) -> None:
        self.table_map = table_map
        self.names = [s.name for s in specs]
        self.decoders = [
            decoder(t, m, s) for t, m, s in zip(table_map.types, table_map.metadata, specs, strict=True)
        ]

    def _present(self, present: bytes) -> list[tuple[int, str, Decoder]]:
        """(null-bitmap index, name, decoder) of each column a row image holds."""
        names, decoders = self.names, self.decoders
        columns = [i for i in range(len(names)) if present[i >> 3] >> (i & 7) & 1]
        return [(j, names[i], decoders[i]) for j, i in enumerate(columns)]

    @staticmethod
    def _image(cur: Cursor, columns: list[tuple[int, str, Decoder]]) -> dict[str, Any]:
        nulls = cur.take((len(columns) + 7) // 8)
        image: dict[str, Any] = {}
        for j, name, decode in columns:
            image[name] = None if nulls[j >> 3] >> (j & 7) & 1 else decode(cur)
        return image

    def rows(self, event: Rows) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
        """Each row change as (before image or None, image): an insert's image is the row, a
        delete's its before image (no before), an update's the row after it."""
        if event.columns != len(self.names):
            raise BinlogError(
                f"row event of {self.table_map.schema}.{self.table_map.table} has {event.columns} "
                f"columns, its table map {len(self.names)}"
            )
        cur = Cursor(event.body, event.start)
        out: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        end = len(event.body)
        columns = self._present(event.present)
        if event.kind == "update":
            assert event.present_after is not None
            after = self._present(event.present_after)
            while cur.pos < end:
                before = self._image(cur, columns)
                out.append((before, self._image(cur, after)))
        else:
            while cur.pos < end:
                out.append((None, self._image(cur, columns)))
        return out
