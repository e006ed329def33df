"""The table-operations role of destination-postgres: catalog reads by oid, column widening and
table swaps that name (or, with ``drop_cascade``, drop) the objects in their way, TEMP staging
tables, column defaults for COPY, key indexes built without locking readers out."""

from __future__ import annotations

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


class PostgresTables(TableOperations):
    """The table-operations role of destination-postgres (see the module doc)."""

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
        column defaults, so COPY sends neither for most rows (a catalog-only change)."""
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
