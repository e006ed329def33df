"""The merge role of a destination: apply a loaded staging table to its target so each key
keeps only its newest row (the rules and the portable statements: :mod:`dbkit.destination.merge`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa

import dbkit.destination.merge as merge
from dbkit.db.dialect import Dialect
from dbkit.destination.table_ops import TableOperations
from dbkit.destination.write import WriteContext


class MergeSql:
    """Dedup statements. Stateless; made once per dialect (``dialect.merger``), with the
    dialect's table operations."""

    finds_absent_keys: ClassVar[bool] = False
    """True when :meth:`absent_keys` is implemented (the loader then holds a batch whole until
    it knows where each row goes, instead of streaming it into the staging table)."""

    def __init__(self, dialect: Dialect[Any], tables: TableOperations) -> None:
        self.dialect = dialect
        self.tables = tables

    def exact_key(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Called once per dedup stream at setup: whether the database compares the key
        columns' values exactly as their typed batch values compare (byte-equal text, equal
        integers, equal microseconds): then a batch that holds each key once by the
        connector's count is merged without ranking it. The default vouches for no column."""
        return False

    def absent_keys(
        self, conn: sa.Connection, target: sa.Table, keys: pa.Table, plan: merge.DedupPlan
    ) -> pa.BooleanArray | None:
        """Called per batch of a dedup stream whose key the connector compares exactly
        (:meth:`exact_key`), that holds each key once and has no tombstones to respect, before
        it is staged, in the batch's transaction and under the stream's table lock: for each
        row of ``keys`` (the batch's key columns), whether ``target`` holds no row with that key
        (False for a key with a NULL). Those rows cannot meet an older or newer stored row, so
        the loader appends them to ``target`` directly and stages and merges only the others.
        The database must keep another session from adding those keys until the transaction
        ends (e.g. a locking read on a unique key index). None (the default): stage every
        row."""
        return None

    def prepare_staging(
        self, conn: sa.Connection, staging: sa.Table, tombstones: sa.Table | None, plan: merge.DedupPlan
    ) -> None:
        """Called once per dedup stream, after the staging (and tombstone) table is made: the
        default indexes their key columns, so :meth:`dedup`'s per-key probes cost a lookup each
        and a batch's merge is linear in the batch, not in the target."""
        for table in (staging, tombstones):
            if table is not None and plan.key:  # (their names are short: "<name>_key" fits)
                self.tables.create_index(conn, table, f"{table.name}_key", list(plan.key))

    def dedup(
        self,
        conn: sa.Connection,
        target: sa.Table,
        staging: sa.Table,
        plan: merge.DedupPlan,
        write: WriteContext,
    ) -> None:
        """Called once per loaded batch of a dedup stream, in the batch's transaction: apply
        the staging table to ``target`` so each key keeps only its newest row (the rules and
        steps are in :mod:`dbkit.destination.merge`); an override must keep them, including
        the tombstones of ``plan.tombstones``."""
        if not plan.staged_unique:
            conn.execute(merge.dedupe_staging(staging, plan))
        if plan.tombstones is not None:
            conn.execute(merge.drop_buried(staging, plan.tombstones, plan))
        conn.execute(merge.delete_superseded(target, staging, plan))
        conn.execute(merge.insert_new(target, staging, plan))
        if plan.tombstones is not None:
            for statement in merge.record_deletions(staging, plan.tombstones, plan):
                conn.execute(statement)
