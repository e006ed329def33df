"""Unchanged TOAST values under a replica identity other than FULL, filled in by key.

An UPDATE that leaves a large (TOASTed, stored out of line) value unchanged writes no copy of it to
the WAL: pgoutput sends ``'u'`` and, unless the table has ``REPLICA IDENTITY FULL``, no old row
either. Airbyte's source writes a placeholder (``__debezium_unavailable_value``) over the real
value; dbkit fills the exact value in, and says so when it cannot.

The value of column ``c`` of row ``k`` at a change ``X`` (transaction ``x``) is found, in this
order, from:

1. **the batch**: the latest change to ``k`` before ``X`` in the same batch that carried ``c``
   (an insert, or an update that wrote it). No write of ``c`` came between, so it is ``X``'s value.
2. **the table now**, looked up by key when the batch is emitted. The value there is ``X``'s when
   nothing wrote ``c`` since ``X``: the row's current version was made by the last transaction
   the read saw touch ``k`` (``xmin`` equals its xid, so no later transaction touched the row),
   and no change to ``k`` after ``X`` in the batch wrote ``c`` or deleted the row. Exact.
3. Otherwise the row changed again after the read's window (or in a subtransaction, whose xid
   the stream does not carry): the record carries the row's **current** value of ``c``, a value
   the table really holds and which the later changes, read next, confirm or replace; a WARN
   line counts these records. If the row is gone, the value is NULL with a ``meta.changes``
   entry (``SOURCE_RETRIEVAL_ERROR``); the row's delete follows in the log.

``REPLICA IDENTITY FULL`` makes every such value exact from the log itself (at the cost of the
whole old row in the WAL for every update and delete): the WARN line says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dbkit.db import Unrepresentable
from dbkit.protocol import change
from source_postgres.cdc.changes import REASON, RowChange, TableShape
from source_postgres.cdc.converters import converter
from source_postgres.cdc.wire import quote_ident

RETRIEVAL = "SOURCE_RETRIEVAL_ERROR"
INT4 = 23
OID = 26
COLUMNS_NOW = "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped"
_CHUNK = 1000

Lookup = Callable[[str, Sequence[str | None], Sequence[int]], list[tuple[str | None, ...]]]
"""Runs one SQL query with ``$n`` parameters (text values, type OIDs) and returns its rows as
text, in the stream's text forms."""


@dataclass(eq=False)
class _Waiting:
    image: dict[str, Any]
    problems: list[dict[str, Any]]
    missing: tuple[str, ...]
    key_text: dict[str, str | None]
    written_after: set[str] = field(default_factory=set)


@dataclass(eq=False)
class _Track:
    """One row's changes in the current batch."""

    table: TableShape
    xid: int = 0
    known: dict[str, Any] = field(default_factory=dict)
    waiting: list[_Waiting] = field(default_factory=list)
    deleted_after: bool = False


