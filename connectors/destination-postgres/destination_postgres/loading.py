"""The bulk-loading role of destination-postgres: every part of a load through one CSV ``COPY``
(:mod:`destination_postgres.copy`); staging tables emptied with TRUNCATE. Rows without changes
leave ``_airbyte_meta`` and ``_airbyte_generation_id`` to the column defaults this write set,
while they are still its own (a concurrent write into the same table may have set others)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from psycopg import sql

from dbkit.destination import GENERATION_ID, Batch, BulkLoader, WriteContext
from destination_postgres.copy import copy_batches
from destination_postgres.driver import driver, execute, ident
from destination_postgres.tables import metadata_defaults


class PostgresBulkLoader(BulkLoader):
    """The bulk-loading role of destination-postgres (see the module doc)."""

    def load_batches(
        self, conn: sa.Connection, table: sa.Table, batches: Iterable[Batch], write: WriteContext
    ) -> None:
        """One COPY; when this write made the batch's empty ``_airbyte_meta`` and generation the
        table's column defaults (``write.column_defaults``), rows without changes send neither."""
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        columns = [c for c in first.table.column_names if c in table.c]
        generations = first.table.column(GENERATION_ID)
        generation = generations[0].as_py() if len(generations) else None
        meta_default = None
        if write.column_defaults.get((table.schema, table.name)) == (
            first.empty_meta,
            generation,
        ) and self._defaults_hold(conn, table, write):
            meta_default = first.empty_meta  # rows without changes send neither column
            columns.remove(GENERATION_ID)
        cursor = driver(conn).cursor()
        copy_batches(cursor, ident(table), _chain(first, batches), columns, meta_default)

    def _defaults_hold(self, conn: sa.Connection, table: sa.Table, write: WriteContext) -> bool:
        """The column defaults this write set are still the table's, and stay so until the
        transaction ends: the ROW EXCLUSIVE lock (which COPY takes anyway) is taken first, and
        it keeps out the ``ALTER TABLE ... SET DEFAULT`` of a concurrent write. Once another
        write's defaults are found, this write sends both columns for the rest of its batches."""
        key = (table.schema, table.name)
        if table.schema is None:  # session-private: no one else can change it
            return True
        expected = write.defaults_as_set.get(key)
        if expected is None:
            return False
        execute(conn, sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(ident(table)))
        if metadata_defaults(conn, table) == expected:
            return True
        write.defaults_as_set[key] = None
        write.log(
            "INFO",
            f"{table.schema}.{table.name}: another write changed the column defaults this write set; "
            "its rows now send _airbyte_meta and _airbyte_generation_id",
        )
        return False

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        execute(conn, sql.SQL("TRUNCATE {}").format(ident(staging)))


def _chain(first: Batch, rest: Iterable[Batch]) -> Iterable[Batch]:
    yield first
    yield from rest
