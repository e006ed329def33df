"""What a SQL destination connector tells the toolkit: types, names, bulk loading, table swaps.

The defaults are portable SQLAlchemy Core (``executemany`` inserts, DELETE + INSERT dedup,
DROP + RENAME swaps). A connector overrides what its database does better: COPY, MERGE, ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.types import UserDefinedType

from dbkit.db.dialect import Dialect
from dbkit.db.types import AirbyteType, schema_type
from dbkit.destination import merge
from dbkit.destination.batch import TYPECAST, Batch, Limits
from dbkit.destination.casting import MAX_ARROW_YEAR
from dbkit.destination.naming import NamingRules
from dbkit.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)

JSON_TYPES = frozenset({AirbyteType.OBJECT, AirbyteType.ARRAY, AirbyteType.UNKNOWN})


class ValueRefused(Exception):
    """The database refused one value of a batch that the casting rules accepted (a safety net:
    e.g. a user's column of a type the rules do not know). ``part`` is the index of the batch
    among those given to :meth:`DestinationDialect.load_batches`, ``row`` the row in it. The
    loader then stores NULL there with a change (``reason``) and loads the batch again."""

    def __init__(self, part: int, row: int, column: str, reason: str = TYPECAST, detail: str = "") -> None:
        super().__init__(f"value of column {column!r} refused: {detail}")
        self.part = part
        self.row = row
        self.column = column
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class KeyIndex:
    """An index of a table on plain columns, complete (not partial) and valid."""

    name: str
    columns: tuple[str, ...]
    unique: bool


class DeclaredType(UserDefinedType[Any]):
    """A column type rendered exactly as the database names it (``numeric``, ``DECIMAL_BLOB``),
    with no value processing: the loaders bind values already in the column's form."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"DeclaredType({self.name!r})"


class DestinationDialect(Dialect[ConfigT]):
    naming: ClassVar[NamingRules] = NamingRules()
    background_loading: ClassVar[bool] = False
    """Batches may be loaded on another thread while the consumer reads on (the dialect's
    connections may be used from a thread other than the one that opened them)."""

    # ------------------------------------------------------------------ names and types
    def default_namespace(self) -> str | None:
        """Where streams without a namespace go (the configured schema)."""
        value = getattr(self.config, "schema_name", None) or getattr(self.config, "schema", None)
        return value if isinstance(value, str) and value else None

    def limits(self) -> Limits:
        years = self.capabilities.timestamp_years
        return Limits(
            min_year=years[0],
            max_year=min(years[1], MAX_ARROW_YEAR),
            nul_in_text=self.capabilities.text_nul_bytes,
        )

    def airbyte_type(self, schema: Any) -> AirbyteType:
        """The Airbyte type a stream property's JSON schema gets a column for."""
        return schema_type(schema).airbyte_type

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        """The SQL type of a data column of this Airbyte type."""
        raise NotImplementedError

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        """SQL types of the four ``_airbyte_*`` metadata columns, by name."""
        raise NotImplementedError

    def raw_id_default(self) -> sa.TextClause | None:
        """A server default that fills ``_airbyte_raw_id`` (then the batch does not carry one)."""
        return None

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        """The Airbyte type a column of an existing table holds (for schema evolution)."""
        raise NotImplementedError

    def widen(self, current: AirbyteType, wanted: AirbyteType) -> AirbyteType:
        """The type a column must have to hold both its current values and the new ones.

        The rule (documented): the same type stays; integer widens to number; a number column
        takes integers; text and JSON columns take anything (values are stored as text / JSON);
        any other change makes the column text, which loses no value already stored.
        """
        if current == wanted:
            return current
        if {current, wanted} == {AirbyteType.INTEGER, AirbyteType.NUMBER}:
            return AirbyteType.NUMBER
        if current is AirbyteType.STRING or current in JSON_TYPES:
            return current
        return AirbyteType.STRING

    # ------------------------------------------------------------------ DDL
    def ensure_namespace(self, conn: sa.Connection, namespace: str | None) -> None:
        """Create the schema when it is missing. An existing one is left alone without asking:
        ``CREATE SCHEMA IF NOT EXISTS`` needs the CREATE privilege on the whole database, which a
        user loading into a schema they were given need not have."""
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
        preparer = conn.dialect.identifier_preparer
        type_sql = column.type.compile(dialect=conn.dialect)
        table_sql, column_sql = preparer.format_table(table), preparer.quote(column.name)
        conn.execute(sa.text(f"ALTER TABLE {table_sql} ADD COLUMN {column_sql} {type_sql}"))

    def alter_column_type(self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        raise ConfigError(
            f"column {column.name!r} of {table.fullname} needs a wider type, which {self.name} cannot alter"
        )

    def create_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        sa.Index(name, *(table.c[c] for c in columns), unique=unique).create(conn, checkfirst=True)

    def create_unique_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], replace: bool
    ) -> None:
        """A unique index; ``replace``: an index of that name exists and is replaced."""
        if replace:
            self.drop_index(conn, table, name)
        self.create_index(conn, table, name, columns, unique=True)

    def exact_key(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Whether the database compares the key columns' values exactly as their typed batch
        values compare (byte-equal text, equal integers, equal microseconds): then a batch that
        holds each key once by the connector's count is merged without ranking it. The default
        does not vouch for any column."""
        return False

    def drop_index(self, conn: sa.Connection, table: sa.Table, name: str) -> None:
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

    def drop_table(self, conn: sa.Connection, table: sa.Table, cascade: bool = False) -> None:
        preparer = conn.dialect.identifier_preparer
        suffix = " CASCADE" if cascade and self.capabilities.drop_cascade else ""
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {preparer.format_table(table)}{suffix}"))

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, cascade: bool) -> None:
        """Replace ``final`` by ``tmp`` in the current transaction (atomic where DDL is transactional)."""
        self.drop_table(conn, final, cascade)
        preparer = conn.dialect.identifier_preparer
        conn.execute(
            sa.text(f"ALTER TABLE {preparer.format_table(tmp)} RENAME TO {preparer.quote(final.name)}")
        )

    def create_staging(self, conn: sa.Connection, like: sa.Table, name: str) -> sa.Table:
        """A session-private table with the columns of ``like`` plus an arrival sequence."""
        columns = [
            sa.Column(c.name, c.type, server_default=_copy_default(c.server_default)) for c in like.columns
        ] + [sa.Column(merge.SEQ, sa.BigInteger)]
        staging = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        staging.create(conn)
        return staging

    def create_tombstones(
        self, conn: sa.Connection, like: sa.Table, name: str, columns: Sequence[str]
    ) -> sa.Table:
        """A session-private table with the named columns of ``like`` (the deletions of a write)."""
        table = sa.Table(
            name, sa.MetaData(), *(sa.Column(c, like.c[c].type) for c in columns), prefixes=["TEMPORARY"]
        )
        table.create(conn)
        return table

    def prepare_table(
        self, conn: sa.Connection, table: sa.Table, empty_meta: str, generation_id: int | None
    ) -> None:
        """Called once per write for each table batches are loaded into (final, temporary or
        staging), in a transaction, with the ``_airbyte_meta`` of a row without changes and the
        generation of this write (e.g. to make them column defaults the loader need not send)."""

    def collapse_duplicates(self, conn: sa.Connection, table: sa.Table, plan: merge.DedupPlan) -> bool:
        """Called at the start of a dedup write unless a unique index already holds the table
        to one row per key: keep only the newest row of each key. A table gets duplicates while
        it is not a dedup table (an append sync in between, rows a user inserted), and a dedup
        that merged into them would update every copy and keep them all. True when the table
        now holds each key once (the loader then makes its key index unique, and later writes
        skip this); the default leaves the table as it is and returns False."""
        return False

    def set_logger(self, log: Callable[[str, str], None]) -> None:
        """Where the dialect reports what it did (``log(level, message)``)."""
        self._log = log

    def log(self, level: str, message: str) -> None:
        log = getattr(self, "_log", None)
        if log is not None:
            log(level, message)

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        """Empty the staging table before a batch is loaded into it (in the batch's transaction)."""
        conn.execute(sa.delete(staging))

    # ------------------------------------------------------------------ loading
    def load_batches(self, conn: sa.Connection, table: sa.Table, batches: Iterable[Batch]) -> None:
        """Insert typed batches (the parts of one load) into ``table`` in the caller's
        transaction; the default calls :meth:`bulk_load` for each. May raise
        :class:`ValueRefused` (then the transaction is rolled back and the load repeated)."""
        for batch in batches:
            self.bulk_load(conn, table, batch.table)

    def bulk_load(self, conn: sa.Connection, table: sa.Table, batch: pa.Table) -> None:
        """Insert a typed batch; the default converts it to rows and uses ``executemany``."""
        columns = [
            self.to_python(batch.column(i), batch.schema.field(i).type) for i in range(batch.num_columns)
        ]
        rows = [dict(zip(batch.column_names, values, strict=True)) for values in zip(*columns, strict=True)]
        if rows:
            conn.execute(table.insert(), rows)

    def to_python(self, column: pa.ChunkedArray, arrow_type: pa.DataType) -> list[Any]:
        """Values of one batch column as the driver wants them."""
        values: list[Any] = column.to_pylist()
        return values

    def dedup(self, conn: sa.Connection, target: sa.Table, staging: sa.Table, plan: merge.DedupPlan) -> None:
        """Apply a loaded staging table to ``target`` so each key keeps only its newest row
        (the rules and steps are in :mod:`dbkit.destination.merge`); an override must keep them,
        including the tombstones of ``plan.tombstones``."""
        if not plan.staged_unique:
            conn.execute(merge.dedupe_staging(staging, plan))
        if plan.tombstones is not None:
            conn.execute(merge.drop_buried(staging, plan.tombstones, plan))
        conn.execute(merge.delete_superseded(target, staging, plan))
        conn.execute(merge.insert_new(target, staging, plan))
        if plan.tombstones is not None:
            for statement in merge.record_deletions(staging, plan.tombstones, plan):
                conn.execute(statement)


def _copy_default(default: Any) -> sa.DefaultClause | None:
    if isinstance(default, sa.DefaultClause):
        return sa.DefaultClause(default.arg)
    return None