class ToastFiller:
    """Fills unchanged TOAST values the stream did not carry (see the module doc). :meth:`note`
    every change of a table in :attr:`active` (and every change with ``unresolved`` columns), in
    log order, with the image the record will carry; :meth:`fill` before the batch is emitted."""

    def __init__(self, lookup: Lookup, log: Callable[[str, str], None]) -> None:
        self._lookup = lookup
        self._log = log
        self._tracks: dict[tuple[int, bytes], _Track] = {}
        self.active: set[int] = set()
        """The relation OIDs with a change waiting in this batch."""

    def note(self, row: RowChange, image: dict[str, Any], problems: list[dict[str, Any]]) -> None:
        table = row.table
        key = (table.oid, orjson.dumps([row.data.get(k) for k in table.key]))
        track = self._tracks.get(key)
        if row.before is not None and row.op == "update":
            old_key = (table.oid, orjson.dumps([row.before.get(k) for k in table.key]))
            if old_key != key and (old := self._tracks.get(old_key)) is not None:
                old.deleted_after = True  # the key changed: that row is gone
        if row.op == "delete":
            if track is not None:
                track.deleted_after = True
                track.known.clear()
                track.xid = row.xid
            return
        if track is None:
            if not row.unresolved:
                return
            track = self._tracks[key] = _Track(table)
            self.active.add(table.oid)
        if row.op == "insert":
            track.deleted_after = track.deleted_after or bool(track.waiting)
        written = [c for c in row.data if c not in row.unresolved]
        for waiting in track.waiting:
            waiting.written_after.update(written)
        if row.unresolved:
            missing = []
            for name in row.unresolved:
                if name in track.known and not track.deleted_after:
                    image[name] = track.known[name]  # 1. the batch: exact
                else:
                    missing.append(name)
            if missing:
                track.waiting.append(_Waiting(image, problems, tuple(missing), row.key_text or {}))
                for name in missing:
                    track.known.pop(name, None)
        for name in written:
            track.known[name] = row.data[name]
        track.xid = row.xid

    def fill(self) -> None:
        """Fills every waiting image (2. and 3. of the module doc), then forgets the batch."""
        if not self._tracks:
            return
        by_table: dict[int, list[_Track]] = {}
        for track in self._tracks.values():
            if track.waiting:
                by_table.setdefault(track.table.oid, []).append(track)
        self._tracks = {}
        self.active = set()
        for tracks in by_table.values():
            self._fill_table(tracks)

    def _fill_table(self, tracks: list[_Track]) -> None:
        table = tracks[-1].table
        columns = {c.name: i for i, c in enumerate(table.columns)}
        wanted = sorted({n for t in tracks for w in t.waiting for n in w.missing}, key=columns.__getitem__)
        key = list(table.key)
        present = {r[0] for r in self._lookup(COLUMNS_NOW, [str(table.oid)], [OID])}
        renamed = [n for n in wanted if n not in present]
        if renamed:  # dropped or renamed since the change (ALTER TABLE): its value is gone
            wanted = [n for n in wanted if n in present]
            self._log(
                "WARN",
                f"table {table.qualified}: unchanged TOASTed value(s) of column(s) "
                f"{', '.join(map(repr, renamed))} could not be looked up: the table no longer has "
                "them (dropped or renamed since the change); left out of the records",
            )
        found: dict[int, tuple[str | None, ...]] = {}
        if all(k in present for k in key):
            for start in range(0, len(tracks), _CHUNK):
                chunk = tracks[start : start + _CHUNK]
                found.update(self._rows(table, key, wanted, chunk, start))
        approximate = gone = 0
        for n, track in enumerate(tracks):
            row = found.get(n)
            for waiting in track.waiting:
                missing = [name for name in waiting.missing if name in present]
                if row is None:
                    gone += 1
                    for name in missing:
                        waiting.image[name] = None
                        waiting.problems.append(change(name, RETRIEVAL))
                    continue
                xmin, values = row[0], row[1:]
                exact = (
                    not track.deleted_after
                    and xmin == str(track.xid)
                    and not waiting.written_after.intersection(missing)
                )
                approximate += not exact
                for name in missing:
                    self._set(table, waiting, name, values[wanted.index(name)], columns[name])
        if approximate or gone:
            self._log(
                "WARN",
                f"table {table.qualified}: {approximate + gone} update(s) left a TOASTed value "
                "unchanged and the row changed again before it could be looked up "
                f"({approximate} carry the row's current value, {gone} NULL: the row is gone). "
                f"ALTER TABLE {quote_ident(table.namespace)}.{quote_ident(table.name)} REPLICA "
                "IDENTITY FULL makes every such value exact",
            )

    def _rows(
        self, table: TableShape, key: list[str], wanted: list[str], tracks: list[_Track], offset: int
    ) -> dict[int, tuple[str | None, ...]]:
        """The rows of ``tracks`` (by their index + ``offset``): xmin, then ``wanted``, as text."""
        types = {c.name: c.type_oid for c in table.columns}
        width = len(key) + 1
        values: list[str] = []
        params: list[str | None] = []
        oids: list[int] = []
        for n, track in enumerate(tracks):
            key_text = track.waiting[0].key_text
            first = len(params) + 1
            values.append("(" + ", ".join(f"${first + i}" for i in range(width)) + ")")
            params.append(str(n + offset))
            oids.append(INT4)
            for name in key:
                params.append(key_text.get(name))
                oids.append(types[name])
        names = ", ".join(quote_ident(k) for k in key)
        join = " AND ".join(f"t.{quote_ident(k)} = k.{quote_ident(k)}" for k in key)
        picked = "".join(f", t.{quote_ident(n)}" for n in wanted)  # text results: output functions
        sql = (
            f"SELECT k.n, t.xmin{picked} "
            f"FROM (VALUES {', '.join(values)}) AS k(n, {names}) "
            f"JOIN {quote_ident(table.namespace)}.{quote_ident(table.name)} AS t ON {join}"
        )
        return {int(r[0] or 0): r[1:] for r in self._lookup(sql, params, oids)}

    @staticmethod
    def _set(table: TableShape, waiting: _Waiting, name: str, text: str | None, index: int) -> None:
        if text is None:
            waiting.image[name] = None
            return
        convert = converter(table.handlers[index])
        if convert is None:
            waiting.image[name] = text
            return
        try:
            waiting.image[name] = convert(text)
        except Unrepresentable as exc:
            waiting.image[name] = exc.replacement
            waiting.problems.append(change(name, exc.reason))
        except (TypeError, ValueError, OverflowError):
            waiting.image[name] = None
            waiting.problems.append(change(name, REASON))
