"""Decoded pgoutput messages assembled into row changes with JSON-ready values.

:class:`ChangeAssembler` takes the stream's messages in order (:meth:`ChangeAssembler.feed`) and
returns at most one event per message:

- :class:`RowChange` for an Insert, Update or Delete: the row as a dict of JSON-ready values,
  converted by the SAME handlers as snapshot reads (:mod:`source_postgres.types`, built from the
  Relation message's type OIDs through :class:`source_postgres.catalog.TypeResolver`), so a value
  is identical whichever path brought it;
- :class:`TablesTruncated` for a Truncate;
- :class:`TransactionCommitted` for a Commit (its ``end_lsn`` is where a read resumes after it);
- :class:`RelationChanged` when a Relation message describes a table anew with other columns
  (ALTER TABLE between transactions: added, dropped, retyped columns).

Unchanged TOAST values (``'u'`` in an Update's new tuple) are taken from the old tuple the server
sends under ``REPLICA IDENTITY FULL`` (it is detoasted: the exact stored value). Under another
replica identity the server sends no copy of the value, and the assembler raises a ConfigError
naming the table and the fix (``ALTER TABLE ... REPLICA IDENTITY FULL``): never a placeholder or
a NULL. :func:`toast_identity_problems` finds such tables before a read starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from dbkit import ConfigError
from dbkit.db import Unrepresentable
from dbkit.protocol import change
from source_postgres.catalog import TypeResolver, TypeRow
from source_postgres.cdc.lsn import format_lsn
from source_postgres.cdc.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
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
)
from source_postgres.types import OTHER, PgReadHandler

TypeSource = Callable[[Sequence[int]], Mapping[int, TypeRow]]
"""Looks up ``pg_type`` rows for type OIDs (and what they are built of), e.g.
``lambda oids: source_postgres.catalog.type_rows(conn, oids)`` on a regular connection."""

Changes = list[dict[str, Any]]

REASON = "SOURCE_SERIALIZATION_ERROR"


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
    its transaction's.
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
    stream, in order, from its start: Relation messages come once per table and session."""

    def __init__(self, types: TypeSource) -> None:
        self._types = types
        self._type_rows: dict[int, TypeRow] = {}
        self._resolver = TypeResolver(self._type_rows)
        self._tables: dict[int, TableShape] = {}
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
            table = self._table(message.relation_oid, lsn)
            data, changes = self._convert(table, message.new, None, lsn)
            self._rows += 1
            return RowChange(
                "insert", table, data, None, changes, lsn, self._commit_lsn, self._commit_time, self._xid
            )
        if isinstance(message, Update):
            table = self._table(message.relation_oid, lsn)
            data, changes = self._convert(
                table, message.new, message.old if message.old_kind == "O" else None, lsn
            )
            before = None
            if message.old is not None:
                before, before_changes = self._convert(
                    table, message.old, None, lsn, sparse=message.old_kind == "K"
                )
                changes.extend(c for c in before_changes if c not in changes)
            self._rows += 1
            return RowChange(
                "update", table, data, before, changes, lsn, self._commit_lsn, self._commit_time, self._xid
            )
        if isinstance(message, Delete):
            table = self._table(message.relation_oid, lsn)
            data, changes = self._convert(table, message.old, None, lsn, sparse=message.old_kind == "K")
            self._rows += 1
            return RowChange(
                "delete", table, data, None, changes, lsn, self._commit_lsn, self._commit_time, self._xid
            )
        if isinstance(message, Begin):
            self._xid, self._commit_lsn, self._commit_time, self._rows = (
                message.xid,
                message.final_lsn,
                message.commit_time,
                0,
            )
            self.origin = None
            return None
        if isinstance(message, Commit):
            done = TransactionCommitted(
                self._xid, message.commit_lsn, message.end_lsn, message.commit_time, self._rows
            )
            self._rows = 0
            return done
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
        if previous is not None and (previous.columns != table.columns or previous.name != table.name):
            return RelationChanged(table, previous)
        return None

    # -- values --------------------------------------------------------------------------------------

    def _convert(
        self,
        table: TableShape,
        values: TupleData,
        old_row: TupleData | None,
        lsn: int,
        *,
        sparse: bool = False,
    ) -> tuple[dict[str, Any], Changes]:
        """The tuple's JSON-ready values by column name; ``sparse``: a key-only old tuple, whose
        NULLs are the columns the server did not send (left out)."""
        if len(values) != len(table.columns):
            raise PgOutputError(
                f"a tuple of {len(values)} values for {table.qualified} ({len(table.columns)} columns) "
                f"at LSN {format_lsn(lsn)}"
            )
        if UNCHANGED_TOAST in values:
            values = self._fill_toast(table, values, old_row, lsn)
        data: dict[str, Any] = {}
        changes: Changes = []
        for column, handler, value in zip(table.columns, table.handlers, values, strict=True):
            if value is None:
                if not sparse or column.is_key:
                    data[column.name] = None
                continue
            if not isinstance(value, str):
                raise PgOutputError(
                    f"a binary value for {table.qualified}.{column.name} at LSN {format_lsn(lsn)}: "
                    "start replication without binary 'true'"
                )
            convert = handler.convert
            if convert is None:
                data[column.name] = value
                continue
            try:
                data[column.name] = convert(value)
            except Unrepresentable as exc:
                data[column.name] = exc.replacement
                changes.append(change(column.name, exc.reason))
            except (TypeError, ValueError, OverflowError):
                data[column.name] = None
                changes.append(change(column.name, REASON))
        return data, changes

    def _fill_toast(
        self, table: TableShape, values: TupleData, old_row: TupleData | None, lsn: int
    ) -> TupleData:
        missing = [c.name for c, v in zip(table.columns, values, strict=True) if v is UNCHANGED_TOAST]
        if old_row is None or any(
            old_row[i] is UNCHANGED_TOAST for i, v in enumerate(values) if v is UNCHANGED_TOAST
        ):
            identity = _IDENTITY.get(table.replica_identity, "?")
            raise ConfigError(
                f"table {table.qualified} has REPLICA IDENTITY {identity}: an UPDATE at LSN "
                f"{format_lsn(lsn)} left the large value(s) of {', '.join(missing)} unchanged and the "
                f"server did not send them. Run ALTER TABLE {_quote(table.namespace)}.{_quote(table.name)} "
                "REPLICA IDENTITY FULL, then resync the stream"
            )
        return tuple(old_row[i] if v is UNCHANGED_TOAST else v for i, v in enumerate(values))


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
