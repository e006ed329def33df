"""The table-operations role of destination-mysql.

MySQL commits implicitly before and after every DDL statement (CREATE, ALTER, RENAME, DROP of a
non-temporary table), so the framework's "one transaction" is here a sequence of atomic steps,
each safe to interrupt:

- Writers of one table take turns with a named lock (``GET_LOCK``, held by the session across
  those implicit commits and released when the transaction ends).
- A refresh swaps its table in with one ``RENAME TABLE final TO old, tmp TO final`` (atomic: a
  reader sees the old table or the new one, never none), then drops the old one.
- Columns are read from ``information_schema`` with their comments (which tell a UTC DATETIME
  from a naive one) and the JSON_VALID checks (which tell MariaDB's JSON from LONGTEXT).
- Indexes on LONGTEXT / LONGBLOB / JSON key columns index a 255-character prefix; unique ones
  (MariaDB) use its hash-based long unique index over the whole value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dbkit import TransientError
from dbkit.db import AirbyteType
from dbkit.destination import (
    EXTRACTED_AT,
    RAW_ID,
    SEQ,
    DeclaredType,
    DedupPlan,
    TableOperations,
    WriteContext,
    short_hash,
)

LOCK_SECONDS = 3600
_PREFIXED = (
    "text",
    "blob",
    "json",
    "longtext",
    "longblob",
    "mediumtext",
    "mediumblob",
    "tinytext",
    "tinyblob",
)


def quote(conn: sa.Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(name))


def table_sql(conn: sa.Connection, table: sa.Table) -> str:
    return str(conn.dialect.identifier_preparer.format_table(table))


class MySqlTables(TableOperations):
    """The table-operations role of destination-mysql (see the module doc)."""

    @staticmethod
    def _lock_name(namespace: str | None, name: str) -> str:
        return f"dbkit:{short_hash(f'{namespace}.{name}')}"

    def lock_table(self, conn: sa.Connection, namespace: str | None, name: str) -> None:
        namespace = namespace or conn.exec_driver_sql("SELECT DATABASE()").scalar()
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:n, :t)"), {"n": self._lock_name(namespace, name), "t": LOCK_SECONDS}
        ).scalar()
        if got != 1:
            raise TransientError(f"another write held table {namespace}.{name} for {LOCK_SECONDS} s")

    def unlock_table(self, conn: sa.Connection, namespace: str | None, name: str) -> None:
        namespace = namespace or conn.exec_driver_sql("SELECT DATABASE()").scalar()
        try:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": self._lock_name(namespace, name)})
            conn.commit()
        except sa.exc.SQLAlchemyError:
            pass  # a lost session released it

    def existing_columns(
        self, conn: sa.Connection, namespace: str | None, name: str
    ) -> dict[str, sa.types.TypeEngine[Any]] | None:
        rows = conn.execute(
            sa.text(
                "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.COLUMN_COMMENT, "
                "  EXISTS (SELECT 1 FROM information_schema.CHECK_CONSTRAINTS k "
                "    WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME "
                "    AND k.CONSTRAINT_NAME = c.COLUMN_NAME AND k.CHECK_CLAUSE LIKE 'json\\_valid(%') "
                "FROM information_schema.COLUMNS c "
                "WHERE c.TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND c.TABLE_NAME = :t "
                "ORDER BY c.ORDINAL_POSITION"
            ),
            {"s": namespace, "t": name},
        ).all()
        if not rows:
            return None
        out: dict[str, sa.types.TypeEngine[Any]] = {}
        for column, column_type, comment, is_json in rows:
            declared = "JSON" if is_json else str(column_type)
            if comment:
                declared += " COMMENT '" + str(comment).replace("'", "''") + "'"
            out[str(column)] = DeclaredType(declared)
        return out

    def add_column(self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        type_sql = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {table_sql(conn, table)} ADD COLUMN {quote(conn, column.name)} {type_sql}"
        )

    def alter_column_type(
        self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any], write: WriteContext
    ) -> None:
        """``ALTER TABLE ... MODIFY COLUMN`` (a table copy: every value converted, none lost,
        as the widening rule only widens)."""
        type_sql = column.type.compile(dialect=conn.dialect)
        name = quote(conn, column.name)
        before = (self.existing_columns(conn, table.schema, table.name) or {}).get(column.name)
        was_decimal = before is not None and str(before.compile(dialect=conn.dialect)).lower().startswith(
            "decimal"
        )
        conn.exec_driver_sql(f"ALTER TABLE {table_sql(conn, table)} MODIFY COLUMN {name} {type_sql}")
        if was_decimal and self.dialect.types.storage_type(column.type) is AirbyteType.STRING:  # type: ignore[attr-defined]
            # DECIMAL(65,30) text is padded to 30 places: keep the numbers' own digits
            conn.exec_driver_sql(
                f"UPDATE {table_sql(conn, table)} SET {name} = "
                f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {name})) WHERE {name} LIKE '%%.%%'"
            )

    def concurrent_appends(self, conn: sa.Connection, table: sa.Table) -> bool:
        """A table, not a view (a view shows neither its tables' indexes nor their triggers), with no
        unique index (the primary key, functional and prefix ones included) and no trigger."""
        (blocked,) = conn.execute(
            sa.text(
                "SELECT NOT EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "COALESCE(:s, DATABASE()) AND TABLE_NAME = :t AND TABLE_TYPE <> 'VIEW') "
                "OR EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = "
                "COALESCE(:s, DATABASE()) AND TABLE_NAME = :t AND NON_UNIQUE = 0) OR EXISTS (SELECT 1 "
                "FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = COALESCE(:s, DATABASE()) "
                "AND EVENT_OBJECT_TABLE = :t)"
            ),
            {"s": table.schema, "t": table.name},
        ).one()
        return not blocked

    def create_staging(self, conn: sa.Connection, like: sa.Table, name: str) -> sa.Table:
        """A temporary table with the columns of ``like`` as the server declares them in the
        table (type, character set and collation; no index, no default, every column nullable)
        plus the arrival order. A column a user narrowed (``VARCHAR(5)``, ``INT``) is as narrow
        here, so LOAD DATA into staging reports a value that does not fit at its row and column
        (NULL with a change, as in an append) instead of the merge's ``INSERT ... SELECT``
        failing with error 1406 or 1264."""
        rows = conn.execute(
            sa.text(
                "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.CHARACTER_SET_NAME, c.COLLATION_NAME, "
                "  EXISTS (SELECT 1 FROM information_schema.CHECK_CONSTRAINTS k "
                "    WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME "
                "    AND k.CONSTRAINT_NAME = c.COLUMN_NAME AND k.CHECK_CLAUSE LIKE 'json\\_valid(%') "
                "FROM information_schema.COLUMNS c "
                "WHERE c.TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND c.TABLE_NAME = :t"
            ),
            {"s": like.schema, "t": like.name},
        ).all()
        declared: dict[str, str] = {}
        for column, column_type, charset, collation, is_json in rows:
            text = "JSON" if is_json else str(column_type)
            if charset and collation and not is_json:
                text += f" CHARACTER SET {charset} COLLATE {collation}"
            declared[str(column).casefold()] = text
        columns = [
            sa.Column(c.name, DeclaredType(declared.get(c.name.casefold()) or _compiled(conn, c.type)))
            for c in like.columns
        ] + [sa.Column(SEQ, sa.BigInteger)]
        staging = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        staging.create(conn)
        return staging

    def create_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], unique: bool = False
    ) -> None:
        existing = {i.name for i in self.key_indexes(conn, table)}
        if name in existing:
            return
        parts = []
        for c in columns:
            declared = str(table.c[c].type.compile(dialect=conn.dialect)).lower()
            long_value = declared.split("(")[0].split(" ")[0] in _PREFIXED
            parts.append(quote(conn, c) + ("(255)" if long_value and not unique else ""))
        kind = "UNIQUE INDEX" if unique else "INDEX"
        conn.exec_driver_sql(
            f"CREATE {kind} {quote(conn, name)} ON {table_sql(conn, table)} ({', '.join(parts)})"
        )

    def create_unique_index(
        self, conn: sa.Connection, table: sa.Table, name: str, columns: Sequence[str], replace: bool
    ) -> None:
        """A unique index; where the server cannot build one over a whole LONGTEXT key (MySQL 8:
        error 1170), a prefix index instead, and the merge falls back to its portable statements."""
        if replace:
            self.drop_index(conn, table, name)
        try:
            self.create_index(conn, table, name, columns, unique=True)
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "args", (None,))[0] != 1170:
                raise
            self.create_index(conn, table, name, columns)

    def drop_index(self, conn: sa.Connection, table: sa.Table, name: str) -> None:
        if any(i.name == name for i in self.key_indexes(conn, table)):
            conn.exec_driver_sql(f"DROP INDEX {quote(conn, name)} ON {table_sql(conn, table)}")

    def collapse_duplicates(
        self, conn: sa.Connection, table: sa.Table, plan: DedupPlan, write: WriteContext
    ) -> bool:
        """Keep the newest row of each key (cursor, then extraction time; rows with a NULL in the
        key stay): one ranking of the whole table, once, when a stream turns dedup. True: the
        loader then makes its key index unique."""
        keys = [quote(conn, k) for k in plan.key]
        if not keys:
            return False
        order = []
        if plan.cursor is not None:
            cursor = quote(conn, plan.cursor)
            order += [f"{cursor} IS NULL", f"{cursor} DESC"]
        order.append(f"{quote(conn, EXTRACTED_AT)} DESC")
        raw_id = quote(conn, RAW_ID)
        present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        conn.exec_driver_sql(
            f"DELETE t FROM {table_sql(conn, table)} t JOIN (SELECT r.rid FROM (SELECT {raw_id} AS rid, "
            f"ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY {', '.join(order)}) AS rn "
            f"FROM {table_sql(conn, table)} WHERE {present}) r WHERE r.rn > 1) l ON t.{raw_id} = l.rid"
        )
        return True

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, write: WriteContext) -> None:
        """One atomic ``RENAME TABLE`` (the old table out, the new one in), then the old one dropped."""
        exists = self.existing_columns(conn, final.schema, final.name) is not None
        if not exists:
            conn.exec_driver_sql(f"RENAME TABLE {table_sql(conn, tmp)} TO {table_sql(conn, final)}")
            return
        old = sa.Table(f"_dbkit_old_{short_hash(final.name)}", sa.MetaData(), schema=final.schema)
        self.drop_table(conn, old)
        conn.exec_driver_sql(
            f"RENAME TABLE {table_sql(conn, final)} TO {table_sql(conn, old)}, "
            f"{table_sql(conn, tmp)} TO {table_sql(conn, final)}"
        )
        self.drop_table(conn, old)


def _compiled(conn: sa.Connection, sql_type: sa.types.TypeEngine[Any]) -> str:
    return str(sql_type.compile(dialect=conn.dialect))
