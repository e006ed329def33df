"""Binlog events, parsed from the bytes of the replication protocol (MySQL 5.6+ and MariaDB 10+):
only what change data capture needs; every other event is an :class:`Other` with its header.

Row images are decoded later (:mod:`source_mysql.cdc.values`) against the table's columns: a
:class:`Rows` event keeps its body bytes and the present-column bitmaps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# event types
QUERY = 2
STOP = 3
ROTATE = 4
FORMAT_DESCRIPTION = 15
XID = 16
TABLE_MAP = 19
WRITE_V1, UPDATE_V1, DELETE_V1 = 23, 24, 25
HEARTBEAT = 27
WRITE_V2, UPDATE_V2, DELETE_V2 = 30, 31, 32
MYSQL_GTID = 33
MYSQL_ANONYMOUS_GTID = 34
MARIADB_ANNOTATE = 160
MARIADB_GTID = 162
MARIADB_GTID_LIST = 163
MARIADB_COMPRESSED_ROWS = frozenset({169, 170, 171, 172, 173, 174})
MARIADB_COMPRESSED_QUERY = 165

ROW_KINDS = {
    WRITE_V1: "insert",
    UPDATE_V1: "update",
    DELETE_V1: "delete",
    WRITE_V2: "insert",
    UPDATE_V2: "update",
    DELETE_V2: "delete",
}

HEADER = 19
_FL_STANDALONE = 1


class BinlogError(Exception):
    """The binlog stream holds something this reader cannot read exactly."""


class Cursor:
    """Reads little-endian integers, length-encoded values and strings from a buffer."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        start = self.pos
        end = start + n
        if end > len(self.buf):
            raise BinlogError(f"event truncated: wanted {n} bytes at {start} of {len(self.buf)}")
        self.pos = end
        return self.buf[start:end]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def lenenc(self) -> int:
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.uint(2)
        if first == 0xFD:
            return self.uint(3)
        if first == 0xFE:
            return self.uint(8)
        raise BinlogError(f"bad length-encoded integer prefix {first:#x}")

    def remaining(self) -> int:
        return len(self.buf) - self.pos


@dataclass(frozen=True, slots=True)
class Header:
    timestamp: int
    type: int
    server_id: int
    size: int
    next_pos: int
    flags: int


@dataclass(frozen=True, slots=True)
class Other:
    header: Header


@dataclass(frozen=True, slots=True)
class Rotate:
    header: Header
    file: str
    pos: int


@dataclass(frozen=True, slots=True)
class FormatDescription:
    header: Header
    server_version: str
    checksum: bool


@dataclass(frozen=True, slots=True)
class Query:
    header: Header
    schema: str
    query: str


@dataclass(frozen=True, slots=True)
class Xid:
    header: Header


@dataclass(frozen=True, slots=True)
class Gtid:
    """A transaction's GTID: MariaDB ``domain-server-seq`` or MySQL ``uuid:n``; ``standalone``:
    a statement that is its own transaction (DDL), with no XID or COMMIT after it."""

    header: Header
    text: str
    domain: int | None
    standalone: bool


@dataclass(frozen=True, slots=True)
class GtidList:
    """MariaDB's GTID state at the start of a binlog file: ``domain -> (server, seq)``."""

    header: Header
    gtids: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class TableMap:
    header: Header
    table_id: int
    schema: str
    table: str
    types: bytes
    metadata: tuple[int, ...]
    names: tuple[str, ...] | None
    """Column names, when the server logs them (``binlog_row_metadata = FULL``)."""


@dataclass(frozen=True, slots=True)
class Rows:
    header: Header
    kind: str  # insert, update, delete
    table_id: int
    columns: int
    present: bytes
    present_after: bytes | None
    body: bytes
    start: int


Event = Other | Rotate | FormatDescription | Query | Xid | Gtid | GtidList | TableMap | Rows


def parse_header(buf: bytes) -> Header:
    if len(buf) < HEADER:
        raise BinlogError(f"event shorter than its header ({len(buf)} bytes)")
    timestamp, type_, server_id, size, next_pos, flags = struct.unpack_from("<IBIIIH", buf, 0)
    return Header(timestamp, type_, server_id, size, next_pos, flags)


def _metadata(types: bytes, raw: bytes) -> tuple[int, ...]:
    """Per column metadata of a table map (0 for types without any), as one integer each; for
    STRING, ENUM and SET ``real_type << 16 | length``."""
    out: list[int] = []
    cur = Cursor(raw)
    for t in types:
        if t in (4, 5, 252, 255, 245, 17, 18, 19, 249, 250, 251):  # one byte
            out.append(cur.uint(1))
        elif t in (15, 253, 16):  # VARCHAR, VAR_STRING: max length; BIT: bits, bytes
            out.append(cur.uint(2))
        elif t == 246:  # NEWDECIMAL: precision, scale
            precision, scale = cur.uint(1), cur.uint(1)
            out.append(precision << 8 | scale)
        elif t in (254, 247, 248):  # STRING (CHAR, BINARY, ENUM, SET)
            b0, b1 = cur.uint(1), cur.uint(1)
            if (b0 & 0x30) != 0x30:
                length = b1 | (((b0 & 0x30) ^ 0x30) << 4)
                real = b0 | 0x30
            else:
                length = b1
                real = b0
            out.append(real << 16 | length)
        else:
            out.append(0)
    return tuple(out)


