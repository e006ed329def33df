"""The table-operations role of destination-postgres: catalog reads by oid, column widening and
table swaps that name (or, with ``drop_cascade``, drop) the objects in their way, TEMP staging
tables, column defaults for COPY, key indexes built without locking readers out, and writers of
one table taking turns (a transaction-level advisory lock per table)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from psycopg import sql

from dbkit import ConfigError
from dbkit.destination import (
    GENERATION_ID,
    META,
    SEQ,
    DeclaredType,
    DedupPlan,
    KeyIndex,
    TableOperations,
    WriteContext,
    index_name,
)
from destination_postgres import merge
from destination_postgres.driver import execute, ident, qualified, query, shown, table_oid

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
_APPEND_CONFLICTS = """
    WITH rels AS (SELECT %(oid)s::oid AS relid UNION SELECT relid FROM pg_partition_tree(%(oid)s::oid))
    SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid IN (SELECT relid FROM rels)
                      AND (indisunique OR indisexclusion))
        OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM rels) AND NOT tgisinternal)
        OR EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class IN (SELECT relid FROM rels))
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


_DEFAULTS = """
SELECT a.attname, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND a.attname IN (%(meta)s, %(generation)s)
   AND NOT a.attisdropped
 ORDER BY 1
"""


def metadata_defaults(conn: sa.Connection, table: sa.Table) -> tuple[tuple[Any, ...], ...]:
    """The ``_airbyte_meta`` and ``_airbyte_generation_id`` defaults of a table as PostgreSQL
    shows them (``pg_get_expr``)."""
    params = {
        "schema": table.schema or "public",
        "name": table.name,
        "meta": META,
        "generation": GENERATION_ID,
    }
    return tuple(tuple(row) for row in query(conn, _DEFAULTS, params))


