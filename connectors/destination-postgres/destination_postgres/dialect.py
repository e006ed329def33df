"""PostgreSQL as a destination: typed tables, COPY loading, MERGE dedup, atomic table swaps.

- Names keep their case (identifiers are always quoted) and are cut to 63 bytes with a hash of
  the original name; colliding names get hash suffixes (:mod:`dbkit.destination.naming`).
- Roles: types :mod:`destination_postgres.types`, tables :mod:`destination_postgres.tables`, bulk
  loading :mod:`destination_postgres.loading`, merge :mod:`destination_postgres.dedup`; raw tables
  :mod:`destination_postgres.raw`.
- Types: Values PostgreSQL cannot hold (NUL in text or jsonb,
  timestamps outside 4713 BC..294246 AD, numbers past numeric's range, time zone offsets past
  15:59:59, JSON nested deeper than 10,000 levels) are NULL with a change, or repaired (NUL
  removed) with a ``TRUNCATED`` change.
- Loading: CSV ``COPY`` (:mod:`destination_postgres.copy`), ``_airbyte_meta`` and
  ``_airbyte_generation_id`` as column defaults set once per write (only rows with changes send
  their ``_airbyte_meta``).
- append_dedup: a session-private (TEMP) staging table, then one ``MERGE`` per batch
  (:mod:`destination_postgres.merge`), in the batch's transaction.
- overwrite / truncate refresh: ``DROP TABLE`` + ``ALTER TABLE ... RENAME`` in one transaction.
  Objects depending on the old table (views, foreign keys) stop the swap with a config_error
  naming them, unless ``drop_cascade`` is on (then they are dropped with it).
- Widening a column (``ALTER COLUMN ... TYPE``) obeys the same rule for views using the column.
- Concurrent writers of one table take turns (a transaction-level advisory lock per table,
  :meth:`~destination_postgres.tables.PostgresTables.lock_table`) to create, evolve, merge into or
  swap it; a unique violation in the system catalog (some other session's DDL racing ours) is a
  transient_error, one on the user's own constraint a config_error.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dbkit import ConfigError, DbkitError, TransientError
from dbkit.db import Capabilities, PostgresConnectionMixin
from dbkit.destination import (
    BulkLoader,
    DestinationDialect,
    MergeSql,
    TableOperations,
    TypeMapping,
    WriteOptions,
)
from destination_postgres.config import PostgresDestinationConfig
from destination_postgres.dedup import PostgresMerge
from destination_postgres.loading import PostgresBulkLoader
from destination_postgres.tables import PostgresTables
from destination_postgres.types import PostgresTypes

MAX_ZONE_SECONDS = 15 * 3600 + 59 * 60 + 59
JSONB_DEPTH = 10_000
"""Deepest JSON stored in a jsonb column: PostgreSQL's JSON parser recurses once per level and
stops at ``max_stack_depth`` (with the default 2 MB, near 13,000 levels of objects, 14,500 of
arrays). A deeper value is NULL with a change; should a server with a smaller stack still refuse
one, COPY names it and the loader stores NULL there (54001 is one of the refusals)."""


class PostgresDestinationDialect(PostgresConnectionMixin, DestinationDialect[PostgresDestinationConfig]):
    name = "postgres"
    capabilities = Capabilities(
        max_identifier_bytes=63,
        drop_cascade=True,
        alter_column_type=True,
        timestamp_years=(-4712, 294276),
        text_nul_bytes=False,
        json_nul_bytes=False,
        json_depth=JSONB_DEPTH,
        number_digits=(131072, 16383),
        max_zone_seconds=MAX_ZONE_SECONDS,
        background_loading=True,
    )
    type_mapping: ClassVar[type[TypeMapping]] = PostgresTypes
    table_operations: ClassVar[type[TableOperations]] = PostgresTables
    bulk_loader: ClassVar[type[BulkLoader]] = PostgresBulkLoader
    merge_sql: ClassVar[type[MergeSql]] = PostgresMerge

    def on_connect(self, dbapi_connection: Any) -> None:
        """The mixin's session settings, and no idle-in-transaction timeout (nor PostgreSQL 17's
        ``transaction_timeout``): with parallel loads a load sent beside another waits, idle in
        its transaction, for its turn to commit."""
        super().on_connect(dbapi_connection)
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('idle_in_transaction_session_timeout', '0', false)")
            cursor.execute(  # a parameter older servers do not know: set only where it exists
                "SELECT set_config('transaction_timeout', '0', false) "
                "WHERE current_setting('server_version_num')::int >= 170000"
            )
        dbapi_connection.commit()

    def default_namespace(self) -> str | None:
        schema: str = self.config.schema_name
        return schema

    def write_options(self) -> WriteOptions:
        return WriteOptions(
            drop_cascade=self.config.drop_cascade,
            hard_delete=self.config.cdc_deletion_mode != "soft_delete",
        )

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        found = super().classify_error(exc)
        if found is not None:
            return found
        state = getattr(exc, "sqlstate", None)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        constraint = getattr(getattr(exc, "diag", None), "constraint_name", None) or ""
        if state == "23505" and constraint.startswith("pg_"):
            # a unique index of the system catalog: another session created the same table,
            # index or schema at the same moment (PostgreSQL's IF NOT EXISTS does not see it)
            return TransientError(
                f"{self.describe_target()}: another session created the same database object at the "
                f"same moment ({first}); run the sync again",
                internal=repr(exc),
            )
        if state in ("23505", "23503", "23514"):  # unique, foreign key, check violations
            return ConfigError(
                f"{self.describe_target()}: a constraint of a destination table refuses the rows: {first}",
                internal=repr(exc),
            )
        return None
