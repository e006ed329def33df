"""The pgoutput logical replication protocol, versions 1 and 2, decoded in pure Python.

:meth:`PgOutputDecoder.decode` turns one ``XLogData`` payload into one message tuple: Begin,
Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate, Message, and protocol 2's
StreamStart, StreamStop, StreamCommit, StreamAbort (inside a streamed block every data message
carries the transaction id, which the decoder tracks). Tuple values are kept as the server sent
them: ``None`` for NULL, :data:`UNCHANGED_TOAST` for an unchanged TOASTed value the server did not
send, ``str`` for the text form, ``bytes`` for binary form (``binary 'true'``).

Nothing is dropped: a message kind, a tuple value kind or a length the decoder does not know
raises :class:`PgOutputError` naming the message type byte and the LSN.
"""

from __future__ import annotations

import codecs
import struct
from typing import Final, NamedTuple

from dbkit import SystemFailure
from source_postgres.cdc.lsn import format_lsn


class _Unchanged:
    """The type of :data:`UNCHANGED_TOAST`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = _Unchanged()
"""A TOASTed value the UPDATE did not change, which the server did not send (tuple kind ``'u'``)."""

TupleValue = str | bytes | _Unchanged | None
TupleData = tuple[TupleValue, ...]


class PgOutputError(SystemFailure):
    """A pgoutput message the decoder cannot decode (its type byte and LSN are in the message)."""


# -- messages -----------------------------------------------------------------------------------------


class Begin(NamedTuple):
    final_lsn: int  # the commit's LSN
    commit_time: int  # microseconds since 2000-01-01 UTC
    xid: int


class Commit(NamedTuple):
    flags: int
    commit_lsn: int
    end_lsn: int  # the position to resume after this transaction
    commit_time: int


class Origin(NamedTuple):
    commit_lsn: int
    name: str


class RelationColumn(NamedTuple):
    is_key: bool  # part of the replica identity
    name: str
    type_oid: int
    typmod: int


class Relation(NamedTuple):
    xid: int | None
    oid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[RelationColumn, ...]


class Type(NamedTuple):
    xid: int | None
    oid: int
    namespace: str
    name: str


class Insert(NamedTuple):
    xid: int | None
    relation_oid: int
    new: TupleData


class Update(NamedTuple):
    xid: int | None
    relation_oid: int
    old_kind: str | None  # 'K' the old key, 'O' the whole old row (REPLICA IDENTITY FULL), None
    old: TupleData | None
    new: TupleData


class Delete(NamedTuple):
    xid: int | None
    relation_oid: int
    old_kind: str  # 'K' or 'O'
    old: TupleData


class Truncate(NamedTuple):
    xid: int | None
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


class LogicalMessage(NamedTuple):
    xid: int | None
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


class StreamStart(NamedTuple):
    xid: int
    first_segment: bool


class StreamStop(NamedTuple):
    pass


class StreamCommit(NamedTuple):
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int


class StreamAbort(NamedTuple):
    xid: int
    subxid: int


PgOutputMessage = (
    Begin
    | Commit
    | Origin
    | Relation
    | Type
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

# -- decoding ----------------------------------------------------------------------------------------

_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")
BEGIN_BODY: Final = _BEGIN
"""A Begin message after its type byte: final LSN, commit time, transaction id."""
COMMIT_BODY: Final = _COMMIT
"""A Commit message after its type byte: flags, commit LSN, end LSN, commit time."""
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_COLUMN_TAIL = struct.Struct(">Ii")
_TRUNCATE_HEAD = struct.Struct(">IB")
_STREAM_START = struct.Struct(">IB")
_STREAM_COMMIT = struct.Struct(">IBQQq")
_STREAM_ABORT = struct.Struct(">II")

_ASCII_COMPATIBLE = frozenset({"utf-8", "ascii", "iso8859-1"})  # ASCII bytes are the same characters
_T, _N, _U, _B = ord("t"), ord("n"), ord("u"), ord("b")
_NEW, _KEY, _OLD = ord("N"), ord("K"), ord("O")
# messages that carry a transaction id first when sent inside a streamed block
_STREAMABLE = frozenset(b"RYIUDTM")


class PgOutputDecoder:
    """Decodes pgoutput messages of one replication stream, in order (it tracks streamed blocks).

    ``proto_version`` is the one START_REPLICATION asked for (1 or 2); ``encoding`` the database's
    (text values and names are decoded with it). Not thread-safe; one decoder per stream.
    """

    def __init__(self, proto_version: int = 1, *, encoding: str = "utf-8") -> None:
        if proto_version not in (1, 2):
            raise ValueError(f"pgoutput protocol version {proto_version} is not supported (1 or 2)")
        self.proto_version = proto_version
        self.encoding = encoding
        self.ascii_compatible = codecs.lookup(encoding).name in _ASCII_COMPATIBLE
        """Whether ASCII bytes decode to the same characters in ``encoding``."""
        self.utf8 = codecs.lookup(encoding).name == "utf-8"
        """Whether text comes as UTF-8 (the bytes JSON writes for it)."""
        self.in_stream = False

    def decode(self, payload: bytes | memoryview, lsn: int) -> PgOutputMessage:
        """The message in ``payload`` (one XLogData's data, at WAL position ``lsn``)."""
        buf = payload if type(payload) is bytes else bytes(payload)
        if not buf:
            raise PgOutputError(f"empty pgoutput message at LSN {format_lsn(lsn)}")
        kind = buf[0]
        try:
            message, end = self._decode(kind, buf)
        except PgOutputError:
            raise
        except (struct.error, IndexError, ValueError, UnicodeDecodeError, _Unknown) as exc:
            raise decode_failure(kind, lsn, exc) from None if isinstance(exc, _Unknown) else exc
        if end != len(buf):
            raise trailing_bytes(kind, lsn, len(buf) - end)
        return message

    def row(
        self, kind: int, buf: bytes, pos: int
    ) -> tuple[int, int | None, TupleData | None, TupleData, int]:
        """The body of an Insert, Update or Delete (type byte ``kind``) from ``pos`` (after the
        type byte and, in a streamed block, the transaction id): ``(relation oid, old tuple kind
        byte or None, old tuple or None, new tuple, end)``; a Delete's old tuple comes as ``new``
        with its kind. On bad bytes it raises one of :data:`DECODE_ERRORS`, which
        :func:`decode_failure` turns into the PgOutputError :meth:`decode` raises."""
        (oid,) = _U32.unpack_from(buf, pos)
        marker = buf[pos + 4]
        if kind == 0x49:  # 'I'
            if marker != _NEW:
                raise _Unknown(f"expected 'N' before the new tuple, got {chr(marker)!r}")
            new, end = self._tuple(buf, pos + 5)
            return oid, None, None, new, end
        if kind == 0x55:  # 'U'
            old: TupleData | None = None
            old_kind: int | None = None
            pos += 4
            if marker in (_KEY, _OLD):
                old_kind = marker
                old, pos = self._tuple(buf, pos + 1)
                marker = buf[pos]
            if marker != _NEW:
                raise _Unknown(f"expected 'N' before the new tuple, got {chr(marker)!r}")
            new, end = self._tuple(buf, pos + 1)
            return oid, old_kind, old, new, end
        # 'D'
        if marker not in (_KEY, _OLD):
            raise _Unknown(f"expected 'K' or 'O' before the old tuple, got {chr(marker)!r}")
        old, end = self._tuple(buf, pos + 5)
        return oid, marker, None, old, end

    def _decode(self, kind: int, buf: bytes) -> tuple[PgOutputMessage, int]:
        pos = 1
        xid: int | None = None
        if self.in_stream and kind in _STREAMABLE:
            (xid,) = _U32.unpack_from(buf, pos)
            pos += 4
        if kind == 0x49:  # 'I'
            oid, _, _, new, pos = self.row(kind, buf, pos)
            return Insert(xid, oid, new), pos
        if kind == 0x55:  # 'U'
            oid, marker, old, new, pos = self.row(kind, buf, pos)
            return Update(xid, oid, None if marker is None else chr(marker), old, new), pos
        if kind == 0x44:  # 'D'
            oid, marker, _, old, pos = self.row(kind, buf, pos)
            return Delete(xid, oid, chr(marker or 0), old), pos
        if kind == 0x42:  # 'B'
            final_lsn, commit_time, txid = _BEGIN.unpack_from(buf, pos)
            return Begin(final_lsn, commit_time, txid), pos + _BEGIN.size
        if kind == 0x43:  # 'C'
            flags, commit_lsn, end_lsn, commit_time = _COMMIT.unpack_from(buf, pos)
            return Commit(flags, commit_lsn, end_lsn, commit_time), pos + _COMMIT.size
        if kind == 0x52:  # 'R'
            return self._relation(buf, pos, xid)
        if kind == 0x59:  # 'Y'
            (oid,) = _U32.unpack_from(buf, pos)
            namespace, pos = self._string(buf, pos + 4)
            name, pos = self._string(buf, pos)
            return Type(xid, oid, namespace, name), pos
        if kind == 0x54:  # 'T'
            count, options = _TRUNCATE_HEAD.unpack_from(buf, pos)
            pos += _TRUNCATE_HEAD.size
            oids = struct.unpack_from(f">{count}I", buf, pos)
            return Truncate(xid, tuple(oids), bool(options & 1), bool(options & 2)), pos + 4 * count
        if kind == 0x4F:  # 'O'
            (commit_lsn,) = _U64.unpack_from(buf, pos)
            name, pos = self._string(buf, pos + 8)
            return Origin(commit_lsn, name), pos
        if kind == 0x4D:  # 'M'
            flags = buf[pos]
            (message_lsn,) = _U64.unpack_from(buf, pos + 1)
            prefix, pos = self._string(buf, pos + 9)
            (size,) = _U32.unpack_from(buf, pos)
            pos += 4
            if pos + size > len(buf):
                raise _Unknown(f"content of {size} bytes runs past the message end")
            return LogicalMessage(
                xid, bool(flags & 1), message_lsn, prefix, buf[pos : pos + size]
            ), pos + size
        if self.proto_version >= 2:
            if kind == 0x53:  # 'S'
                txid, first = _STREAM_START.unpack_from(buf, pos)
                self.in_stream = True
                return StreamStart(txid, bool(first)), pos + _STREAM_START.size
            if kind == 0x45:  # 'E'
                self.in_stream = False
                return StreamStop(), pos
            if kind == 0x63:  # 'c'
                txid, flags, commit_lsn, end_lsn, commit_time = _STREAM_COMMIT.unpack_from(buf, pos)
                return StreamCommit(txid, flags, commit_lsn, end_lsn, commit_time), pos + _STREAM_COMMIT.size
            if kind == 0x41:  # 'A'
                txid, subxid = _STREAM_ABORT.unpack_from(buf, pos)
                return StreamAbort(txid, subxid), pos + _STREAM_ABORT.size
        raise _Unknown(f"unknown message type for pgoutput protocol {self.proto_version}")

    def _string(self, buf: bytes, pos: int) -> tuple[str, int]:
        end = buf.index(0, pos)
        return buf[pos:end].decode(self.encoding), end + 1

    def _relation(self, buf: bytes, pos: int, xid: int | None) -> tuple[Relation, int]:
        (oid,) = _U32.unpack_from(buf, pos)
        namespace, pos = self._string(buf, pos + 4)
        name, pos = self._string(buf, pos)
        identity = chr(buf[pos])
        (count,) = _U16.unpack_from(buf, pos + 1)
        pos += 3
        columns = []
        for _ in range(count):
            flags = buf[pos]
            column, pos = self._string(buf, pos + 1)
            type_oid, typmod = _COLUMN_TAIL.unpack_from(buf, pos)
            pos += _COLUMN_TAIL.size
            columns.append(RelationColumn(bool(flags & 1), column, type_oid, typmod))
        return Relation(xid, oid, namespace, name, identity, tuple(columns)), pos

    def _tuple(self, buf: bytes, pos: int) -> tuple[TupleData, int]:
        (count,) = _U16.unpack_from(buf, pos)
        pos += 2
        values: list[TupleValue] = []
        append = values.append
        unpack = _U32.unpack_from
        encoding = self.encoding
        for _ in range(count):
            kind = buf[pos]
            if kind == _T:
                (size,) = unpack(buf, pos + 1)
                start = pos + 5
                pos = start + size
                append(buf[start:pos].decode(encoding))
            elif kind == _N:
                append(None)
                pos += 1
            elif kind == _U:
                append(UNCHANGED_TOAST)
                pos += 1
            elif kind == _B:
                (size,) = unpack(buf, pos + 1)
                start = pos + 5
                pos = start + size
                append(buf[start:pos])
            else:
                raise _Unknown(f"unknown tuple value kind {chr(kind)!r} (0x{kind:02x})")
        if pos > len(buf):
            raise _Unknown("a tuple value runs past the message end")
        return tuple(values), pos


class _Unknown(Exception):
    """Internal: a byte the protocol does not allow where it was found."""


DECODE_ERRORS = (struct.error, IndexError, ValueError, UnicodeDecodeError, _Unknown)
"""What :meth:`PgOutputDecoder.row` raises on bytes it cannot decode."""


def decode_failure(kind: int, lsn: int, exc: BaseException) -> PgOutputError:
    """The PgOutputError for message type byte ``kind`` at ``lsn`` that failed with ``exc``."""
    return PgOutputError(
        f"cannot decode pgoutput message {chr(kind)!r} (0x{kind:02x}) at LSN {format_lsn(lsn)}: {exc}"
    )


def trailing_bytes(kind: int, lsn: int, count: int) -> PgOutputError:
    return PgOutputError(
        f"pgoutput message {chr(kind)!r} (0x{kind:02x}) at LSN {format_lsn(lsn)} has "
        f"{count} unexpected trailing byte(s)"
    )
