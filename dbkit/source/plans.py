"""Read plans: which queries a stream's read runs, in which order, and what STATE means.

Full refresh (resumable): ``ORDER BY key``; a checkpoint records the last key emitted; a resumed
read continues with ``key > last``. The key is the table's primary key when its columns cannot
be NULL, else the dialect's row locator (rowid, ctid); without either the read cannot resume and
checkpoints only at its end. A completed full refresh records ``complete`` and the next read
starts over.

Cursor incremental: the upper bound ``U = max(cursor)`` is fixed when the read starts, and rows
are read in ``(cursor, key)`` order with ``cursor <= U``:

- mid-read checkpoints record ``(cursor, key)`` of the last row, and a resumed read continues
  strictly after it, so rows that share a cursor value across a checkpoint are neither lost nor
  repeated; they also carry the hashes of the rows emitted so far at that cursor value, which the
  final checkpoint of the resumed read needs. Among the rows at the upper bound itself, where
  writes made after the checkpoint may still land (ties at the maximum), checkpoints record
  value + hashes instead (as below), so that such a row is read even if its key sorts first;
- the final checkpoint records the last cursor value *and* content hashes of the rows emitted at
  that value (``cursor``/``seen``). The next read starts at ``cursor >= value`` and skips exactly
  those rows: a row that later gets the same cursor value (same day, same second), or is updated
  again without the cursor moving, is read; an unchanged row is not repeated. Each read rebuilds
  the list from the rows it finds at that value, so a row updated back to an earlier content is
  read too. When more than :data:`MAX_SEEN` rows share the value their hashes are not kept
  (``seen_overflow``) and they are re-read (at least once, never lost);
- a mid-read checkpoint among more than :data:`MAX_SEEN` rows at the upper bound (keyed tables)
  records ``(cursor, key)`` plus the count and the sum of the hashes of the rows at that value up
  to the key (``seen_count``/``seen_sum``). A read resumed from it first reads those rows again
  without emitting them and compares: the same count and sum, and it continues strictly after
  ``(cursor, key)`` (exact: nothing lost, nothing repeated); otherwise (a row there was changed
  or added since) it reads every row at that value again (repeats, never a loss);
- while a read is among the rows at its starting value and some hashes the previous position
  listed are still unmet (rows it has not reached, or rows it met changed: it cannot tell which),
  a keyed table checkpoints ``(cursor, key)`` with two lists: the hashes of the rows met up to the
  key and the unmet ones (``pending``). A read resumed from it (a *split* resume) reads the rows
  at the value up to the key, skipping against the first list, then the rest, skipping against
  the second: a pending hash never skips a row the interrupted read had passed (that row may have
  been changed back to it, and its latest version would be lost). While it reads the first part
  it writes no STATE (a position there would need a third list); when the two lists would hold
  more than :data:`MAX_SEEN` hashes, the position is the value alone (its rows are read again).
  A table without a key cannot locate those rows, and writes no STATE until every hash is met or
  the read has left the value;
- otherwise tables without a key checkpoint with value + hashes;
- rows whose cursor is above every real value (``SourceDialect.cursor_beyond``: PostgreSQL's
  ``'infinity'``, ``NaN``) are read last, by every read (a ``beyond`` phase), and never become
  the position, which stays at the largest real value (the upper bound excludes them); the read
  warns when it finds any. A saved position that is such a value is dropped (read from the start);
- rows whose cursor is NULL are read once, first, by the initial read (a ``nulls`` phase), so
  the first sync is complete; later changes to rows whose cursor stays NULL cannot be seen by
  any cursor read (documented).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbkit.errors import ConfigError
from dbkit.source.dialect import SourceDialect
from dbkit.source.model import ColumnInfo, RowLocator, TableInfo
from dbkit.source.state import NOT_RECORDED, CursorState, FullRefreshState, StreamState

MAX_SEEN = 1000
HASH_SUM_MASK = 2**64 - 1  # the sum of the rows' 64-bit hashes is kept modulo 2**64
_HEX64 = re.compile(r"[0-9a-f]{16}")


def row_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass
class Key:
    """The columns (or locator) that order a read and identify a position in it."""

    name: list[str]
    order: list[sa.ColumnElement[Any]]
    capture: list[sa.ColumnElement[Any]]
    columns: list[ColumnInfo | None]
    locator: RowLocator | None = None

    def bind(self, dialect: SourceDialect[Any], values: Sequence[Any]) -> list[sa.ColumnElement[Any]]:
        out = []
        for column, value in zip(self.columns, values, strict=True):
            if column is not None:
                out.append(dialect.bind_state_value(column, value))
            elif self.locator is not None and self.locator.bind is not None:
                out.append(self.locator.bind(value))
            else:
                out.append(sa.literal(value))
        return out

    def state_values(self, dialect: SourceDialect[Any], raw: Sequence[Any]) -> list[Any]:
        out = []
        for column, value in zip(self.columns, raw, strict=True):
            out.append(dialect.key_state_value(column, value) if column is not None else value)
        return out


def choose_key(dialect: SourceDialect[Any], table: TableInfo, t: sa.TableClause) -> Key | None:
    cols = table.key_columns()
    if cols is not None:
        return Key(
            name=[c.name for c in cols],
            order=[t.c[c.name] for c in cols],
            capture=[dialect.key_expression(t, c) for c in cols],
            columns=list(cols),
        )
    locator = dialect.row_locator(table)
    if locator is not None:
        expr = locator.expression(t)
        return Key(name=[locator.name], order=[expr], capture=[expr], columns=[None], locator=locator)
    return None


def keyset_after(
    left: Sequence[sa.ColumnElement[Any]], right: Sequence[sa.ColumnElement[Any]], row_values: bool
) -> sa.ColumnElement[bool]:
    """``(a, b, ...) > (x, y, ...)``, as a row comparison or expanded for dialects without one."""
    if len(left) == 1:
        return left[0] > right[0]
    if row_values:
        return sa.tuple_(*left) > sa.tuple_(*right)
    terms = []
    for i in range(len(left)):
        equal = [left[j] == right[j] for j in range(i)]
        terms.append(sa.and_(*equal, left[i] > right[i]))
    return sa.or_(*terms)


@dataclass
class Segment:
    """One query of a read: its filter and order, and what to capture for checkpoints."""

    where: list[sa.ColumnElement[bool]]
    order_by: list[sa.ColumnElement[Any]]
    capture: list[sa.ColumnElement[Any]]
    resumable: bool


@dataclass
class TieTracker:
    """Hashes of the emitted rows that share the latest cursor value (a multiset, capped).

    Past :data:`MAX_SEEN` hashes the tracker *overflows*: it forgets them all, and the rows at
    that value are read again by the next read (at least once, never lost). It keeps counting
    them, and summing their hashes, so that a mid-read position among them can still be checked
    (:class:`CursorPlan`); ``summed`` is False when that count is unknown (seeded from an
    overflowed list that did not carry one).
    """

    value: Any = None
    active: bool = False
    seen: Counter[str] = field(default_factory=Counter)
    count: int = 0
    overflow: bool = False
    total: int = 0
    summed: bool = True

    def reset(self, value: Any) -> None:
        self.value = value
        self.active = True
        self.seen = Counter()
        self.count = 0
        self.overflow = False
        self.total = 0
        self.summed = True

    def seed(
        self, value: Any, seen: Sequence[str], overflow: bool, summary: tuple[int, int] | None = None
    ) -> None:
        """Start from a saved position: its hashes, or (overflowed) its ``(count, sum)`` if any."""
        self.reset(value)
        for digest in seen:
            self.add(digest)
        if overflow:
            self.overflow = True
            self.seen = Counter()
            if summary is not None:
                self.count, self.total = summary
            else:
                self.summed = False

    def add(self, digest: str) -> None:
        self.count += 1
        try:
            self.total = (self.total + int(digest, 16)) & HASH_SUM_MASK
        except ValueError:  # not one of ours (a state written by hand): no sum to check against
            self.summed = False
        if self.overflow:
            return
        self.seen[digest] += 1
        if self.count > MAX_SEEN:
            self.overflow = True
            self.seen = Counter()

    def as_list(self) -> list[str] | None:
        return None if self.overflow else sorted(self.seen.elements())


def _hashes(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _split_position(position: dict[str, Any]) -> bool:
    """Whether a position that mentions ``pending`` or ``split_key`` has the whole split form."""
    return (
        _hashes(position.get("pending"))
        and _hashes(position.get("seen"))
        and isinstance(position.get("split_key"), list)
        and isinstance(position.get("by"), list)
        and not ({"after_key", "seen_overflow", "seen_count", "seen_sum"} & position.keys())
    )


def _summary(position: dict[str, Any]) -> tuple[int, int] | None:
    """A position's ``(seen_count, seen_sum)``, or None when it has none (or a malformed one)."""
    count, total = position.get("seen_count"), position.get("seen_sum")
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0 and isinstance(total, str)):
        return None
    if not _HEX64.fullmatch(total):
        return None
    return count, int(total, 16)