def table_lock_key(namespace: str | None, name: str) -> int:
    """The advisory lock key of a table: 64 bits of a hash of its schema and name (the same in
    every process; two tables sharing a key would only take turns needlessly)."""
    digest = hashlib.blake2b(f"dbkit table lock\0{namespace or 'public'}\0{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class PostgresTables(TableOperations):
    """The table-operations role of destination-postgres (see the module doc)."""

    def ensure_namespace(self, conn: sa.Connection, namespace: str | None) -> None:
        """As the default, and a write that makes the same new schema at the same moment is no
        error (PostgreSQL's ``CREATE SCHEMA IF NOT EXISTS`` does not see an uncommitted schema:
        the later one fails on the catalog's unique index): the schema is there."""
        try:
            with conn.begin_nested():
                super().ensure_namespace(conn, namespace)
        except sa.exc.IntegrityError:
            if namespace not in sa.inspect(conn).get_schema_names():
                raise

    def lock_table(self, conn: sa.Connection, namespace: str | None, name: str) -> None:
        """``pg_advisory_xact_lock``: held until the transaction ends, released by PostgreSQL
        whatever happens (a killed writer's session ends, and its lock with it)."""
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": table_lock_key(namespace, name)})

    def existing_columns(
        self, conn: sa.Connection, namespace: str | None, name: str
    ) -> dict[str, sa.types.TypeEngine[Any]] | None:
        oid = table_oid(conn, namespace, name)
        if oid is None:
            return None
        rows = conn.execute(
            sa.text(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = :oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"oid": oid},
        ).all()
        return {row[0]: DeclaredType(row[1]) for row in rows}

    # ------------------------------------------------------------------ DDL
    def alter_column_type(
        self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any], write: WriteContext
    ) -> None:
        """``ALTER COLUMN ... TYPE new USING column::new`` (every value has a text / numeric
        form); views using the column are dropped first when ``drop_cascade`` is on, else they
        stop the sync with a config_error naming them."""
        oid = table_oid(conn, table.schema, table.name)
        if oid is not None:
            attnum = conn.execute(
                sa.text("SELECT attnum FROM pg_attribute WHERE attrelid = :oid AND attname = :name"),
                {"oid": oid, "name": column.name},
            ).scalar()
            views = self._dependent_views(conn, oid, attnum)
            if views:
                listed = ", ".join(shown(v[0], v[1]) for v in views)
                if not write.options.drop_cascade:
                    raise ConfigError(
                        f"column {column.name!r} of {shown(table.schema, table.name)} must change type "
                        f"(to hold the stream's values), and view(s) {listed} use it: drop them, or set "
                        "drop_cascade to true to let the sync drop them"
                    )
                self._drop_views(conn, views)
                write.log("WARN", f"dropped view(s) {listed} to change the type of column {column.name!r}")
        type_sql = column.type.compile(dialect=conn.dialect)
        statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
            ident(table),
            sql.Identifier(column.name),
            sql.SQL(type_sql),
            sql.Identifier(column.name),
            sql.SQL(type_sql),
        )
        execute(conn, statement)

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, write: WriteContext) -> None:
        """Replace ``final`` by ``tmp`` in the caller's transaction: DROP + RENAME, and the key
        index renamed after the final table (so the next refresh's index never collides)."""
        cascade = write.options.drop_cascade
        oid = table_oid(conn, final.schema, final.name)
        if oid is not None:
            blockers = self._dependents(conn, oid)
            if blockers and not cascade:
                raise ConfigError(
                    f"cannot replace table {shown(final.schema, final.name)} with the refreshed data: "
                    f"{', '.join(blockers)} depend(s) on it. Drop them, or set drop_cascade to true to let "
                    "the sync drop them with the table"
                )
            if blockers:
                write.log("WARN", f"dropping {', '.join(blockers)} with {shown(final.schema, final.name)}")
            drop = sql.SQL("DROP TABLE {}{}").format(ident(final), sql.SQL(" CASCADE" if cascade else ""))
            try:
                execute(conn, drop)
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == "2BP01":  # dependent objects still exist
                    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or str(exc.orig)
                    raise ConfigError(
                        f"cannot replace table {shown(final.schema, final.name)}: {detail}. Drop those "
                        "objects, or set drop_cascade to true",
                        internal=repr(exc.orig),
                    ) from None
                raise
        execute(conn, sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(tmp), sql.Identifier(final.name)))
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
                    qualified(final.schema, index),
                    sql.Identifier(wanted),
                )
                execute(conn, rename)

    def _dependents(self, conn: sa.Connection, oid: int) -> list[str]:
        views = [f"view {shown(v[0], v[1])}" for v in self._dependent_views(conn, oid, None)]
        keys = [
            f"foreign key {row[2]} of {shown(row[0], row[1])}"
            for row in query(conn, _REFERENCING_KEYS, {"oid": oid})
        ]
        return views + keys

    def _dependent_views(
        self, conn: sa.Connection, oid: int, attnum: int | None
    ) -> list[tuple[str, str, str]]:
        rows = query(conn, _DEPENDENT_VIEWS, {"oid": oid, "attnum": attnum})
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def _drop_views(self, conn: sa.Connection, views: Sequence[tuple[str, str, str]]) -> None:
        for schema, name, kind in views:
            what = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
            execute(
                conn,
                sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(what), sql.Identifier(schema, name)),
            )

    def create_staging(self, conn: sa.Connection, like: sa.Table, name: str) -> sa.Table:
        """``CREATE TEMPORARY TABLE name (LIKE target)`` plus the arrival order column: private
        to the session, not WAL-logged, gone with the session whatever happens."""
        execute(
            conn,
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}, {} bigint)").format(
                sql.Identifier(name), ident(like), sql.Identifier(SEQ)
            ),
        )
        columns = [sa.Column(c.name, c.type) for c in like.columns] + [sa.Column(SEQ, sa.BigInteger)]
        return sa.Table(name, sa.MetaData(), *columns)

    def prepare_table(
        self,
        conn: sa.Connection,
        table: sa.Table,
        empty_meta: str,
        generation_id: int | None,
        write: WriteContext,
    ) -> None:
        """Make the ``_airbyte_meta`` of a row without changes and this write's generation the
        column defaults, so COPY sends neither for most rows (a catalog-only change); how
        PostgreSQL then shows them is noted (``write.defaults_as_set``) for the loader to check
        that no concurrent write set its own since."""
        if META not in table.c or GENERATION_ID not in table.c:
            return
        generation = sql.SQL("NULL") if generation_id is None else sql.Literal(generation_id)
        execute(
            conn,
            sql.SQL(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}::jsonb, ALTER COLUMN {} SET DEFAULT {}"
            ).format(
                ident(table),
                sql.Identifier(META),
                sql.Literal(empty_meta),
                sql.Identifier(GENERATION_ID),
                generation,
            ),
        )
        write.column_defaults[(table.schema, table.name)] = (empty_meta, generation_id)
        if table.schema is not None:  # not a session-private table: another write may alter it
            write.defaults_as_set[(table.schema, table.name)] = metadata_defaults(conn, table)

    def collapse_duplicates(
        self, conn: sa.Connection, table: sa.Table, plan: DedupPlan, write: WriteContext
    ) -> bool:
        # no writer may add a duplicate between this check and the unique index the loader then
        # makes (readers go on); one scan (of the key index, usually) to find out; the DELETE
        # only when needed
        execute(conn, sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(ident(table)))
        found = query(conn, merge.has_duplicates(ident(table), plan), {})
        if not (found and found[0][0]):
            return True
        deleted = execute(conn, merge.collapse_duplicates(ident(table), plan))
        if deleted:
            write.log(
                "INFO",
                f"{shown(table.schema, table.name)} becomes a dedup table: {deleted} older row(s) of keys "
                "held more than once were removed",
            )
        return True

    # ------------------------------------------------------------------ indexes
    def concurrent_appends(self, conn: sa.Connection, table: sa.Table) -> bool:
        """No unique or exclusion index (valid or not, partial, on expressions), no user trigger
        (the internal ones of foreign keys take only shared row locks), no rule: on the table, nor
        on any partition of a partitioned one (a partition may have indexes and triggers of its
        own). A view or a foreign table (no oid here) loads one at a time too."""
        oid = table_oid(conn, table.schema, table.name)
        if oid is None:
            return False
        (blocked,) = query(conn, _APPEND_CONFLICTS, {"oid": oid})[0]
        return not blocked

    def key_indexes(self, conn: sa.Connection, table: sa.Table) -> list[KeyIndex]:
        return [index for index, _ in self.indexes(conn, table)]

    def indexes(self, conn: sa.Connection, table: sa.Table) -> list[tuple[KeyIndex, bool]]:
        """The table's valid, complete indexes on plain columns, each with whether it is a btree."""
        rows = query(conn, _KEY_INDEXES, {"schema": table.schema or "public", "name": table.name})
        return [(KeyIndex(str(row[1]), tuple(row[0]), bool(row[2])), bool(row[3])) for row in rows]

    def create_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        execute(
            conn,
            sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.SQL("UNIQUE " if unique else ""),
                sql.Identifier(name),
                ident(table),
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
            qualified(table.schema, building), sql.Identifier(name)
        )
        execute(conn, rename)

    def drop_index(self, conn: sa.Connection, table: sa.Table, name: str) -> None:
        execute(conn, sql.SQL("DROP INDEX IF EXISTS {}").format(qualified(table.schema, name)))
