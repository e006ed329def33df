"""Deduplication in one ``MERGE`` statement per batch (PostgreSQL 15+), with the generic rules.

The rules are those of :mod:`dbkit.destination.merge`: per key, the newest record wins (higher
cursor; equal cursors: later extraction, then later arrival; a NULL cursor is older than any
value); a newer CDC deletion removes the row (hard delete) or is stored like any other version
(soft delete); rows with a NULL in the key are appended, never merged; in hard-delete mode a
staged row not newer than its key's tombstone (a deletion applied earlier in the same write) is
ignored.

The statement::

    MERGE INTO target AS t
    USING (the staged rows, newest per key (row_number() = 1), not buried by a tombstone) AS s
    ON t.key = s.key
    WHEN MATCHED AND s is a deletion AND s is newer THEN DELETE      -- hard delete only
    WHEN MATCHED AND s is newer THEN UPDATE SET every column
    WHEN NOT MATCHED AND s is not a deletion THEN INSERT ...

``USING`` holds at most one row per key, so MERGE changes each target row at most once and
never adds a second row for a key: the target holds one row per key at every moment, and a
user's unique index on the key keeps working. Identifiers are quoted by psycopg
(:class:`psycopg.sql.Identifier`), never pasted.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from dbkit.destination import EXTRACTED_AT, RN, SEQ, DedupPlan, tombstone_columns


def _c(alias: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))


def _join(parts: Sequence[sql.Composable], separator: str) -> sql.Composed:
    return sql.SQL(separator).join(parts)


def newer(a: str, b: str, plan: DedupPlan) -> sql.Composed:
    """``a``'s row is newer than ``b``'s (NULL when it cannot be told: counts as not newer)."""
    later = sql.SQL("{} >= {}").format(_c(a, EXTRACTED_AT), _c(b, EXTRACTED_AT))
    if plan.cursor is None:
        return sql.SQL("({})").format(later)
    new, old = _c(a, plan.cursor), _c(b, plan.cursor)
    return sql.SQL(
        "({new} > {old} OR ({new} IS NOT NULL AND {old} IS NULL)"
        " OR ({new} IS NOT DISTINCT FROM {old} AND {later}))"
    ).format(new=new, old=old, later=later)


def same_key(a: str, b: str, plan: DedupPlan) -> sql.Composed:
    return _join([sql.SQL("{} = {}").format(_c(a, k), _c(b, k)) for k in plan.key], " AND ")


def _any_key_null(alias: str, plan: DedupPlan) -> sql.Composed:
    return _join([sql.SQL("{} IS NULL").format(_c(alias, k)) for k in plan.key], " OR ")


def _no_key_null(alias: str, plan: DedupPlan) -> sql.Composed:
    return _join([sql.SQL("{} IS NOT NULL").format(_c(alias, k)) for k in plan.key], " AND ")


def newest_staged(
    staging: sql.Composable,
    plan: DedupPlan,
    columns: Sequence[str],
    tombstones: sql.Composable | None,
    *,
    null_keys: bool,
) -> sql.Composed:
    """The staged rows that count: the newest per key (and, with ``null_keys``, every row with a
    NULL in the key), minus those not newer than their key's tombstone. When the loader saw
    each key at most once in the batch (``plan.staged_unique``), every staged row is the newest
    of its key and the ranking (a sort of the batch) is skipped."""
    order: list[sql.Composable] = []
    if plan.cursor is not None:
        order.append(sql.SQL("{} DESC NULLS LAST").format(_c("x", plan.cursor)))
    order.append(sql.SQL("{} DESC").format(_c("x", EXTRACTED_AT)))
    order.append(sql.SQL("{} DESC").format(_c("x", SEQ)))
    buried: sql.Composable = sql.SQL("")
    if tombstones is not None:
        buried = sql.SQL(
            " WHERE NOT EXISTS (SELECT 1 FROM {tomb} AS b WHERE {key} AND NOT coalesce({newer}, false))"
        ).format(tomb=tombstones, key=same_key("b", "x", plan), newer=newer("x", "b", plan))
    if plan.staged_unique:  # one row per key already: no ranking
        return sql.SQL("SELECT {columns} FROM {staging} AS x{buried}").format(
            columns=_join([_c("x", c) for c in columns], ", "), staging=staging, buried=buried
        )
    keep = sql.SQL("{} = 1").format(sql.Identifier(RN))
    if null_keys:
        keep = sql.SQL("{} OR {}").format(keep, _any_key_null("r", plan))
    return sql.SQL(
        "SELECT {columns} FROM (SELECT x.*, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS {rn} "
        "FROM {staging} AS x{buried}) AS r WHERE {keep}"
    ).format(
        columns=_join([_c("r", c) for c in columns], ", "),
        keys=_join([_c("x", k) for k in plan.key], ", "),
        order=_join(order, ", "),
        rn=sql.Identifier(RN),
        staging=staging,
        buried=buried,
        keep=keep,
    )


def merge_statement(
    target: sql.Composable,
    staging: sql.Composable,
    plan: DedupPlan,
    columns: Sequence[str],
    tombstones: sql.Composable | None = None,
) -> sql.Composed:
    """The MERGE applying a loaded staging table to ``target`` (``columns``: the target's)."""
    hard = plan.deleted_at is not None and plan.hard_delete
    source = newest_staged(staging, plan, columns, tombstones if hard else None, null_keys=True)
    branches: list[sql.Composable] = []
    is_newer = newer("s", "t", plan)
    if hard:
        assert plan.deleted_at is not None
        branches.append(
            sql.SQL("WHEN MATCHED AND {} IS NOT NULL AND {} THEN DELETE").format(
                _c("s", plan.deleted_at), is_newer
            )
        )
    updated = [c for c in columns if c not in plan.key]
    branches.append(
        sql.SQL("WHEN MATCHED AND {} THEN UPDATE SET {}").format(
            is_newer, _join([sql.SQL("{} = {}").format(sql.Identifier(c), _c("s", c)) for c in updated], ", ")
        )
    )
    insert: sql.Composable = sql.SQL("WHEN NOT MATCHED")
    if hard:
        assert plan.deleted_at is not None
        insert = sql.SQL("{} AND {} IS NULL").format(insert, _c("s", plan.deleted_at))
    branches.append(
        sql.SQL("{} THEN INSERT ({}) VALUES ({})").format(
            insert,
            _join([sql.Identifier(c) for c in columns], ", "),
            _join([_c("s", c) for c in columns], ", "),
        )
    )
    return sql.SQL("MERGE INTO {target} AS t USING ({source}) AS s ON {on} {branches}").format(
        target=target, source=source, on=same_key("t", "s", plan), branches=_join(branches, " ")
    )


def record_deletions(
    staging: sql.Composable, plan: DedupPlan, tombstones: sql.Composable, columns: Sequence[str]
) -> sql.Composed:
    """Make the batch's deletions (those that count, as in the MERGE) their keys' tombstones; run
    after the MERGE, before the tombstones change."""
    assert plan.deleted_at is not None
    kept = tombstone_columns(plan)
    source = newest_staged(staging, plan, [*columns], tombstones, null_keys=False)
    return sql.SQL(
        "WITH kept AS (SELECT {cols} FROM ({source}) AS d WHERE {deleted} IS NOT NULL AND {present}), "
        "gone AS (DELETE FROM {tomb} AS b USING kept WHERE {key}) "
        "INSERT INTO {tomb} ({names}) SELECT {cols} FROM kept"
    ).format(
        cols=_join([sql.Identifier(c) for c in kept], ", "),
        source=source,
        deleted=_c("d", plan.deleted_at),
        present=_no_key_null("d", plan),
        tomb=tombstones,
        key=same_key("b", "kept", plan),
        names=_join([sql.Identifier(c) for c in kept], ", "),
    )


def has_duplicates(target: sql.Composable, plan: DedupPlan) -> sql.Composed:
    """Whether some key (without NULLs) is held by more than one row."""
    return sql.SQL(
        "SELECT EXISTS (SELECT FROM {target} WHERE {present} GROUP BY {keys} HAVING count(*) > 1)"
    ).format(
        target=target,
        keys=_join([sql.Identifier(k) for k in plan.key], ", "),
        present=_join([sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in plan.key], " AND "),
    )


def collapse_duplicates(target: sql.Composable, plan: DedupPlan) -> sql.Composed:
    """Delete every row but the newest of each key."""
    order: list[sql.Composable] = []
    if plan.cursor is not None:
        order.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(plan.cursor)))
    order.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(EXTRACTED_AT)))
    return sql.SQL(
        "DELETE FROM {target} AS t USING (SELECT ctid AS row, row_number() OVER (PARTITION BY {keys} "
        "ORDER BY {order}) AS {rn} FROM {target} WHERE {present}) AS d WHERE t.ctid = d.row AND d.{rn} > 1"
    ).format(
        target=target,
        keys=_join([sql.Identifier(k) for k in plan.key], ", "),
        order=_join(order, ", "),
        rn=sql.Identifier(RN),
        present=_join([sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in plan.key], " AND "),
    )