class ReadPlan:
    """Base: a plan yields segments and turns consumed rows into STATE (run by
    :class:`dbkit.source.plan_job.PlanJob`)."""

    def __init__(self, dialect: SourceDialect[Any], table: TableInfo, t: sa.TableClause) -> None:
        self.dialect = dialect
        self.table = table
        self.t = t
        self.warnings: list[str] = []

    def segments(self) -> Iterator[Segment]:
        raise NotImplementedError

    def consume(self, captured: Sequence[Sequence[Any]], datas: Sequence[bytes]) -> list[bool] | None:
        """Called per fetched batch with the captured key values of each row and its data bytes.

        Returns a keep-mask when some rows must be skipped (already emitted before), else None.
        """
        raise NotImplementedError

    def checkpoint(self) -> StreamState | None:
        """The state after every row consumed so far, or None when no resumable state exists yet."""
        raise NotImplementedError

    def final(self) -> StreamState:
        """The state once every segment is read."""
        raise NotImplementedError


class FullRefreshPlan(ReadPlan):
    def __init__(
        self,
        dialect: SourceDialect[Any],
        table: TableInfo,
        t: sa.TableClause,
        prior: StreamState | None,
    ) -> None:
        super().__init__(dialect, table, t)
        self.key = choose_key(dialect, table, t)
        self.after: list[Any] | None = None
        if isinstance(prior, FullRefreshState) and not prior.complete:
            if self.key is not None and prior.by == self.key.name and prior.after is not None:
                self.after = list(prior.after)
            else:
                self.warnings.append(
                    "the saved full-refresh position does not match the table's key; reading it all"
                )

    def segments(self) -> Iterator[Segment]:
        if self.key is None:
            yield Segment(where=[], order_by=[], capture=[], resumable=False)
            return
        where = []
        if self.after is not None:
            where.append(
                keyset_after(
                    self.key.order,
                    self.key.bind(self.dialect, self.after),
                    self.dialect.capabilities.row_value_comparison,
                )
            )
        yield Segment(
            where=where, order_by=list(self.key.order), capture=list(self.key.capture), resumable=True
        )

    def consume(self, captured: Sequence[Sequence[Any]], datas: Sequence[bytes]) -> list[bool] | None:
        if self.key is not None and captured:
            self.after = self.key.state_values(self.dialect, captured[-1])
        return None

    def checkpoint(self) -> StreamState | None:
        if self.key is None or self.after is None:
            return None
        return FullRefreshState(by=self.key.name, after=self.after)

    def final(self) -> StreamState:
        return FullRefreshState.done()


