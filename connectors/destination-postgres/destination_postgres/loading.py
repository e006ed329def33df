"""The bulk-loading role of destination-postgres: every part of a load through one CSV ``COPY``
(:mod:`destination_postgres.copy`); staging tables emptied with TRUNCATE."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from psycopg import sql

from dbkit.destination import GENERATION_ID, Batch, BulkLoader, WriteContext
from destination_postgres.copy import copy_batches
from destination_postgres.driver import driver, execute, ident


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
        if write.column_defaults.get((table.schema, table.name)) == (first.empty_meta, generation):
            meta_default = first.empty_meta  # rows without changes send neither column
            columns.remove(GENERATION_ID)
        cursor = driver(conn).cursor()
        copy_batches(cursor, ident(table), _chain(first, batches), columns, meta_default)

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        execute(conn, sql.SQL("TRUNCATE {}").format(ident(staging)))


def _chain(first: Batch, rest: Iterable[Batch]) -> Iterable[Batch]:
    yield first
    yield from rest
