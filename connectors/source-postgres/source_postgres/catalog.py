"""Discovery: two catalog queries for every schema at once, whatever the number of tables.

The first lists the relations the user may read (tables, views, materialized views, partitioned
tables — their parents, not each partition — and foreign tables) with their columns, primary
keys and statistics; the second resolves every column type the first one found (domains to
their base types, arrays to their elements, composite types to their attributes) in one
recursive query. Handlers are then built from those descriptions (:mod:`source_postgres.types`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbkit.source import ColumnInfo, TableInfo
from source_postgres.types import (
    ENUM,
    NUMERIC_BOUNDED,
    OTHER,
    RANGE,
    PgReadHandler,
    array_of,
    composite_of,
    domain_of,
    scalar,
)

KINDS = {
    "r": "table",
    "p": "partitioned_table",
    "m": "materialized_view",
    "v": "view",
    "f": "foreign_table",
}

RELATIONS = sa.text(
    """
    SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
           CASE WHEN c.relkind = 'p' THEN (
                    SELECT sum(l.reltuples) FILTER (WHERE l.reltuples > 0)
                    FROM pg_partition_tree(c.oid) AS t JOIN pg_class AS l ON l.oid = t.relid
                    WHERE t.isleaf)
                WHEN c.reltuples > 0 THEN c.reltuples END AS row_estimate,
           -- pages of the table and of its TOAST table (where large values live: without them a
           -- table of big documents looks small, and its first chunks would be planned far too
           -- big). Catalog columns only: pg_relation_size() would take a lock, and discovery would
           -- wait behind any session rewriting any table. The TOAST table's relpages is as of its
           -- last VACUUM (autovacuum's or a user's); ANALYZE alone does not update it.
           CASE WHEN c.relkind = 'p' THEN (
                    SELECT sum(l.relpages::bigint + coalesce(lt.relpages, 0))
                    FROM pg_partition_tree(c.oid) AS t JOIN pg_class AS l ON l.oid = t.relid
                    LEFT JOIN pg_class AS lt ON lt.oid = l.reltoastrelid WHERE t.isleaf)
                ELSE c.relpages::bigint + coalesce(
                    (SELECT ct.relpages FROM pg_class AS ct WHERE ct.oid = c.reltoastrelid), 0)
                END * current_setting('block_size')::bigint AS byte_estimate,
           (SELECT array_agg(a.attname::text ORDER BY k.n)
              FROM pg_index AS i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
              JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
           has_table_privilege(c.oid, 'SELECT') AS table_select,
           CASE WHEN c.relkind = 'p' THEN (
                    SELECT coalesce(bool_and(l.relkind = 'r' AND has_table_privilege(l.oid, 'SELECT')), true)
                    FROM pg_partition_tree(c.oid) AS t JOIN pg_class AS l ON l.oid = t.relid
                    WHERE t.isleaf) ELSE true END AS leaves_by_ctid,
           a.attnum, a.attname AS column_name, a.atttypid::bigint AS type_oid, a.atttypmod AS typmod,
           a.attndims AS dims, a.attnotnull AS not_null,
           format_type(a.atttypid, a.atttypmod) AS type_name
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = ANY(CAST(:schemas AS text[]))
      AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
      AND NOT c.relispartition
      AND has_schema_privilege(n.oid, 'USAGE')
      AND has_column_privilege(c.oid, a.attnum, 'SELECT')
    ORDER BY n.nspname, c.relname, a.attnum
    """
)

TYPES_QUERY = sa.text(
    """
    WITH RECURSIVE closure(oid) AS (
        SELECT DISTINCT unnest(CAST(:oids AS oid[]))
      UNION
        SELECT next.oid
        FROM closure
        JOIN pg_type AS t ON t.oid = closure.oid
        CROSS JOIN LATERAL (
            SELECT t.typbasetype WHERE t.typtype = 'd'
            UNION ALL SELECT t.typelem WHERE t.typinput = 'array_in'::regproc
            UNION ALL SELECT a.atttypid FROM pg_attribute AS a
                WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
        ) AS next(oid)
    )
    SELECT t.oid::bigint AS oid, t.typname::text AS typname, t.typtype::text AS typtype,
           t.typinput = 'array_in'::regproc AS is_array, t.typelem::bigint AS element,
           t.typbasetype::bigint AS base, t.typtypmod AS base_typmod, t.typdelim::text AS delimiter,
           CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base_name,
           (SELECT array_agg(ARRAY[a.attname::text, a.atttypid::text, a.atttypmod::text] ORDER BY a.attnum)
              FROM pg_attribute AS a
             WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
             AS attributes
    FROM closure JOIN pg_type AS t ON t.oid = closure.oid
    """
)


@dataclass(frozen=True)
class TypeRow:
    oid: int
    typname: str
    typtype: str
    is_array: bool
    element: int
    base: int
    base_typmod: int
    delimiter: str
    base_name: str | None
    attributes: tuple[tuple[str, int, int], ...]


@dataclass
class TypeResolver:
    """Builds a :class:`PgReadHandler` for (type oid, typmod, array dimensions), once each."""

    rows: Mapping[int, TypeRow]
    built: dict[tuple[int, int, int], PgReadHandler] = field(default_factory=dict)

    def handler(self, oid: int, typmod: int = -1, dims: int = 1) -> PgReadHandler:
        key = (oid, typmod, dims)
        found = self.built.get(key)
        if found is None:
            found = self.built[key] = self._build(oid, typmod, dims)
        return found

    def _build(self, oid: int, typmod: int, dims: int) -> PgReadHandler:
        row = self.rows.get(oid)
        if row is None:
            return OTHER
        if row.typtype == "d":
            base = self.handler(row.base, row.base_typmod, dims)
            return domain_of(base, row.base_name or "text")
        if row.is_array:
            element = self.handler(row.element, typmod)
            delimiter = self.rows[row.element].delimiter if row.element in self.rows else ","
            return array_of(element, dims, delimiter)
        if row.typtype == "e":
            return ENUM
        if row.typtype == "c":
            return composite_of([(name, self.handler(typ, mod)) for name, typ, mod in row.attributes])
        if row.typtype in ("r", "m"):
            return RANGE
        if row.typname == "numeric" and typmod != -1:
            return NUMERIC_BOUNDED
        return scalar(row.typname)


def type_rows(conn: sa.Connection, oids: Sequence[int]) -> dict[int, TypeRow]:
    if not oids:
        return {}
    out: dict[int, TypeRow] = {}
    for r in conn.execute(TYPES_QUERY, {"oids": sorted(set(oids))}).mappings():
        attributes = tuple((str(a[0]), int(a[1]), int(a[2])) for a in (r["attributes"] or ()))
        out[int(r["oid"])] = TypeRow(
            oid=int(r["oid"]),
            typname=r["typname"],
            typtype=r["typtype"],
            is_array=bool(r["is_array"]),
            element=int(r["element"]),
            base=int(r["base"]),
            base_typmod=int(r["base_typmod"]),
            delimiter=r["delimiter"],
            base_name=r["base_name"],
            attributes=attributes,
        )
    return out


def list_relations(conn: sa.Connection, schemas: Sequence[str]) -> list[TableInfo]:
    """Every relation of ``schemas`` the user may read, with the columns the user may select."""
    rows = conn.execute(RELATIONS, {"schemas": list(schemas)}).mappings().all()
    resolver = TypeResolver(type_rows(conn, [int(r["type_oid"]) for r in rows]))
    tables: list[TableInfo] = []
    current: dict[str, Any] | None = None
    columns: list[ColumnInfo] = []

    def flush() -> None:
        if current is None:
            return
        names = {c.name for c in columns}
        pk = tuple(current["primary_key"] or ())
        row_estimate = current["row_estimate"]
        tables.append(
            TableInfo(
                name=current["name"],
                namespace=current["schema"],
                columns=tuple(columns),
                # a key the user cannot read entirely is no key for us
                primary_key=pk if all(k in names for k in pk) else (),
                kind=KINDS[current["relkind"]],
                row_estimate=int(row_estimate) if row_estimate is not None else None,
                byte_estimate=int(current["byte_estimate"] or 0) if row_estimate is not None else None,
                extra={
                    "oid": int(current["oid"]),
                    "relkind": current["relkind"],
                    "table_select": bool(current["table_select"]),
                    # every leaf partition is a plain table the user may read by tuple id
                    "leaves_by_ctid": bool(current["leaves_by_ctid"]),
                },
            )
        )

    for r in rows:
        if current is None or r["oid"] != current["oid"]:
            flush()
            current = dict(r)
            columns = []
        handler = resolver.handler(int(r["type_oid"]), int(r["typmod"]), max(1, int(r["dims"] or 0)))
        columns.append(ColumnInfo(r["column_name"], r["type_name"], handler, nullable=not r["not_null"]))
    flush()
    return tables