def _names(cur: Cursor, end: int) -> tuple[str, ...] | None:
    """The COLUMN_NAME field of a table map's optional metadata (MySQL 8, MariaDB 10.5+)."""
    while cur.pos < end:
        kind = cur.uint(1)
        length = cur.lenenc()
        value = cur.take(length)
        if kind == 4:
            inner = Cursor(value)
            names: list[str] = []
            while inner.remaining():
                names.append(inner.take(inner.lenenc()).decode("utf-8"))
            return tuple(names)
    return None


def parse_event(buf: bytes, checksum: bool) -> Event:
    """One event (``buf`` without the packet's OK byte). ``checksum``: its last 4 bytes are a CRC32."""
    header = parse_header(buf)
    end = len(buf) - (4 if checksum and header.type != FORMAT_DESCRIPTION else 0)
    t = header.type
    cur = Cursor(buf, HEADER)
    if t == ROTATE:
        pos = cur.uint(8)
        # the first (fake) rotate of a dump may come before the server knows of our checksum
        name = buf[cur.pos : end]
        if checksum and not name.isascii():
            name = buf[cur.pos : len(buf)]
        return Rotate(header, name.decode("utf-8", "replace").rstrip("\x00"), pos)
    if t == FORMAT_DESCRIPTION:
        cur.uint(2)  # binlog version
        version = cur.take(50).split(b"\x00", 1)[0].decode("ascii", "replace")
        cur.uint(4)  # creation time
        header_length = cur.uint(1)
        if header_length != HEADER:
            raise BinlogError(f"binlog event header length {header_length} (expected {HEADER})")
        # post-header lengths, then (5.6.1+) the checksum algorithm and the checksum
        alg = buf[len(buf) - 5]
        return FormatDescription(header, version, alg == 1)
    if t in ROW_KINDS:
        table_id = cur.uint(6)
        cur.uint(2)  # flags
        if t >= WRITE_V2:
            extra = cur.uint(2)
            cur.take(extra - 2)
        columns = cur.lenenc()
        width = (columns + 7) // 8
        present = cur.take(width)
        after = cur.take(width) if ROW_KINDS[t] == "update" else None
        return Rows(header, ROW_KINDS[t], table_id, columns, present, after, buf[:end], cur.pos)
    if t == TABLE_MAP:
        table_id = cur.uint(6)
        cur.uint(2)
        schema = cur.take(cur.uint(1)).decode("utf-8")
        cur.take(1)
        table = cur.take(cur.uint(1)).decode("utf-8")
        cur.take(1)
        count = cur.lenenc()
        types = cur.take(count)
        meta = cur.take(cur.lenenc())
        cur.take((count + 7) // 8)  # nullability
        names = _names(cur, end) if cur.pos < end else None
        return TableMap(header, table_id, schema, table, types, _metadata(types, meta), names)
    if t == QUERY:
        cur.uint(4)  # thread
        cur.uint(4)  # exec time
        schema_length = cur.uint(1)
        cur.uint(2)  # error code
        status_length = cur.uint(2)
        cur.take(status_length)
        schema = cur.take(schema_length).decode("utf-8", "replace")
        cur.take(1)
        return Query(header, schema, buf[cur.pos : end].decode("utf-8", "replace"))
    if t == XID:
        return Xid(header)
    if t == MARIADB_GTID:
        seq = cur.uint(8)
        domain = cur.uint(4)
        flags = cur.uint(1)
        return Gtid(header, f"{domain}-{header.server_id}-{seq}", domain, bool(flags & _FL_STANDALONE))
    if t == MYSQL_GTID:
        cur.uint(1)
        sid = cur.take(16).hex()
        gno = cur.uint(8)
        uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
        return Gtid(header, f"{uuid}:{gno}", None, False)
    if t == MARIADB_GTID_LIST:
        count = cur.uint(4) & 0x0FFFFFFF
        gtids = tuple((cur.uint(4), cur.uint(4), cur.uint(8)) for _ in range(count))
        return GtidList(header, gtids)
    if t in MARIADB_COMPRESSED_ROWS or t == MARIADB_COMPRESSED_QUERY:
        raise BinlogError(
            "the binlog holds compressed events (log_bin_compress = ON): change data capture "
            "needs log_bin_compress = OFF"
        )
    return Other(header)