class CursorPlan(ReadPlan):
    """Cursor incremental read of one stream; see the module docstring for what STATE means.

    Positions kept in STATE (``position``):

    - ``{"cursor": v, "seen": [hash, ...]}`` (+ ``"seen_overflow": true``): every row with a
      cursor below ``v`` was emitted, and so were the rows at ``v`` whose content hashes are
      listed; the next read reads ``cursor >= v`` and skips one row per listed hash;
    - ``{"cursor": v, "by": key, "after_key": k, "seen": [...]}`` (mid-read, keyed tables, ``v``
      below the read's upper bound): every row up to ``(v, k)`` in ``(cursor, key)`` order was
      emitted; ``seen`` lists the rows emitted at ``v`` so far, so that the final STATE of a
      resumed read still knows them. No write can land on ``v`` any more (writes take cursor
      values at or above the maximum, and ``v`` is below it), so nothing before ``(v, k)`` changes.
      At the upper bound this form is used only past :data:`MAX_SEEN` rows at ``v``, with
      ``seen_count`` and ``seen_sum`` (the count and the sum modulo 2**64 of the hashes of the
      rows at ``v`` up to ``k``): the resumed read checks them first (a *probe* segment whose rows
      are not emitted) and reads the rows at ``v`` again when they differ;
    - ``{"cursor": v, "by": key, "split_key": k, "seen": [...], "pending": [...]}`` (keyed tables,
      among the rows at the start value while hashes the previous position listed are unmet):
      ``seen`` lists the rows at ``v`` met up to ``k`` (emitted, or skipped as emitted before),
      ``pending`` the hashes left from earlier reads. The resumed read reads the rows at ``v`` up
      to ``k`` skipping against ``seen``, then the rows after ``(v, k)`` skipping against
      ``pending`` (a *split* resume). The key is not called ``after_key``: a dbkit from before
      this form reads it as ``{"cursor": v, "seen": [...]}`` (rows repeat, none is lost).
    """

    def __init__(
        self,
        dialect: SourceDialect[Any],
        table: TableInfo,
        t: sa.TableClause,
        cursor: ColumnInfo,
        prior: StreamState | None,
        upper: Any,
        beyond: sa.ColumnElement[bool] | None = None,
    ) -> None:
        super().__init__(dialect, table, t)
        self.cursor = cursor
        # the rows whose cursor is above every real value (SourceDialect.cursor_beyond), if any
        self.beyond = beyond
        self.beyond_rows = 0
        self.cursor_expr = t.c[cursor.name]
        self.key = choose_key(dialect, table, t)
        self.upper = upper  # STATE form of max(cursor) when the read started; None: no values
        self.nulls: Any = "pending" if cursor.nullable else "done"
        self.position: dict[str, Any] | None = None
        self.phase = "nulls"
        # rows emitted (now or by earlier reads) at the latest cursor value
        self.tracker = TieTracker()
        # hashes of rows at ``skip_value`` that earlier reads emitted: skipped once each
        self.skip: Counter[str] | None = None
        self.skip_value: Any = None
        # hashes of rows at ``skip_value`` after a saved key that earlier reads emitted: the skip
        # list of the second segment of a split resume (see ``_values_segments``)
        self.later: Counter[str] | None = None
        self.replaying = False  # reading the first segment of a split resume
        # (count, sum of hashes) of the rows the probe segment found (see ``segments``)
        self.probed: tuple[int, int] = (0, 0)
        if prior:
            self._adopt(prior)

    def _adopt(self, prior: StreamState) -> None:
        if not isinstance(prior, CursorState) or prior.cursor_field != [self.cursor.name]:
            shown = prior.cursor_field if isinstance(prior, CursorState) else None
            self.warnings.append(
                f"the saved state is for another cursor ({shown}); "
                f"reading the table from the start with cursor {self.cursor.name!r}"
            )
            return
        nulls = "done" if prior.nulls is NOT_RECORDED else prior.nulls
        if not (
            nulls in ("done", "pending") or (isinstance(nulls, dict) and isinstance(nulls.get("after"), list))
        ):
            raise ConfigError(f"state for {self.table.descriptor}: 'nulls' is malformed; reset the stream")
        if isinstance(nulls, dict) and (self.key is None or nulls.get("by") != self.key.name):
            # the key changed since: read the NULL-cursor rows again (repeats, never losses)
            self.warnings.append("the saved position among rows with a NULL cursor is for another key")
            nulls = "pending"
        self.nulls = nulls if self.cursor.nullable else "done"
        position = prior.position
        if position is None:
            return
        seen = position.get("seen") if isinstance(position, dict) else None
        if (
            not isinstance(position, dict)
            or "cursor" not in position
            or (seen is not None and not _hashes(seen))
            or ("after_key" in position and not isinstance(position["after_key"], list))
            or (("seen_count" in position or "seen_sum" in position) and _summary(position) is None)
            or (("pending" in position or "split_key" in position) and not _split_position(position))
        ):
            raise ConfigError(f"state for {self.table.descriptor}: 'position' is malformed; reset the stream")
        # without a list of hashes nobody knows which rows at the value were emitted: re-read them
        overflow = bool(position.get("seen_overflow")) or seen is None
        if "split_key" in position and (self.key is None or position.get("by") != self.key.name):
            # the key changed: nobody knows any more which of the rows at the value the two hash
            # lists belong to, so those rows are read again (repeats, never a loss)
            position, overflow = {"cursor": position["cursor"], "seen": []}, True
        elif "after_key" in position and (self.key is None or position.get("by") != self.key.name):
            # continue from the value; the hashes still say which rows were emitted
            position = {"cursor": position["cursor"], "seen": seen or []}
        self.position = dict(position)
        self.tracker.seed(position["cursor"], seen or [], overflow, _summary(position))

    def drop_position(self, saved: Any) -> None:
        """Forget a saved position that is above every real value (written before that rule):
        it would keep the read at that value for ever; the table is read from the start."""
        self.warnings.append(
            f"the saved position is {saved!r}, above every real value of cursor {self.cursor.name!r}: "
            "no row would ever be read after it; reading the table from the start"
        )
        self.position = None
        self.tracker = TieTracker()

    # ------------------------------------------------------------------ segments
    def segments(self) -> Iterator[Segment]:
        rv = self.dialect.capabilities.row_value_comparison
        if self.nulls != "done":
            self.phase = "nulls"
            where: list[sa.ColumnElement[bool]] = [self.cursor_expr.is_(None)]
            if self.key is not None:
                if isinstance(self.nulls, dict):
                    where.append(
                        keyset_after(self.key.order, self.key.bind(self.dialect, self.nulls["after"]), rv)
                    )
                yield Segment(where, list(self.key.order), list(self.key.capture), resumable=True)
            else:
                yield Segment(where, [], [], resumable=False)
            self.nulls = "done"
        if self.upper is not None:
            yield from self._values_segments(rv)
        if self.beyond is not None:
            # above every real value: read by every read, never the position (see cursor_beyond)
            self.phase = "beyond"
            order = [self.cursor_expr, *(self.key.order if self.key else [])]
            capture = [self.dialect.key_expression(self.t, self.cursor)]
            yield Segment([self.beyond], order, capture, resumable=True)
            if self.beyond_rows:
                shown = f" ({self.upper!r})" if self.upper is not None else ""
                self.warnings.append(
                    f"{self.beyond_rows} row(s) have cursor {self.cursor.name!r} at infinity or NaN, above "
                    f"every real value: they are read again on every sync, and the saved position stays "
                    f"at the largest real value{shown}; give them real values, or choose another cursor"
                )

    def _values_segments(self, rv: bool) -> Iterator[Segment]:
        """The rows with a real cursor value up to the upper bound (after a probe, maybe)."""
        self.phase = "values"
        bound = self.dialect.bind_state_value(self.cursor, self.upper)
        where = [self.cursor_expr.is_not(None), self.cursor_expr <= bound]
        pos = self.position
        order = [self.cursor_expr, *(self.key.order if self.key else [])]
        capture = [self.dialect.key_expression(self.t, self.cursor), *(self.key.capture if self.key else [])]
        if pos is not None:
            start = self.dialect.bind_state_value(self.cursor, pos["cursor"])
            if "split_key" in pos and self.key is not None:
                # split: the rows at the value up to the key are read again and skipped against
                # the hashes of what the saved read met there (no STATE meanwhile: see
                # ``consume``); the rows after the key against the hashes earlier reads left
                # pending (rows it had not met yet, or met changed)
                key = self.key.bind(self.dialect, pos["split_key"])
                self.skip = Counter(self.tracker.seen) or None
                self.later = Counter(pos["pending"]) or None
                self.skip_value = pos["cursor"]
                self.tracker.reset(pos["cursor"])
                self.replaying = True
                yield Segment([*where, *self._up_to(start, key, rv)], order, capture, resumable=True)
                self.replaying = False
                self.skip, self.later = self.later, None
                yield Segment([*where, self._after(start, key, rv)], order, capture, resumable=True)
                return
            exact = "after_key" in pos and self.key is not None
            if exact and self.key is not None and _summary(pos) is not None:
                # among more ties at the upper bound than hashes are kept: the rows at the value up
                # to the key are first compared (count, sum of hashes) with what was emitted
                key = self.key.bind(self.dialect, pos["after_key"])
                self.phase, self.probed = "probe", (0, 0)
                yield Segment(self._up_to(start, key, rv), order, capture, resumable=False)
                self.phase = "values"
                exact = self.probed == _summary(pos)
            if exact and self.key is not None:
                where.append(self._after(start, self.key.bind(self.dialect, pos["after_key"]), rv))
            else:
                where.append(self.cursor_expr >= start)
                # the rows at the start value are all read again: those emitted before are
                # skipped, and the tracker is rebuilt from what is actually there now
                self.skip = Counter(self.tracker.seen) if not self.tracker.overflow else None
                self.skip_value = pos["cursor"]
                self.tracker.reset(pos["cursor"])
        yield Segment(where, order, capture, resumable=True)

    def _up_to(
        self, start: sa.ColumnElement[Any], key: list[sa.ColumnElement[Any]], rv: bool
    ) -> list[sa.ColumnElement[bool]]:
        """The rows at the cursor value ``start`` whose key is at most ``key``."""
        assert self.key is not None
        return [self.cursor_expr == start, sa.not_(keyset_after(self.key.order, key, rv))]

    def _after(
        self, start: sa.ColumnElement[Any], key: list[sa.ColumnElement[Any]], rv: bool
    ) -> sa.ColumnElement[bool]:
        """The rows strictly after ``(start, key)`` in ``(cursor, key)`` order."""
        assert self.key is not None
        return keyset_after([self.cursor_expr, *self.key.order], [start, *key], rv)

    # ------------------------------------------------------------------ per batch
    def consume(self, captured: Sequence[Sequence[Any]], datas: Sequence[bytes]) -> list[bool] | None:
        if not captured:
            return None
        if self.phase == "probe":  # rows emitted before: hashed, counted, not emitted again
            count, total = self.probed
            for data in datas:
                total += int(row_hash(data), 16)
            self.probed = (count + len(datas), total & HASH_SUM_MASK)
            return [False] * len(datas)
        if self.phase == "beyond":  # emitted; the position stays where the real values left it
            self.beyond_rows += len(captured)
            return None
        if self.phase == "nulls":
            if self.key is not None:
                self.nulls = {"by": self.key.name, "after": self.key.state_values(self.dialect, captured[-1])}
            return None
        values = [self._cursor_state(row) for row in captured]
        digests: dict[int, str] = {}
        keep: list[bool] | None = None
        if self.skip is not None:
            keep = [True] * len(captured)
            for i, value in enumerate(values):
                if value != self.skip_value:
                    self.skip = None
                    break
                digest = digests[i] = row_hash(datas[i])
                if self.skip[digest] > 0:
                    self.skip[digest] -= 1
                    keep[i] = False
            if self.skip is not None and not +self.skip:
                self.skip = None  # every row emitted before at the start value is behind us
        last = values[-1]
        # rows at the last value, walking back from the end of the batch; skipped rows count too
        # (they are at the destination already)
        j = len(values) - 1
        while j >= 0 and values[j] == last:
            j -= 1
        if not (j < 0 and self.tracker.active and self.tracker.value == last):
            self.tracker.reset(last)
        for i in range(j + 1, len(values)):
            known = digests.get(i)
            self.tracker.add(known if known is not None else row_hash(datas[i]))
        pos: dict[str, Any] = {"cursor": last}
        at_upper = last == self.upper
        summed = self.tracker.overflow and self.tracker.summed
        if self.held:
            return keep
        pending = self.skip is not None or self.later is not None
        split = self._split() if pending else None
        if split is None and pending:
            pos.update(self._seen(overflow=True))  # too many hashes: the value is read again
        elif self.key is not None and (split is not None or not at_upper or summed):
            pos["by"] = self.key.name
            last_key = self.key.state_values(self.dialect, captured[-1][1:])
            pos["after_key" if split is None else "split_key"] = last_key
            pos.update(self._seen() if split is None else split)
            if at_upper and split is None:
                # more ties at the upper bound than hashes are kept: the count and the sum of the
                # hashes of the rows at the value up to the key let the resumed read check them
                pos["seen_count"] = self.tracker.count
                pos["seen_sum"] = f"{self.tracker.total:016x}"
        else:
            # value + hashes. At the upper bound, writes made after this checkpoint may still
            # land on this value (ties at the maximum), also before the last key: a read resumed
            # from here re-reads the value and skips exactly the rows it lists.
            pos.update(self._seen())
        self.position = pos
        return keep

    @property
    def held(self) -> bool:
        """No STATE for now: (a) in a table without a key, among the rows at the start value
        while hashes an earlier read emitted there are unmet: which rows they belong to is
        unknown (a row this read met changed may be one of them); (b) in the first segment of a
        split resume, where the hashes left of both lists belong to three ranges of keys (up to
        here, from here to the saved key, after it) and a position would need a third list."""
        pending = self.skip is not None or self.later is not None
        return (pending and self.key is None) or self.replaying

    def _cursor_state(self, row: Sequence[Any]) -> Any:
        return self.dialect.key_state_value(self.cursor, row[0])

    def _seen(self, overflow: bool = False) -> dict[str, Any]:
        listed = None if overflow else self.tracker.as_list()
        return {"seen": [], "seen_overflow": True} if listed is None else {"seen": listed}

    def _split(self) -> dict[str, Any] | None:
        """The hash lists of a position among the rows at the start value while hashes earlier
        reads emitted there are still unmet (None: too many to keep): those of the rows met up to
        the key (``seen``) and the unmet ones (``pending``), which a resumed read applies only
        after the key. An unmet hash may be that of a row this read met changed: applied to the
        rows before the key, it would skip that row changed back, whose latest version was not
        delivered. (Not called in the first segment of a split resume, the one time ``skip``
        and ``later`` are both set.)"""
        own = self.tracker.as_list()
        pending = [*(self.skip or Counter()).elements(), *(self.later or Counter()).elements()]
        if own is None or len(own) + len(pending) > MAX_SEEN:
            return None
        return {"seen": own, "pending": sorted(pending)}

    # ------------------------------------------------------------------ state
    def _state(self, position: dict[str, Any] | None) -> CursorState:
        return CursorState(
            cursor_field=[self.cursor.name],
            position=dict(position) if position is not None else None,
            nulls=self.nulls if self.cursor.nullable else NOT_RECORDED,
        )

    def checkpoint(self) -> StreamState | None:
        if (self.phase == "nulls" and self.key is None) or self.held:
            return None
        return self._state(self.position)

    def final(self) -> StreamState:
        """Always the value + hashes form: rows that arrive later at the last value are read."""
        if not self.tracker.active:
            return self._state(None)
        return self._state({"cursor": self.tracker.value, **self._seen()})
