"""PostgreSQL as a destination: typed tables, COPY loading, MERGE dedup, atomic table swaps.

- Names keep their case (identifiers are always quoted) and are cut to 63 bytes with a hash of
  the original name; colliding names get hash suffixes (:mod:`dbkit.destination.naming`).
- Types: :mod:`destination_postgres.types`. Values PostgreSQL cannot hold (NUL in text or jsonb,
  timestamps outside 4713 BC..294246 AD, numbers past numeric's range, time zone offsets past
  15:59:59) are NULL with a change, or repaired (NUL removed) with a ``TRUNCATED`` change.
- Loading: CSV ``COPY`` (:mod:`destination_postgres.copy`), ``_airbyte_meta`` and
  ``_airbyte_generation_id`` as column defaults set once per write (only rows with changes send
  their ``_airbyte_meta``).
- append_dedup: a session-private (TEMP) staging table, then one ``MERGE`` per batch
  (:mod:`destination_postgres.merge`), in the batch's transaction.
- overwrite / truncate refresh: ``DROP TABLE`` + ``ALTER TABLE ... RENAME`` in one transaction.
  Objects depending on the old table (views, foreign keys) stop the swap with a config_error
  naming them, unless ``drop_cascade`` is on (then they are dropped with it).
- Widening a column (``ALTER COLUMN ... TYPE``) obeys the same rule for views using the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

from dbkit.db.dialect import Capabilities
from dbkit.db.postgres import PostgresConnectionMixin
from dbkit.db.types import AirbyteType
from dbkit.destination import merge as generic
from dbkit.destination.batch import EXTRACTED_AT, GENERATION_ID, META, RAW_ID, Batch, Limits
from dbkit.destination.casting import MAX_ARROW_YEAR, json_text
from dbkit.destination.dialect import DestinationDialect, KeyIndex, ValueRefused
from dbkit.destination.loader import MAX_REFUSED_VALUES
from dbkit.destination.naming import NamingRules
from dbkit.destination.schema import index_name
from dbkit.errors import ConfigError, DbkitError, SystemFailure
from destination_postgres import merge
from destination_postgres.config import PostgresDestinationConfig
from destination_postgres.copy import copy_batches
from destination_postgres.raw import DATA, RAW_COLUMNS
from destination_postgres.types import META_TYPES, PgType, airbyte_type, column_type, stored_type

MAX_ZONE_SECONDS = 15 * 3600 + 59 * 60 + 59
_DEPENDENT_VIEWS = """
SELECT DISTINCT vn.nspname, v.relname, v.relkind
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_namespace vn ON vn.oid = v.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = %(oid)s AND v.oid <> %(oid)s AND (%(attnum)s::int IS NULL OR d.refobjsubid = %(attnum)s)
ORDER BY 1, 2
"""
_REFERENCING_KEYS = """
SELECT n.nspname, c.relname, con.conname
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND con.confrelid = %(oid)s AND con.conrelid <> %(oid)s
ORDER BY 1, 2, 3
"""


class PostgresDestinationDialect(PostgresConnectionMixin, DestinationDialect[PostgresDestinationConfig]):
    name = "postgres"
    capabilities = Capabilities(
        max_identifier_bytes=63,
        merge_statement=True,
        drop_cascade=True,
        alter_column_type=True,
        max_columns=1600,
        timestamp_years=(-4712, 294276),
        text_nul_bytes=False,
    )
    naming: ClassVar[NamingRules] = NamingRules(max_bytes=63)
    background_loading: ClassVar[bool] = True

    def __init__(self, config: PostgresDestinationConfig) -> None:
        super().__init__(config)
        self._defaults: dict[tuple[str | None, str], tuple[str, int | None]] = {}
        self._tombstones_used: set[str] = set()
        self._key_indexed: dict[tuple[str | None, str], bool] = {}

    # ------------------------------------------------------------------ names and types
    def limits(self) -> Limits:
        low, high = self.capabilities.timestamp_years
        return Limits(
            min_year=low,
            max_year=min(high, MAX_ARROW_YEAR),
            nul_in_text=False,
            nul_in_json=False,
            number_digits=(131072, 16383),
            max_zone_seconds=MAX_ZONE_SECONDS,
        )

    def airbyte_type(self, schema: Any) -> AirbyteType:
        return airbyte_type(schema)

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        return column_type(airbyte_type)

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        return {name: PgType(type_name) for name, type_name in META_TYPES.items()}

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        name = sql_type.name if isinstance(sql_type, PgType) else str(sql_type.compile(dialect=_PG))
        return stored_type(name)

    def existing_columns(
        self, conn: sa.Connection, namespace: str | None, name: str
    ) -> dict[str, sa.types.TypeEngine[Any]] | None:
        oid = self._oid(conn, namespace, name)
        if oid is None:
            return None
        rows = conn.execute(
            sa.text(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = :oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"oid": oid},
        ).all()
        return {row[0]: PgType(row[1]) for row in rows}

    def _oid(self, conn: sa.Connection, namespace: str | None, name: str) -> int | None:
        row = conn.execute(
            sa.text(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :name AND c.relkind IN ('r', 'p') AND "
                "(n.nspname = :ns OR (:ns IS NULL AND n.oid = pg_my_temp_schema()))"
            ),
            {"name": name, "ns": namespace},
        ).first()
        return None if row is None else int(row[0])

    # ------------------------------------------------------------------ DDL
    def alter_column_type(self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        """``ALTER COLUMN ... TYPE new USING column::new`` (every value has a text / numeric
        form); views using the column are dropped first when ``drop_cascade`` is on, else they
        stop the sync with a config_error naming them."""
        oid = self._oid(conn, table.schema, table.name)
        if oid is not None:
            attnum = conn.execute(
                sa.text("SELECT attnum FROM pg_attribute WHERE attrelid = :oid AND attname = :name"),
                {"oid": oid, "name": column.name},
            ).scalar()
            views = self._dependent_views(conn, oid, attnum)
            if views:
                shown = ", ".join(_shown(v[0], v[1]) for v in views)
                if not self.config.drop_cascade:
                    raise ConfigError(
                        f"column {column.name!r} of {_shown(table.schema, table.name)} must change type "
                        f"(to hold the stream's values), and view(s) {shown} use it: drop them, or set "
                        "drop_cascade to true to let the sync drop them"
                    )
                self._drop_views(conn, views)
                self.log("WARN", f"dropped view(s) {shown} to change the type of column {column.name!r}")
        type_sql = column.type.compile(dialect=conn.dialect)
        statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
            _ident(table),
            sql.Identifier(column.name),
            sql.SQL(type_sql),
            sql.Identifier(column.name),
            sql.SQL(type_sql),
        )
        self._execute(conn, statement)

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, cascade: bool) -> None:
        """Replace ``final`` by ``tmp`` in the caller's transaction: DROP + RENAME, and the key
        index renamed after the final table (so the next refresh's index never collides)."""
        oid = self._oid(conn, final.schema, final.name)
        if oid is not None:
            blockers = self._dependents(conn, oid)
            if blockers and not cascade:
                raise ConfigError(
                    f"cannot replace table {_shown(final.schema, final.name)} with the refreshed data: "
                    f"{', '.join(blockers)} depend(s) on it. Drop them, or set drop_cascade to true to let "
                    "the sync drop them with the table"
                )
            if blockers:
                self.log("WARN", f"dropping {', '.join(blockers)} with {_shown(final.schema, final.name)}")
            drop = sql.SQL("DROP TABLE {}{}").format(_ident(final), sql.SQL(" CASCADE" if cascade else ""))
            try:
                self._execute(conn, drop)
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == "2BP01":  # dependent objects still exist
                    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or str(exc.orig)
                    raise ConfigError(
                        f"cannot replace table {_shown(final.schema, final.name)}: {detail}. Drop those "
                        "objects, or set drop_cascade to true",
                        internal=repr(exc.orig),
                    ) from None
                raise
        self._execute(
            conn, sql.SQL("ALTER TABLE {} RENAME TO {}").format(_ident(tmp), sql.Identifier(final.name))
        )
        wanted = index_name(final.name, "key", "", self.naming)
        prefix = index_name(tmp.name, "key", "", self.naming).rsplit("_", 1)[0] + "_"
        for (index,) in conn.execute(
            sa.text(
                "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
                "WHERE t.relname = :name AND n.nspname = :ns"
            ),
            {"name": final.name, "ns": final.schema},
        ).all():
            if index.startswith(prefix) and index != wanted:
                rename = sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    _qualified(final.schema, index),
                    sql.Identifier(wanted),
                )
                self._execute(conn, rename)

    def _dependents(self, conn: sa.Connection, oid: int) -> list[str]:
        views = [f"view {_shown(v[0], v[1])}" for v in self._dependent_views(conn, oid, None)]
        keys = [
            f"foreign key {row[2]} of {_shown(row[0], row[1])}"
            for row in self._query(conn, _REFERENCING_KEYS, {"oid": oid})
        ]
        return views + keys

    def _dependent_views(
        self, conn: sa.Connection, oid: int, attnum: int | None
    ) -> list[tuple[str, str, str]]:
        rows = self._query(conn, _DEPENDENT_VIEWS, {"oid": oid, "attnum": attnum})
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def _drop_views(self, conn: sa.Connection, views: Sequence[tuple[str, str, str]]) -> None:
        for schema, name, kind in views:
            what = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
            self._execute(
                conn,
                sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(what), sql.Identifier(schema, name)),
            )

    def create_staging(self, conn: sa.Connection, like: sa.Table, name: str) -> sa.Table:
        """``CREATE TEMPORARY TABLE name (LIKE target)`` plus the arrival order column: private
        to the session, not WAL-logged, gone with the session whatever happens."""
        self._execute(
            conn,
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}, {} bigint)").format(
                sql.Identifier(name), _ident(like), sql.Identifier(generic.SEQ)
            ),
        )
        columns = [sa.Column(c.name, c.type) for c in like.columns] + [sa.Column(generic.SEQ, sa.BigInteger)]
        return sa.Table(name, sa.MetaData(), *columns)

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        self._execute(conn, sql.SQL("TRUNCATE {}").format(_ident(staging)))

    def prepare_table(
        self, conn: sa.Connection, table: sa.Table, empty_meta: str, generation_id: int | None
    ) -> None:
        """Make the ``_airbyte_meta`` of a row without changes and this write's generation the
        column defaults, so COPY sends neither for most rows (a catalog-only change)."""
        if META not in table.c or GENERATION_ID not in table.c:
            return
        generation = sql.SQL("NULL") if generation_id is None else sql.Literal(generation_id)
        self._execute(
            conn,
            sql.SQL(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}::jsonb, ALTER COLUMN {} SET DEFAULT {}"
            ).format(
                _ident(table),
                sql.Identifier(META),
                sql.Literal(empty_meta),
                sql.Identifier(GENERATION_ID),
                generation,
            ),
        )
        self._defaults[(table.schema, table.name)] = (empty_meta, generation_id)

    def collapse_duplicates(self, conn: sa.Connection, table: sa.Table, plan: generic.DedupPlan) -> bool:
        # no writer may add a duplicate between this check and the unique index the loader then
        # makes (readers go on); one scan (of the key index, usually) to find out; the DELETE
        # only when needed
        self._execute(conn, sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(_ident(table)))
        found = self._query(conn, merge.has_duplicates(_ident(table), plan), {})
        if not (found and found[0][0]):
            return True
        deleted = self._execute(conn, merge.collapse_duplicates(_ident(table), plan))
        if deleted:
            self.log(
                "INFO",
                f"{_shown(table.schema, table.name)} becomes a dedup table: {deleted} older row(s) of keys "
                "held more than once were removed",
            )
        return True

    def key_indexes(self, conn: sa.Connection, table: sa.Table) -> list[KeyIndex]:
        return [index for index, _ in self._indexes(conn, table)]

    def _indexes(self, conn: sa.Connection, table: sa.Table) -> list[tuple[KeyIndex, bool]]:
        """The table's valid, complete indexes on plain columns, each with whether it is a btree."""
        rows = self._query(conn, _KEY_INDEXES, {"schema": table.schema or "public", "name": table.name})
        return [(KeyIndex(str(row[1]), tuple(row[0]), bool(row[2])), bool(row[3])) for row in rows]

    def create_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        self._execute(
            conn,
            sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.SQL("UNIQUE " if unique else ""),
                sql.Identifier(name),
                _ident(table),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            ),
        )

    def create_unique_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], replace: bool
    ) -> None:
        """Built under another name and then renamed when it replaces an index: dropping the old
        one first would lock readers out of the table for the whole build."""
        if not replace:
            self.create_index(conn, table, name, columns, unique=True)
            return
        building = index_name(name, "unique", "", self.naming)
        self.create_index(conn, table, building, columns, unique=True)
        self.drop_index(conn, table, name)
        rename = sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            _qualified(table.schema, building), sql.Identifier(name)
        )
        self._execute(conn, rename)

    def exact_key(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Plain integer, text, boolean, date and timestamp columns (no precision) with a
        deterministic collation; not uuid, citext, char(n), timestamp(0) and the like, whose
        equality is not that of their text."""
        rows = self._query(conn, _KEY_COLUMN_TYPES, {"schema": table.schema or "public", "name": table.name})
        exact = {str(row[0]) for row in rows if row[1] in _EXACT_TYPES and row[2]}
        return bool(key) and all(k in exact for k in key)

    def drop_index(self, conn: sa.Connection, table: sa.Table, name: str) -> None:
        self._execute(conn, sql.SQL("DROP INDEX IF EXISTS {}").format(_qualified(table.schema, name)))

    # ------------------------------------------------------------------ loading
    def load_batches(self, conn: sa.Connection, table: sa.Table, batches: Iterable[Batch]) -> None:
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        columns = [c for c in first.table.column_names if c in table.c]
        generations = first.table.column(GENERATION_ID)
        generation = generations[0].as_py() if len(generations) else None
        meta_default = None
        if self._defaults.get((table.schema, table.name)) == (first.empty_meta, generation):
            meta_default = first.empty_meta  # rows without changes send neither column
            columns.remove(GENERATION_ID)
        cursor = self._driver(conn).cursor()
        copy_batches(cursor, _ident(table), _chain(first, batches), columns, meta_default)

    def dedup(
        self, conn: sa.Connection, target: sa.Table, staging: sa.Table, plan: generic.DedupPlan
    ) -> None:
        columns = list(plan.columns) or [c.name for c in target.columns]
        tomb = plan.tombstones
        tomb_sql = _ident(tomb) if tomb is not None and tomb.name in self._tombstones_used else None
        # probe the key index per staged row, when there is a usable one (the tombstone table has
        # none: leave that plan alone)
        planned = tomb_sql is None and self._key_index_usable(conn, target, plan.key)
        if planned:
            self._execute(conn, sql.SQL(_MERGE_SETTINGS))
        self._execute(conn, merge.merge_statement(_ident(target), _ident(staging), plan, columns, tomb_sql))
        if planned:
            self._execute(conn, sql.SQL(_MERGE_RESET))
        if tomb is not None and plan.deleted_at is not None:
            has_deletions = conn.execute(
                sa.select(sa.literal(1))
                .select_from(staging)
                .where(staging.c[plan.deleted_at].is_not(None))
                .limit(1)
            ).first()
            if has_deletions:
                self._execute(conn, merge.record_deletions(_ident(staging), plan, _ident(tomb), columns))
                self._tombstones_used.add(tomb.name)

    # ------------------------------------------------------------------ raw tables
    def ensure_raw_table(self, conn: sa.Connection, namespace: str | None, name: str) -> sa.Table:
        """Create a raw table (:mod:`destination_postgres.raw`) unless it exists; an existing
        table without the raw columns stops the sync with a config_error."""
        types = {**META_TYPES, DATA: "jsonb"}
        required = {RAW_ID, EXTRACTED_AT, META, DATA}
        existing = self.existing_columns(conn, namespace, name)
        ident = _qualified(namespace, name)
        if existing is None:
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}{}").format(
                    sql.Identifier(c), sql.SQL(types[c]), sql.SQL(" NOT NULL" if c in required else "")
                )
                for c in RAW_COLUMNS
            )
            self._execute(conn, sql.SQL("CREATE TABLE {} ({})").format(ident, columns))
        else:
            missing = [c for c in RAW_COLUMNS if c not in existing]
            if missing:
                raise ConfigError(
                    f"table {_shown(namespace, name)} should be a raw table (raw_tables is on) but it lacks "
                    f"the column(s) {', '.join(missing)}: rename or drop it, or turn raw_tables off"
                )
        return sa.Table(
            name, sa.MetaData(), *(sa.Column(c, PgType(types[c])) for c in RAW_COLUMNS), schema=namespace
        )

    def load_raw(self, conn: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
        """COPY raw rows in the caller's transaction (under a savepoint): a record whose JSON
        PostgreSQL still refuses is stored as its exact text, a JSON string."""
        cursor = self._driver(conn).cursor()
        for _ in range(MAX_REFUSED_VALUES + 1):
            try:
                with conn.begin_nested():
                    copy_batches(cursor, _ident(table), [Batch(rows, 0)], rows.column_names, None)
                return
            except ValueRefused as refused:
                if refused.column != DATA:
                    raise SystemFailure(
                        f"{_shown(table.schema, table.name)}: PostgreSQL refused a value of column "
                        f"{refused.column!r} of a raw row ({refused.detail})"
                    ) from None
                index = rows.column_names.index(DATA)
                texts = rows.column(index).to_pylist()
                texts[refused.row] = json_text(texts[refused.row])
                rows = rows.set_column(index, DATA, pa.array(texts, pa.string()))
                self.log(
                    "WARN",
                    f"{_shown(table.schema, table.name)}: PostgreSQL refused a record's JSON "
                    f"({refused.detail}); its text is stored as a JSON string",
                )
        raise SystemFailure(
            f"{_shown(table.schema, table.name)}: PostgreSQL refused the JSON of more than "
            f"{MAX_REFUSED_VALUES} records of one batch"
        )

    def _key_index_usable(self, conn: sa.Connection, table: sa.Table, key: Sequence[str]) -> bool:
        """Whether a valid, complete (not partial), plain-column btree index of ``table`` starts
        with ``key``: what the forced MERGE plan probes. Without one (a user's partial index was
        taken for the key's), forcing that plan would scan the whole table per staged row."""
        found = self._key_indexed.get((table.schema, table.name))
        if found is None:
            found = any(
                btree and list(index.columns[: len(key)]) == list(key)
                for index, btree in self._indexes(conn, table)
            )
            self._key_indexed[(table.schema, table.name)] = found
        return found

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _driver(conn: sa.Connection) -> psycopg.Connection[Any]:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        return driver

    def _execute(self, conn: sa.Connection, statement: sql.Composed | sql.SQL) -> int:
        """Run a psycopg-composed statement in the connection's transaction; the row count."""
        with self._driver(conn).cursor() as cursor:
            cursor.execute(statement)
            return max(cursor.rowcount, 0)

    def _query(
        self, conn: sa.Connection, text: str | sql.Composed, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        with self._driver(conn).cursor() as cursor:
            cursor.execute(text, params)
            return list(cursor.fetchall())

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        found = super().classify_error(exc)
        if found is not None:
            return found
        state = getattr(exc, "sqlstate", None)
        if state in ("23505", "23503", "23514"):  # unique, foreign key, check violations
            first = str(exc).strip().splitlines()[0]
            return ConfigError(
                f"{self.describe_target()}: a constraint of a destination table refuses the rows: {first}",
                internal=repr(exc),
            )
        return None


# For the MERGE of a batch: probe the target's key index once per staged row instead of
# hashing or sorting the whole target (a full scan of it per batch: a load that slows down as
# the table grows); sort the batch in memory; no JIT compilation (~30 ms per statement).
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
_KEY_INDEXES = """
    SELECT array(SELECT a.attname::text
                   FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  ORDER BY k.n),
           ic.relname, i.indisunique, am.amname = 'btree'
      FROM pg_index AS i
      JOIN pg_class AS ic ON ic.oid = i.indexrelid
      JOIN pg_am AS am ON am.oid = ic.relam
      JOIN pg_class AS t ON t.oid = i.indrelid
      JOIN pg_namespace AS n ON n.oid = t.relnamespace
     WHERE n.nspname = %(schema)s AND t.relname = %(name)s
       AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
"""

_PG: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


def _qualified(schema: str | None, name: str) -> sql.Identifier:
    """``schema.name`` quoted (``name`` alone without a schema)."""
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _ident(table: sa.Table) -> sql.Identifier:
    return _qualified(table.schema, table.name)


def _shown(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _chain(first: Batch, rest: Iterable[Batch]) -> Iterable[Batch]:
    yield first
    yield from rest
