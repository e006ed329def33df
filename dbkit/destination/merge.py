"""Portable merge SQL (SQLAlchemy Core): dedup, and the rules that decide which row is newer.

A record is newer than a stored row of the same key when its cursor is higher, or the cursors
are equal (or both NULL) and it was extracted at the same time or later; a NULL cursor counts as
older than any value. The default dedup runs, in the caller's transaction:

1. delete from the staging table every row but the newest of each key (arrival order breaks
   ties); rows with a NULL in the key are never deduplicated (NULL is not a key value); skipped
   when the loader saw that the batch holds each key once (``DedupPlan.staged_unique``);
2. delete stored rows that a staged row supersedes;
3. insert staged rows whose key is no longer stored, except CDC deletions (hard-delete mode).

At no point does the target hold two rows for a key, so users' own unique indexes keep working.

CDC deletions (``_ab_cdc_deleted_at`` set) follow the same newest-wins rule. In hard-delete
mode the deleted row is gone from the target, so the applied deletions of the current write are
remembered in a session-private *tombstone* table (key, cursor, extraction time): a staged row
that is not newer than its key's tombstone is dropped before step 2, and the batch's deletions
then replace their keys' tombstones. So within one write, across batches, an update older than
a deletion never brings the row back. The limit: tombstones last for one write (one sync
attempt); an update older than a deletion applied in an *earlier* sync finds nothing to lose
against and inserts the key again. Sources emit a key's changes in order, so this takes an
out-of-order source; soft-delete mode keeps the deleted row (with ``_ab_cdc_deleted_at`` set)
and has no such limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from dbkit.db.types import AirbyteType
from dbkit.destination.batch import EXTRACTED_AT

SEQ = "_dbkit_seq"
RN = "_dbkit_rn"


@dataclass(frozen=True)
class DedupPlan:
    key: Sequence[str]
    cursor: str | None
    deleted_at: str | None  # the _ab_cdc_deleted_at column, when the stream has one
    hard_delete: bool = True
    columns: Sequence[str] = ()  # every column of the target, in order
    tombstones: sa.Table | None = None  # hard-delete mode: this write's applied deletions
    staged_unique: bool = False  # the staged batch holds each key (without NULLs) at most once


# Key columns whose values the connector compares exactly as the database does (integers,
# text, booleans, dates, timestamps as UTC microseconds). Numbers travel as their text ("1.0"
# and "1" are one numeric), JSON as its text: for those only the database can tell.
_EXACT_KEYS = frozenset(
    {
        AirbyteType.INTEGER,
        AirbyteType.STRING,
        AirbyteType.BOOLEAN,
        AirbyteType.DATE,
        AirbyteType.TIMESTAMP_WITH_TIMEZONE,
        AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    }
)


def keys_unique(parts: Sequence[pa.Table], key: Sequence[str], types: Mapping[str, AirbyteType]) -> bool:
    """Whether no key (rows with a NULL in it aside: those are never merged) occurs twice in the
    batch made of ``parts``: then the batch needs no ranking before it is merged. False whenever
    it cannot be told exactly (a key column of another type)."""
    if not key or any(types.get(k) not in _EXACT_KEYS for k in key):
        return False
    table = pa.concat_tables([part.select(list(key)) for part in parts])
    present = None
    for k in key:
        valid = pc.is_valid(table.column(k))
        present = valid if present is None else pc.and_(present, valid)
    if present is not None and table.num_rows and pc.sum(present).as_py() != table.num_rows:
        table = table.filter(present)
    if table.num_rows <= 1:
        return True
    try:
        if len(key) == 1:
            return bool(pc.count_distinct(table.column(key[0])).as_py() == table.num_rows)
        return bool(table.group_by(list(key)).aggregate([]).num_rows == table.num_rows)
    except pa.ArrowException:  # a column type Arrow cannot hash: let the database rank
        return False


def tombstone_columns(plan: DedupPlan) -> list[str]:
    """The columns a tombstone table keeps: the key, the cursor, the extraction time."""
    return [*plan.key, *([plan.cursor] if plan.cursor is not None else []), EXTRACTED_AT]


def _newest_first(t: sa.Table | sa.Subquery, plan: DedupPlan) -> list[sa.ColumnElement[Any]]:
    order: list[sa.ColumnElement[Any]] = []
    if plan.cursor is not None:
        order.append(sa.case((t.c[plan.cursor].is_(None), 1), else_=0))
        order.append(t.c[plan.cursor].desc())
    order.append(t.c[EXTRACTED_AT].desc())
    if SEQ in t.c:
        order.append(t.c[SEQ].desc())
    return order


def dedupe_staging(staging: sa.Table, plan: DedupPlan) -> sa.Delete:
    ranked = (
        sa.select(
            staging.c[SEQ],
            sa.func.row_number()
            .over(partition_by=[staging.c[k] for k in plan.key], order_by=_newest_first(staging, plan))
            .label(RN),
        )
        .where(*(staging.c[k].is_not(None) for k in plan.key))
        .subquery("ranked")
    )
    losers = sa.select(ranked.c[SEQ]).where(ranked.c[RN] > 1)
    return sa.delete(staging).where(staging.c[SEQ].in_(losers))


def incoming_is_newer(incoming: Any, stored: Any, plan: DedupPlan) -> sa.ColumnElement[bool]:
    later: sa.ColumnElement[bool] = incoming.c[EXTRACTED_AT] >= stored.c[EXTRACTED_AT]
    if plan.cursor is None:
        return later
    new, old = incoming.c[plan.cursor], stored.c[plan.cursor]
    return sa.or_(
        sa.and_(new.is_not(None), old.is_(None)),
        new > old,
        sa.and_(sa.or_(new == old, sa.and_(new.is_(None), old.is_(None))), later),
    )


def drop_buried(staging: sa.Table, tombstones: sa.Table, plan: DedupPlan) -> sa.Delete:
    """Delete staged rows that are not newer than their key's tombstone (a NULL comparison,
    e.g. a NULL cursor against a deletion's value, counts as not newer)."""
    newer = sa.func.coalesce(incoming_is_newer(staging, tombstones, plan), sa.false())
    buried = sa.select(sa.literal(1)).where(same_key(staging, tombstones, plan), sa.not_(newer))
    return sa.delete(staging).where(buried.exists())


