"""The merge role of destination-mysql: a staged batch applied with ``INSERT ... SELECT ... ON
DUPLICATE KEY UPDATE`` on the loader's unique key index.

A batch that holds each key once (the key one integer column, no CDC deletions) is split first
(:meth:`MySqlMerge.absent_keys`): a locking read of its keys finds which the table holds; the
rows of the others are appended with ``LOAD DATA`` straight into the table (nothing stored can
be newer), and only the rest goes through the staging table and the steps below. A first load
of new keys then costs about what an append costs.

Per batch (or the rest of one), in its transaction (the rules are those of
:mod:`dbkit.destination.merge`):

1. the staging table keeps only the newest row of each key (skipped when the loader saw each key
   once); in hard-delete mode, staged rows not newer than their key's tombstone go;
2. hard-delete mode: stored rows that a staged deletion supersedes are deleted (a join on the key);
3. every other staged row is inserted; a row whose key is stored updates it only where it is
   newer: each column is assigned ``IF(newer, new value, old value)``, the data columns first,
   then ``_airbyte_extracted_at``, then the cursor, because MySQL evaluates the assignments in
   order, each seeing the ones before it (assigned first, the cursor would move and the data
   stay);
4. the batch's deletions become their keys' tombstones.

A row never has a twin: the unique index holds one row per key at every moment (rows with a NULL
in the key are appended, as NULL is no key value). Without a unique index on the key (one the
server cannot build, e.g. on a LONGTEXT key on MySQL 8) the framework's portable statements run.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from dbkit.db import AirbyteType
from dbkit.destination import EXTRACTED_AT, SEQ, DedupPlan, MergeSql, WriteContext, tombstone_columns
from destination_mysql.tables import quote, table_sql

_PROBE = 10_000
"""Keys looked up per statement by :meth:`MySqlMerge.absent_keys`."""
_DENSE = 4
_EXACT = frozenset(
    {
        AirbyteType.INTEGER,
        AirbyteType.BOOLEAN,
        AirbyteType.DATE,
        AirbyteType.TIMESTAMP_WITH_TIMEZONE,
        AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    }
)


def unique_key_index(conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
    """Whether a unique index (or the primary key) of ``table`` has only key columns."""
    rows = conn.execute(
        sa.text(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t AND NON_UNIQUE = 0"
        ),
        {"s": table.schema, "t": table.name},
    ).all()
    indexes: dict[str, set[str]] = {}
    for index, column in rows:
        indexes.setdefault(str(index), set()).add(str(column).casefold())
    wanted = {k.casefold() for k in key}
    return any(columns <= wanted for columns in indexes.values())


def newer(
    new: str, old: str, cursor: str | None, extracted_at: str = EXTRACTED_AT, *, values: bool = False
) -> str:
    """SQL: the row ``new`` is newer than ``old`` (aliases; ``values``: ``new`` is the
    ``VALUES()`` of an ON DUPLICATE KEY UPDATE and ``old`` the target table)."""

    def n(column: str) -> str:
        return f"VALUES({column})" if values else f"{new}.{column}"

    def o(column: str) -> str:
        return f"{old}.{column}"

    later = f"{n(extracted_at)} >= {o(extracted_at)}"
    if cursor is None:
        return later
    c_new, c_old = n(cursor), o(cursor)
    return (
        f"(({c_new} IS NOT NULL AND {c_old} IS NULL) OR {c_new} > {c_old} "
        f"OR ({c_new} <=> {c_old} AND {later}))"
    )


class MySqlMerge(MergeSql):
    """The merge role of destination-mysql (see the module doc)."""

    finds_absent_keys = True

    def exact_key(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Integers, booleans, dates and timestamps compare as their batch values do; text does
        not (a PAD SPACE collation takes ``'a'`` and ``'a '`` for one key)."""
        types = self.dialect.types  # type: ignore[attr-defined]
        return bool(key) and all(types.storage_type(table.c[k].type) in _EXACT for k in key)

    def absent_keys(
        self, conn: sa.Connection, target: sa.Table, keys: pa.Table, plan: DedupPlan
    ) -> pa.BooleanArray | None:
        """For a key of one integer column with a unique index: the rows whose key a locking
        read of the target does not find (``LOCK IN SHARE MODE``: the index's next-key locks
        also keep another session from inserting an absent key until the batch commits).

        The batch's keys are looked up sorted, 10,000 at a time: a run of keys that is dense
        (its range holds at most 4 keys per key looked up) as one index range, else as an
        ``IN`` list (on MariaDB without its conversion of long lists to a table of values,
        which measured 3x slower here). Other keys: None (every row is staged)."""
        if keys.num_columns != 1 or len(plan.key) != 1:
            return None
        column = keys.column(0).combine_chunks()
        if not pa.types.is_integer(column.type) or not unique_key_index(conn, target, plan.key):
            return None
        distinct = pc.unique(pc.drop_null(column))
        values: list[int] = distinct.take(pc.array_sort_indices(distinct)).to_pylist()
        k, t_sql = quote(conn, plan.key[0]), table_sql(conn, target)
        plain = "SET STATEMENT in_predicate_conversion_threshold = 0 FOR " if _mariadb(conn) else ""
        found: list[int] = []
        for start in range(0, len(values), _PROBE):
            run = values[start : start + _PROBE]
            if run[-1] - run[0] < _DENSE * len(run):
                where, prefix = f"{k} BETWEEN {run[0]} AND {run[-1]}", ""
            else:
                where, prefix = f"{k} IN ({','.join(map(str, run))})", plain
            rows = conn.exec_driver_sql(f"{prefix}SELECT {k} FROM {t_sql} WHERE {where} LOCK IN SHARE MODE")
            found += [row[0] for row in rows]
        held = pc.is_in(column, value_set=pa.array(found, column.type))
        return pc.and_(pc.is_valid(column), pc.invert(pc.fill_null(held, True)))

    def dedup(
        self,
        conn: sa.Connection,
        target: sa.Table,
        staging: sa.Table,
        plan: DedupPlan,
        write: WriteContext,
    ) -> None:
        if not unique_key_index(conn, target, plan.key):
            super().dedup(conn, target, staging, plan, write)
            return

        def q(name: str) -> str:
            return quote(conn, name)

        t_sql, s_sql = table_sql(conn, target), table_sql(conn, staging)
        keys = [q(k) for k in plan.key]
        cursor = q(plan.cursor) if plan.cursor is not None else None
        ea = q(EXTRACTED_AT)
        same = " AND ".join(f"a.{k} = b.{k}" for k in keys)
        present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        run = conn.exec_driver_sql
        if not plan.staged_unique:
            order = ([f"{cursor} IS NULL", f"{cursor} DESC"] if cursor else []) + [
                f"{ea} DESC",
                f"{q(SEQ)} DESC",
            ]
            run(
                f"DELETE FROM {s_sql} WHERE {q(SEQ)} IN (SELECT r.seq FROM (SELECT {q(SEQ)} AS seq, "
                f"ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY {', '.join(order)}) AS rn "
                f"FROM {s_sql} WHERE {present}) r WHERE r.rn > 1)"
            )
        hard = plan.deleted_at is not None and plan.hard_delete
        deleted = q(plan.deleted_at) if plan.deleted_at is not None else None
        if plan.tombstones is not None:
            b_sql = table_sql(conn, plan.tombstones)
            run(
                f"DELETE a FROM {s_sql} a JOIN {b_sql} b ON {same} "
                f"WHERE NOT COALESCE({newer('a', 'b', cursor, ea)}, FALSE)"
            )
        if hard:
            run(
                f"DELETE b FROM {t_sql} b JOIN {s_sql} a ON {same} "
                f"WHERE a.{deleted} IS NOT NULL AND {newer('a', 'b', cursor, ea)}"
            )
        columns = list(plan.columns) or [c.name for c in target.columns]
        names = ", ".join(q(c) for c in columns)
        fixed = {k.casefold() for k in plan.key}
        last = [EXTRACTED_AT] + ([plan.cursor] if plan.cursor is not None else [])
        assigned = [c for c in columns if c.casefold() not in fixed and c not in last] + [
            c for c in last if c.casefold() not in fixed
        ]
        condition = newer("", t_sql, cursor, ea, values=True)
        updates = ", ".join(
            f"{t_sql}.{q(c)} = IF({condition}, VALUES({q(c)}), {t_sql}.{q(c)})" for c in assigned
        )
        where = f" WHERE {deleted} IS NULL" if hard else ""
        run(
            f"INSERT INTO {t_sql} ({names}) SELECT {names} FROM {s_sql}{where} "
            f"ON DUPLICATE KEY UPDATE {updates or f'{t_sql}.{keys[0]} = {t_sql}.{keys[0]}'}"
        )
        if plan.tombstones is not None and deleted is not None:
            b_sql = table_sql(conn, plan.tombstones)
            kept = ", ".join(q(c) for c in tombstone_columns(plan))
            run(f"DELETE b FROM {b_sql} b JOIN {s_sql} a ON {same} WHERE a.{deleted} IS NOT NULL")
            run(
                f"INSERT INTO {b_sql} ({kept}) SELECT {kept} FROM {s_sql} "
                f"WHERE {deleted} IS NOT NULL AND {present}"
            )


def _mariadb(conn: sa.Connection) -> bool:
    return bool(getattr(conn.dialect, "is_mariadb", False))
