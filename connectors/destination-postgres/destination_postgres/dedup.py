"""The merge role of destination-postgres: one ``MERGE`` per batch
(:mod:`destination_postgres.merge`), planned to probe the target's key index."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from psycopg import sql

from dbkit.destination import DedupPlan, MergeSql, WriteContext
from destination_postgres import merge
from destination_postgres.driver import execute, ident, query
from destination_postgres.tables import PostgresTables

# For the MERGE of a batch: probe the target's key index once per staged row instead of
# hashing or sorting the whole target (a full scan of it per batch: a load that slows down as
# the table grows); sort the batch in memory; no JIT compilation (a fixed cost per statement).
_MERGE_SETTINGS = (
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off; "
    "SET LOCAL work_mem = '64MB'"
)
# back to the session's values for the rest of the transaction (RESET would also drop a
# session-level SET of the user's)
_MERGE_RESET = (
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT; "
    "SET LOCAL jit TO DEFAULT; SET LOCAL work_mem TO DEFAULT"
)
_EXACT_TYPES = frozenset(
    {
        "bigint",
        "integer",
        "smallint",
        "text",
        "character varying",
        "boolean",
        "date",
        "timestamp with time zone",
        "timestamp without time zone",
    }
)
_KEY_COLUMN_TYPES = """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod),
           coalesce(c.collisdeterministic, true)
      FROM pg_attribute AS a
      JOIN pg_class AS t ON t.oid = a.attrelid
      JOIN pg_namespace AS n ON n.oid = t.relnamespace
      LEFT JOIN pg_collation AS c ON c.oid = a.attcollation
     WHERE n.nspname = %(schema)s AND t.relname = %(name)s AND a.attnum > 0 AND NOT a.attisdropped
"""


class PostgresMerge(MergeSql):
    """The merge role of destination-postgres (see the module doc)."""

    def exact_key(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Plain integer, text, boolean, date and timestamp columns (no precision) with a
        deterministic collation; not uuid, citext, char(n), timestamp(0) and the like, whose
        equality is not that of their text."""
        rows = query(conn, _KEY_COLUMN_TYPES, {"schema": table.schema or "public", "name": table.name})
        exact = {str(row[0]) for row in rows if row[1] in _EXACT_TYPES and row[2]}
        return bool(key) and all(k in exact for k in key)

    def prepare_staging(
        self, conn: sa.Connection, staging: sa.Table, tombstones: sa.Table | None, plan: DedupPlan
    ) -> None:
        """Nothing: the MERGE below hashes the staged batch (an index on it would only slow the
        COPY into it)."""

    def dedup(
        self, conn: sa.Connection, target: sa.Table, staging: sa.Table, plan: DedupPlan, write: WriteContext
    ) -> None:
        columns = list(plan.columns) or [c.name for c in target.columns]
        tomb = plan.tombstones
        tomb_sql = ident(tomb) if tomb is not None and tomb.name in write.tombstones_used else None
        # probe the key index per staged row, when there is a usable one (the tombstone table has
        # none: leave that plan alone)
        planned = tomb_sql is None and self.key_index_usable(conn, target, plan.key, write)
        if planned:
            execute(conn, sql.SQL(_MERGE_SETTINGS))
        execute(conn, merge.merge_statement(ident(target), ident(staging), plan, columns, tomb_sql))
        if planned:
            execute(conn, sql.SQL(_MERGE_RESET))
        if tomb is not None and plan.deleted_at is not None:
            has_deletions = conn.execute(
                sa.select(sa.literal(1))
                .select_from(staging)
                .where(staging.c[plan.deleted_at].is_not(None))
                .limit(1)
            ).first()
            if has_deletions:
                execute(conn, merge.record_deletions(ident(staging), plan, ident(tomb), columns))
                write.tombstones_used.add(tomb.name)

    def key_index_usable(
        self, conn: sa.Connection, table: sa.Table, key: Sequence[str], write: WriteContext
    ) -> bool:
        """Whether a valid, complete (not partial), plain-column btree index of ``table`` starts
        with ``key``: what the forced MERGE plan probes (asked once per table and write). Without
        one (a user's partial index was taken for the key's), forcing that plan would scan the
        whole table per staged row."""
        found = write.key_indexed.get((table.schema, table.name))
        if found is None:
            assert isinstance(self.tables, PostgresTables)
            found = any(
                btree and list(index.columns[: len(key)]) == list(key)
                for index, btree in self.tables.indexes(conn, table)
            )
            write.key_indexed[(table.schema, table.name)] = found
        return found