def record_deletions(staging: sa.Table, tombstones: sa.Table, plan: DedupPlan) -> list[sa.Executable]:
    """Statements that make the batch's deletions the tombstones of their keys."""
    assert plan.deleted_at is not None
    deletions = staging.c[plan.deleted_at].is_not(None)
    replaced = sa.select(sa.literal(1)).where(same_key(staging, tombstones, plan), deletions)
    columns = tombstone_columns(plan)
    return [
        sa.delete(tombstones).where(replaced.exists()),
        sa.insert(tombstones).from_select(
            columns,
            sa.select(*(staging.c[c] for c in columns)).where(deletions, *_key_present(staging, plan)),
        ),
    ]


def _key_present(t: sa.Table, plan: DedupPlan) -> list[sa.ColumnElement[bool]]:
    return [t.c[k].is_not(None) for k in plan.key]


def same_key(a: Any, b: Any, plan: DedupPlan) -> sa.ColumnElement[bool]:
    return sa.and_(*(a.c[k] == b.c[k] for k in plan.key))


def delete_superseded(target: sa.Table, staging: sa.Table, plan: DedupPlan) -> sa.Delete:
    """Delete stored rows a staged row supersedes. The key ``IN`` the staged keys comes first so
    the database probes the target's key index for the batch's keys instead of testing every
    stored row (which made a dedup write quadratic in the table's size)."""
    match = sa.select(sa.literal(1)).where(
        same_key(staging, target, plan), incoming_is_newer(staging, target, plan)
    )
    return sa.delete(target).where(_key_in(target, staging, plan), match.exists())


def _key_in(t: sa.Table, other: sa.Table, plan: DedupPlan) -> sa.ColumnElement[bool]:
    """``t``'s key is among ``other``'s keys (one column: ``k IN (...)``; several: a row value)."""
    keys = sa.select(*(other.c[k] for k in plan.key))
    if len(plan.key) == 1:
        return t.c[plan.key[0]].in_(keys)
    return sa.tuple_(*(t.c[k] for k in plan.key)).in_(keys)


def insert_new(target: sa.Table, staging: sa.Table, plan: DedupPlan) -> sa.Insert:
    columns = list(plan.columns) or [c.name for c in target.columns]
    stored = sa.select(sa.literal(1)).where(same_key(staging, target, plan))
    conditions: list[sa.ColumnElement[bool]] = [~stored.exists()]
    if plan.deleted_at is not None and plan.hard_delete:
        conditions.append(staging.c[plan.deleted_at].is_(None))
    select = sa.select(*(staging.c[c] for c in columns)).where(*conditions)
    return sa.insert(target).from_select(columns, select)


def delete_old_generations(target: sa.Table, minimum_generation_id: int) -> sa.Delete:
    gen = target.c["_airbyte_generation_id"]
    return sa.delete(target).where(sa.or_(gen.is_(None), gen < minimum_generation_id))
