"""The table-operations role of a destination: schemas, columns, indexes, the write's own
tables (temporary, staging, tombstones) and table swaps. The defaults are portable (SQLAlchemy
Core and the inspector); every method runs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dbkit.db.dialect import Dialect
from dbkit.destination.merge import SEQ, DedupPlan
from dbkit.destination.naming import NamingRules
from dbkit.destination.write import WriteContext
from dbkit.errors import ConfigError


@dataclass(frozen=True)
class KeyIndex:
    """An index of a table on plain columns, complete (not partial) and valid."""

    name: str
    columns: tuple[str, ...]
    unique: bool


class TableOperations:
    """DDL and catalog questions. Stateless; made once per dialect (``dialect.tables``)."""

    def __init__(self, dialect: Dialect[Any]) -> None:
        self.dialect = dialect
        self.capabilities = dialect.capabilities
        self.naming = NamingRules.of(dialect.capabilities)

    # ------------------------------------------------------------------ writers of one table
    def lock_table(self, conn: sa.Connection, namespace: str | None, name: str) -> None:
        """Called in a transaction, before it creates, evolves, merges into, swaps or deletes
        from a stream's table ``namespace.name`` (the final table's name, also for its temporary
        table, whether or not it exists yet): wait until no other writer holds that table, and
        hold it until the transaction ends, so that two writes into one table take turns instead
        of failing on each other's CREATE TABLE or MERGE. A transaction locks one table at most
        (no two writers can wait on each other), and other tables are not held up. The default
        does nothing: right for a database whose writers are serial anyway (SQLite). A database
        whose locks outlive a transaction (MySQL's ``GET_LOCK``) releases it in
        :meth:`unlock_table`."""

    def unlock_table(self, conn: sa.Connection, namespace: str | None, name: str) -> None:
        """Called once after each transaction that called :meth:`lock_table` ended (committed or
        rolled back), outside any transaction. The default does nothing."""

    # ------------------------------------------------------------------ schemas and columns
    def ensure_namespace(self, conn: sa.Connection, namespace: str | None) -> None:
        """Called per table set up (and by ``check``): create the schema when it is missing. An
        existing one is left alone without asking: ``CREATE SCHEMA IF NOT EXISTS`` needs the
        CREATE privilege on the whole database, which a user loading into a schema they were
        given need not have."""
        if namespace is None or not self.capabilities.namespaces:
            return
        if namespace not in sa.inspect(conn).get_schema_names():
            conn.execute(sa.schema.CreateSchema(namespace, if_not_exists=True))

    def existing_columns(
        self, conn: sa.Connection, namespace: str | None, name: str
    ) -> dict[str, sa.types.TypeEngine[Any]] | None:
        """Column name -> reflected type of an existing table, or None when it does not exist."""
        inspector = sa.inspect(conn)
        if not inspector.has_table(name, schema=namespace):
            return None
        return {c["name"]: c["type"] for c in inspector.get_columns(name, schema=namespace)}

    def add_column(self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        """Called per column a stream gained: add it (nullable) to the existing table."""
        preparer = conn.dialect.identifier_preparer
        type_sql = column.type.compile(dialect=conn.dialect)
        table_sql, column_sql = preparer.format_table(table), preparer.quote(column.name)
        conn.execute(sa.text(f"ALTER TABLE {table_sql} ADD COLUMN {column_sql} {type_sql}"))

    def alter_column_type(
        self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any], write: WriteContext
    ) -> None:
        """Called per column that must widen (only when ``capabilities.alter_column_type``):
        give it the type ``column.type``, keeping every value. The default refuses."""
        raise ConfigError(
            f"column {column.name!r} of {table.fullname} needs a wider type, which "
            f"{self.dialect.name} cannot alter"
        )

    # ------------------------------------------------------------------ indexes
    def create_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        """Create an index unless one of that name exists."""
        sa.Index(name, *(table.c[c] for c in columns), unique=unique).create(conn, checkfirst=True)

    def create_unique_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], replace: bool
    ) -> None:
        """A unique index; ``replace``: an index of that name exists and is replaced."""
        if replace:
            self.drop_index(conn, table, name)
        self.create_index(conn, table, name, columns, unique=True)

    def drop_index(self, conn: sa.Connection, table: sa.Table, name: str) -> None:
        """Drop the index of that name, if it exists."""
        sa.Index(name, *table.c).drop(conn, checkfirst=True)

    def key_indexes(self, conn: sa.Connection, table: sa.Table) -> list[KeyIndex]:
        """The table's complete indexes on plain columns, the primary key among them (the
        default asks SQLAlchemy's inspector)."""
        inspector = sa.inspect(conn)
        found = []
        primary = inspector.get_pk_constraint(table.name, schema=table.schema)
        if primary.get("constrained_columns"):
            found.append(KeyIndex(primary.get("name") or "", tuple(primary["constrained_columns"]), True))
        for index in inspector.get_indexes(table.name, schema=table.schema):
            columns = index["column_names"]
            options = index.get("dialect_options") or {}
            if any(c is None for c in columns) or any(k.endswith("_where") for k in options):
                continue  # an expression or a partial index
            found.append(KeyIndex(index["name"] or "", tuple(str(c) for c in columns), bool(index["unique"])))
        return found

    def concurrent_appends(self, conn: sa.Connection, table: sa.Table) -> bool:
        """Whether two transactions may append rows to ``table`` at once, neither waiting for a
        lock the other holds: no unique index or constraint of any kind (partial, on expressions,
        still being built), no trigger, no rule. The default, not knowing, says no (loads into
        the table then run one at a time)."""
        return False

    # ------------------------------------------------------------------ whole tables
    def drop_table(self, conn: sa.Connection, table: sa.Table, cascade: bool = False) -> None:
        """Drop the table if it exists (with CASCADE when asked and the database has it)."""
        preparer = conn.dialect.identifier_preparer
        suffix = " CASCADE" if cascade and self.capabilities.drop_cascade else ""
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {preparer.format_table(table)}{suffix}"))

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, write: WriteContext) -> None:
        """Called once when a refreshed stream completes: replace ``final`` by ``tmp`` in the
        current transaction (atomic where DDL is transactional); dependent objects go only with
        ``write.options.drop_cascade``."""
        self.drop_table(conn, final, write.options.drop_cascade)
        preparer = conn.dialect.identifier_preparer
        conn.execute(
            sa.text(f"ALTER TABLE {preparer.format_table(tmp)} RENAME TO {preparer.quote(final.name)}")
        )

    def create_staging(self, conn: sa.Connection, like: sa.Table, name: str) -> sa.Table:
        """Called once per dedup stream: a session-private table with the columns of ``like``
        plus an arrival sequence (``SEQ``)."""
        columns = [
            sa.Column(c.name, c.type, server_default=_copy_default(c.server_default)) for c in like.columns
        ] + [sa.Column(SEQ, sa.BigInteger)]
        staging = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        staging.create(conn)
        return staging

    def create_tombstones(
        self, conn: sa.Connection, like: sa.Table, name: str, columns: Sequence[str]
    ) -> sa.Table:
        """Called once per hard-delete CDC dedup stream: a session-private table with the named
        columns of ``like`` (the deletions of a write)."""
        table = sa.Table(
            name, sa.MetaData(), *(sa.Column(c, like.c[c].type) for c in columns), prefixes=["TEMPORARY"]
        )
        table.create(conn)
        return table

    def prepare_table(
        self,
        conn: sa.Connection,
        table: sa.Table,
        empty_meta: str,
        generation_id: int | None,
        write: WriteContext,
    ) -> None:
        """Called once per write for each table batches are loaded into (final, temporary or
        staging), in a transaction, with the ``_airbyte_meta`` of a row without changes and the
        generation of this write (e.g. to make them column defaults the loader need not send,
        noted in ``write.column_defaults``). The default does nothing."""

    def collapse_duplicates(
        self, conn: sa.Connection, table: sa.Table, plan: DedupPlan, write: WriteContext
    ) -> bool:
        """Called at the start of a dedup write unless a unique index already holds the table
        to one row per key: keep only the newest row of each key. A table gets duplicates while
        it is not a dedup table (an append sync in between, rows a user inserted), and a dedup
        that merged into them would update every copy and keep them all. True when the table
        now holds each key once (the loader then makes its key index unique, and later writes
        skip this); the default leaves the table as it is and returns False."""
        return False


def _copy_default(default: Any) -> sa.DefaultClause | None:
    if isinstance(default, sa.DefaultClause):
        return sa.DefaultClause(default.arg)
    return None
