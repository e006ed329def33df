"""Decoded pgoutput messages assembled into row changes with JSON-ready values.

:class:`ChangeAssembler` takes the stream's messages in order (:meth:`ChangeAssembler.feed`) and
returns at most one event per message:

- :class:`RowChange` for an Insert, Update or Delete: the row as a dict of JSON-ready values,
  converted by the SAME handlers as snapshot reads (:mod:`source_postgres.types`, built from the
  Relation message's type OIDs through :class:`source_postgres.catalog.TypeResolver`), so a value
  is identical whichever path brought it; the read path takes most rows as a
  :class:`RenderedRow` instead (:meth:`ChangeAssembler.render_row`: the same row as the JSON
  bytes ``orjson.dumps`` makes of that dict, rendered straight from the message);
- :class:`TablesTruncated` for a Truncate;
- :class:`TransactionCommitted` for a Commit (its ``end_lsn`` is where a read resumes after it);
- :class:`RelationChanged` when a Relation message describes a table anew with other columns
  (ALTER TABLE between transactions: added, dropped, retyped columns).

Unchanged TOAST values (``'u'`` in an Update's new tuple) are taken from the old tuple the server
sends under ``REPLICA IDENTITY FULL`` (it is detoasted: the exact stored value). Under another
replica identity the server sends no copy of the value: the RowChange leaves those columns out of
``data`` and names them in ``unresolved`` (with the key's text in ``key_text``), and the reader
fills them in (:mod:`source_postgres.cdc.toast`): never a placeholder or a NULL.
:func:`toast_identity_problems` finds the tables where this can happen.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from dbkit.db import Unrepresentable
from dbkit.protocol import change
from source_postgres.catalog import TypeResolver, TypeRow
from source_postgres.cdc.converters import Converter, converter
from source_postgres.cdc.lsn import format_lsn
from source_postgres.cdc.pgoutput import (
    BEGIN_BODY,
    COMMIT_BODY,
    DECODE_ERRORS,
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    PgOutputDecoder,
    PgOutputError,
    PgOutputMessage,
    Relation,
    RelationColumn,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TupleData,
    Type,
    Update,
    decode_failure,
    trailing_bytes,
)
from source_postgres.cdc.render import Renderer, compile_renderer
from source_postgres.types import OTHER, PgReadHandler

TypeSource = Callable[[Sequence[int]], Mapping[int, TypeRow]]
"""Looks up ``pg_type`` rows for type OIDs (and what they are built of), e.g.
``lambda oids: source_postgres.catalog.type_rows(conn, oids)`` on a regular connection."""

Changes = list[dict[str, Any]]

Adapter = Callable[["TableShape"], Mapping[str, Callable[[Any], Any]] | None]
"""Called once per Relation message: for some columns of the table as described, a function
applied to each converted value (e.g. the reader's coercion of values written before an ALTER
COLUMN ... TYPE to the configured catalog's type); raising ValueError nulls the value with a
``meta.changes`` entry."""

REASON = "SOURCE_SERIALIZATION_ERROR"

_Plan = tuple[tuple[str, Converter | None, bool], ...]
"""Per column of a table: its name, its converter (None: the text is the value), part of the key."""

_BEGIN, _COMMIT = BEGIN_BODY, COMMIT_BODY
_BEGIN_END = 1 + _BEGIN.size
_COMMIT_END = 1 + _COMMIT.size
_HOT = frozenset(b"BCIUD")
_OPS: dict[int, Literal["insert", "update", "delete"]] = {0x49: "insert", 0x55: "update", 0x44: "delete"}
_KEY, _OLD, _NEW = ord("K"), ord("O"), ord("N")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_new_tuple = tuple.__new__  # a NamedTuple from a tuple, without the NamedTuple's Python __new__


@dataclass(frozen=True)
class TableShape:
    """A table as the stream's latest Relation message described it, with a handler per column."""

    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...]
    handlers: tuple[PgReadHandler, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def key(self) -> tuple[str, ...]:
        """The replica identity's columns (the primary key under the default identity)."""
        return tuple(c.name for c in self.columns if c.is_key)

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


class RowChange(NamedTuple):
    """One row inserted, updated or deleted.

    ``data``: the row after the change (insert, update) or the before image the server sent
    (delete: the key columns, or every column under REPLICA IDENTITY FULL; the others are absent).
    ``before``: an update's old key / old row when the server sent one, else None. ``changes``:
    the Airbyte ``meta.changes`` of values nulled for lack of a JSON form. ``lsn``: this change's
    WAL position; ``commit_lsn``, ``commit_time`` (microseconds since 2000-01-01 UTC), ``xid``:
    its transaction's. ``unresolved``: an update's columns whose unchanged TOASTed value the
    server did not send (absent from ``data``); ``key_text``: then the key columns' values in
    the server's text form, by column name (to look the row up), else None.
    """

    op: Literal["insert", "update", "delete"]
    table: TableShape
    data: dict[str, Any]
    before: dict[str, Any] | None
    changes: Changes
    lsn: int
    commit_lsn: int
    commit_time: int
    xid: int
    unresolved: tuple[str, ...] = ()
    key_text: dict[str, str | None] | None = None


class RenderedRow(NamedTuple):
    """An Insert, Update or Delete whose row came straight from the message bytes as its record
    ``data`` JSON (:mod:`source_postgres.cdc.render`): ``orjson.dumps`` of the ``data`` the
    RowChange of the same message has. No ``before``, no ``meta.changes``, nothing unresolved."""

    op: Literal["insert", "update", "delete"]
    table: TableShape
    data: bytes
    lsn: int
    commit_lsn: int
    commit_time: int
    xid: int


class TablesTruncated(NamedTuple):
    tables: tuple[TableShape, ...]
    cascade: bool
    restart_identity: bool
    lsn: int
    commit_lsn: int
    commit_time: int
    xid: int


class TransactionCommitted(NamedTuple):
    """A transaction's end: every change of it came before. Resume after it from ``end_lsn``."""

    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: int
    rows: int


class RelationChanged(NamedTuple):
    """A table described with other columns than before (``previous`` is None the first time a
    table is seen in this stream: that is no event, so it is never None here)."""

    table: TableShape
    previous: TableShape


ChangeEvent = RowChange | TablesTruncated | TransactionCommitted | RelationChanged


class ChangeAssembler:
    """Turns one stream's pgoutput messages into :data:`ChangeEvent` s. Feed every message of the
    stream, in order, from its start: Relation messages come once per table and session.

    :meth:`feed` takes decoded messages; :meth:`feed_payload` takes the payloads themselves and
    gives the same events faster; :meth:`render_row` gives an Insert's, Update's or Delete's row
    as its JSON straight from the bytes (the read path's way) for the tables ``render`` accepts
    (called once per Relation message; ``adapt``: see :data:`Adapter`)."""

    def __init__(
        self,
        types: TypeSource,
        adapt: Adapter | None = None,
        render: Callable[[TableShape], bool] | None = None,
    ) -> None:
        self._types = types
        self._adapt = adapt
        self._render = render
        self._renderable: set[int] = set()
        self._renderers: dict[int, tuple[TableShape, Renderer, Renderer]] = {}
        self._fast: dict[bytes, tuple[Literal["insert", "update", "delete"], TableShape, Renderer]] = {}
        self._type_rows: dict[int, TypeRow] = {}
        self._resolver = TypeResolver(self._type_rows)
        self._tables: dict[int, TableShape] = {}
        self._plans: dict[int, tuple[TableShape, _Plan]] = {}
        self._xid = 0
        self._commit_lsn = 0
        self._commit_time = 0
        self._rows = 0
        self.origin: str | None = None
        """The replication origin of the current transaction (None: made on this server)."""

    @property
    def tables(self) -> Mapping[int, TableShape]:
        """The tables described so far, by relation OID."""
        return self._tables

    def feed(self, message: PgOutputMessage, lsn: int) -> ChangeEvent | None:
        """The event ``message`` (at WAL position ``lsn``) makes, or None (Begin, Origin, Type, a
        Relation without a column change, a non-transactional logical message)."""
        if isinstance(message, Insert):
            return self._row_change("insert", message.relation_oid, None, None, message.new, lsn)
        if isinstance(message, Update):
            old_kind = None if message.old_kind is None else ord(message.old_kind)
            return self._row_change("update", message.relation_oid, old_kind, message.old, message.new, lsn)
        if isinstance(message, Delete):
            return self._row_change(
                "delete", message.relation_oid, ord(message.old_kind), None, message.old, lsn
            )
        if isinstance(message, Begin):
            self._begin(message.xid, message.final_lsn, message.commit_time)
            return None
        if isinstance(message, Commit):
            return self._commit(message.commit_lsn, message.end_lsn, message.commit_time)
        if isinstance(message, Relation):
            return self._relation(message)
        if isinstance(message, Truncate):
            tables = tuple(self._table(oid, lsn) for oid in message.relation_oids)
            self._rows += 1
            return TablesTruncated(
                tables,
                message.cascade,
                message.restart_identity,
                lsn,
                self._commit_lsn,
                self._commit_time,
                self._xid,
            )
        if isinstance(message, Type):
            self._forget_type(message.oid)
            return None
        if isinstance(message, Origin):
            self.origin = message.name
            return None
        if isinstance(message, LogicalMessage):
            return None
        if isinstance(message, StreamStart | StreamStop | StreamCommit | StreamAbort):
            raise PgOutputError(
                f"a streamed transaction ({type(message).__name__}) at LSN {format_lsn(lsn)}: "
                "streaming is not supported; start replication without streaming 'true'"
            )
        raise PgOutputError(f"no change assembly for {type(message).__name__} at LSN {format_lsn(lsn)}")

    def feed_payload(
        self, decoder: PgOutputDecoder, payload: bytes | memoryview, lsn: int
    ) -> ChangeEvent | None:
        """``self.feed(decoder.decode(payload, lsn), lsn)``: the same event and the same errors.

        Begin, Commit, Insert, Update and Delete outside a streamed block (nearly every message of
        a stream) are assembled straight from the bytes, without a message object in between;
        every other message goes through ``decoder.decode``."""
        buf = payload if type(payload) is bytes else bytes(payload)
        kind = buf[0] if buf else 0
        if kind not in _HOT or decoder.in_stream:
            return self.feed(decoder.decode(buf, lsn), lsn)
        try:
            if kind == 0x42:  # 'B'
                final_lsn, commit_time, xid = _BEGIN.unpack_from(buf, 1)
                end = _BEGIN_END
            elif kind == 0x43:  # 'C'
                _flags, commit_lsn, end_lsn, commit_time = _COMMIT.unpack_from(buf, 1)
                end = _COMMIT_END
            else:
                oid, old_kind, old, new, end = decoder.row(kind, buf, 1)
        except DECODE_ERRORS as exc:
            raise decode_failure(kind, lsn, exc) from exc
        if end != len(buf):
            raise trailing_bytes(kind, lsn, len(buf) - end)
        if kind == 0x42:
            self._begin(xid, final_lsn, commit_time)
            return None
        if kind == 0x43:
            return self._commit(commit_lsn, end_lsn, commit_time)
        return self._row_change(_OPS[kind], oid, old_kind, old, new, lsn)

    def render_row(
        self, decoder: PgOutputDecoder, payload: bytes, lsn: int, dicts_for: Container[int] = ()
    ) -> RowChange | RenderedRow:
        """The change an Insert, Update or Delete (``payload``: the whole message as bytes) makes:
        a :class:`RenderedRow` (its data already JSON) when its table was accepted by the
        ``render`` callback and is not in ``dicts_for``, the tuple is an Insert's, an Update's
        without an old tuple or a Delete's, and every value takes the renderer's rules (nearly
        every change); else ``feed_payload``'s RowChange (the same data as a dict, or its error).
        """
        if not decoder.in_stream:
            # by the message's first eight bytes (type, relation OID, tuple marker, column count)
            fast = self._fast.get(payload[:8])
            if fast is not None and fast[1].oid not in dicts_for:
                try:
                    data = fast[2](payload)
                except Exception:  # the general path gives the exact value or error
                    return self._general_row(decoder, payload, lsn)
                self._rows += 1
                return _new_tuple(
                    RenderedRow,
                    (fast[0], fast[1], data, lsn, self._commit_lsn, self._commit_time, self._xid),
                )
        entry = None
        if not decoder.in_stream:
            try:
                (oid,) = _U32.unpack_from(payload, 1)
                marker = payload[5]
            except DECODE_ERRORS:
                pass
            else:
                if oid not in dicts_for:
                    entry = self._renderers.get(oid) or self._renderer(oid, decoder)
        if entry is None:
            return self._general_row(decoder, payload, lsn)
        table, full, sparse = entry
        kind = payload[0]
        if len(payload) < 8 or _U16.unpack_from(payload, 6)[0] != len(table.columns):
            return self._general_row(decoder, payload, lsn)
        if marker == _NEW and kind != 0x44:
            render = full
        elif kind == 0x44 and marker in (_KEY, _OLD):
            render = sparse if marker == _KEY else full
        else:
            return self._general_row(decoder, payload, lsn)
        try:
            data = render(payload)
        except Exception:  # the general path gives the exact value or error
            return self._general_row(decoder, payload, lsn)
        self._rows += 1
        return _new_tuple(
            RenderedRow,
            (_OPS[kind], table, data, lsn, self._commit_lsn, self._commit_time, self._xid),
        )

    def _general_row(self, decoder: PgOutputDecoder, payload: bytes, lsn: int) -> RowChange:
        event = self.feed_payload(decoder, payload, lsn)
        if type(event) is not RowChange:
            raise PgOutputError(f"expected an Insert, Update or Delete at LSN {format_lsn(lsn)}")
        return event

    def _renderer(self, oid: int, decoder: PgOutputDecoder) -> tuple[TableShape, Renderer, Renderer] | None:
        """The renderers of a table the ``render`` callback accepted (compiled on first use)."""
        shape = self._plans.get(oid)
        if shape is None or oid not in self._renderable or not decoder.utf8:
            return None
        table, plan = shape
        entry = (table, compile_renderer(plan, sparse=False), compile_renderer(plan, sparse=True))
        self._renderers[oid] = entry
        head, count = _U32.pack(oid), _U16.pack(len(plan))
        full, sparse = entry[1], entry[2]
        for kind, marker, render in (
            (b"I", b"N", full),
            (b"U", b"N", full),
            (b"D", b"O", full),
            (b"D", b"K", sparse),
        ):
            self._fast[kind + head + marker + count] = (_OPS[kind[0]], table, render)
        return entry

    # -- transactions and rows -----------------------------------------------------------------------

    def _begin(self, xid: int, final_lsn: int, commit_time: int) -> None:
        self._xid = xid
        self._commit_lsn = final_lsn
        self._commit_time = commit_time
        self._rows = 0
        self.origin = None

    def _commit(self, commit_lsn: int, end_lsn: int, commit_time: int) -> TransactionCommitted:
        done = TransactionCommitted(self._xid, commit_lsn, end_lsn, commit_time, self._rows)
        self._rows = 0
        return done

    def _row_change(
        self,
        op: Literal["insert", "update", "delete"],
        oid: int,
        old_kind: int | None,
        old: TupleData | None,
        new: TupleData,
        lsn: int,
    ) -> RowChange:
        """An Insert (``new``), Update (``old`` of ``old_kind`` 'K'/'O' or None, ``new``) or Delete
        (its old tuple as ``new``, of ``old_kind``) of relation ``oid`` as a RowChange."""
        shape = self._plans.get(oid)
        if shape is None:
            raise PgOutputError(
                f"a change at LSN {format_lsn(lsn)} names relation {oid}, which no Relation message described"
            )
        table, plan = shape
        unresolved: tuple[str, ...] = ()
        key_text = None
        if op == "delete":
            data, changes = self._convert(table, plan, new, lsn, old_kind == _KEY)
        else:
            if UNCHANGED_TOAST in new:
                new = self._fill_toast(new, old if old_kind == _OLD else None)
                if UNCHANGED_TOAST in new:
                    unresolved = tuple(
                        c.name for c, v in zip(table.columns, new, strict=True) if v is UNCHANGED_TOAST
                    )
                    key_text = {
                        c.name: v if isinstance(v, str) else None
                        for c, v in zip(table.columns, new, strict=True)
                        if c.is_key
                    }
            data, changes = self._convert(table, plan, new, lsn, False)
        before = None
        if old is not None:
            before, before_changes = self._convert(table, plan, old, lsn, old_kind == _KEY)
            changes.extend(c for c in before_changes if c not in changes)
        self._rows += 1
        return RowChange(
            op,
            table,
            data,
            before,
            changes,
            lsn,
            self._commit_lsn,
            self._commit_time,
            self._xid,
            unresolved,
            key_text,
        )

    # -- relations and types -------------------------------------------------------------------------

    def _table(self, oid: int, lsn: int) -> TableShape:
        table = self._tables.get(oid)
        if table is None:
            raise PgOutputError(
                f"a change at LSN {format_lsn(lsn)} names relation {oid}, which no Relation message described"
            )
        return table

    def _forget_type(self, oid: int) -> None:
        self._type_rows.pop(oid, None)
        self._resolver = TypeResolver(self._type_rows)

    def _relation(self, message: Relation) -> RelationChanged | None:
        missing = [c.type_oid for c in message.columns if c.type_oid not in self._type_rows]
        if missing:
            self._type_rows.update(self._types(missing))
            self._resolver = TypeResolver(self._type_rows)
        handlers = tuple(self._resolver.handler(c.type_oid, c.typmod) for c in message.columns)
        table = TableShape(
            message.oid,
            message.namespace,
            message.name,
            message.replica_identity,
            message.columns,
            tuple(h if isinstance(h, PgReadHandler) else OTHER for h in handlers),
        )
        previous = self._tables.get(message.oid)
        self._tables[message.oid] = table
        fix = self._adapt(table) if self._adapt is not None else None
        self._renderers.pop(message.oid, None)
        self._fast = {k: v for k, v in self._fast.items() if v[1].oid != message.oid}
        self._renderable.discard(message.oid)
        if fix is None and self._render is not None and self._render(table):
            self._renderable.add(message.oid)
        self._plans[message.oid] = (
            table,
            tuple(
                (c.name, _then(converter(h), fix.get(c.name) if fix else None), c.is_key)
                for c, h in zip(table.columns, table.handlers, strict=True)
            ),
        )
        if previous is not None and (previous.columns != table.columns or previous.name != table.name):
            return RelationChanged(table, previous)
        return None

    # -- values --------------------------------------------------------------------------------------

    def _convert(
        self,
        table: TableShape,
        plan: _Plan,
        values: TupleData,
        lsn: int,
        sparse: bool,
    ) -> tuple[dict[str, Any], Changes]:
        """The tuple's JSON-ready values by column name; ``sparse``: a key-only old tuple, whose
        NULLs are the columns the server did not send (left out). An unchanged TOAST value still
        in ``values`` (no old row had it) is left out."""
        if len(values) != len(plan):
            raise PgOutputError(
                f"a tuple of {len(values)} values for {table.qualified} ({len(plan)} columns) "
                f"at LSN {format_lsn(lsn)}"
            )
        data: dict[str, Any] = {}
        changes: Changes = []
        for (name, convert, is_key), value in zip(plan, values):  # noqa: B905 - lengths checked
            if value is None:
                if not sparse or is_key:
                    data[name] = None
                continue
            if value.__class__ is not str:
                if value is UNCHANGED_TOAST:
                    continue  # the RowChange names it in ``unresolved``
                raise PgOutputError(
                    f"a binary value for {table.qualified}.{name} at LSN {format_lsn(lsn)}: "
                    "start replication without binary 'true'"
                )
            if convert is None:
                data[name] = value
                continue
            try:
                data[name] = convert(value)
            except Unrepresentable as exc:
                data[name] = exc.replacement
                changes.append(change(name, exc.reason))
            except (TypeError, ValueError, OverflowError):
                data[name] = None
                changes.append(change(name, REASON))
        return data, changes

    @staticmethod
    def _fill_toast(values: TupleData, old_row: TupleData | None) -> TupleData:
        """``values`` with each unchanged TOAST value taken from ``old_row`` where it has one
        (REPLICA IDENTITY FULL sends the old row detoasted); the others stay UNCHANGED_TOAST."""
        if old_row is None:
            return values
        return tuple(
            old_row[i] if v is UNCHANGED_TOAST and i < len(old_row) else v for i, v in enumerate(values)
        )


def _then(convert: Converter | None, after: Callable[[Any], Any] | None) -> Converter | None:
    """``convert`` followed by ``after`` (an :data:`Adapter`'s fix of one column)."""
    if after is None:
        return convert
    if convert is None:
        return after
    return lambda text: after(convert(text))


_IDENTITY = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


TOAST_PROBLEMS = sa.text(
    """
    SELECT n.nspname AS schema, c.relname AS name, c.relreplident::text AS identity,
           array_agg(a.attname::text ORDER BY a.attnum) AS columns
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type AS t ON t.oid = a.atttypid
    WHERE c.oid = ANY(CAST(:oids AS oid[])) AND c.relreplident <> 'f' AND a.attstorage <> 'p'
    GROUP BY n.nspname, c.relname, c.relreplident
    ORDER BY 1, 2
    """
)


def toast_identity_problems(conn: sa.Connection, table_oids: Sequence[int]) -> list[str]:
    """For the tables ``table_oids``: one line per table whose updates can leave a TOASTed value
    out of the stream (a column that can be stored out of line, and a replica identity other
    than FULL), naming the columns and the fix. Empty when every table is safe."""
    if not table_oids:
        return []
    return [
        f"{row['schema']}.{row['name']} (REPLICA IDENTITY {_IDENTITY.get(row['identity'], '?')}; "
        f"columns that can be TOASTed: {', '.join(row['columns'])}): ALTER TABLE "
        f"{_quote(row['schema'])}.{_quote(row['name'])} REPLICA IDENTITY FULL"
        for row in conn.execute(TOAST_PROBLEMS, {"oids": list(table_oids)}).mappings()
    ]
