"""Discovery: a handful of catalog queries for the whole database, whatever its number of tables.

1. ``information_schema.TABLES``, the names and kinds only: MySQL and MariaDB answer that from
   the table definitions, without opening a table;
2. ``information_schema.COLUMNS``: every column's types;
3. ``information_schema.STATISTICS``: the primary keys;
4. on MariaDB, ``information_schema.CHECK_CONSTRAINTS``: its JSON columns are LONGTEXT with a
   ``CHECK (json_valid(column))``;
5. estimates: ``mysql.innodb_table_stats`` (InnoDB's persistent statistics, a plain table) when the
   user may read it; else ``TABLE_ROWS`` and ``DATA_LENGTH`` of ``information_schema.TABLES`` when
   ``innodb_stats_on_metadata`` is off (with it on, every table's statistics would be recomputed:
   the stall of pipelinewise-tap-mysql #128); else none.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from dbkit.source import ColumnInfo, TableInfo
from source_mysql.types import scalar

KINDS = {"BASE TABLE": "table", "SYSTEM VERSIONED": "table", "VIEW": "view"}

TABLES = sa.text(
    "SELECT TABLE_NAME AS name, TABLE_TYPE AS kind FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db"
)
COLUMNS = sa.text(
    """
    SELECT TABLE_NAME AS tbl, COLUMN_NAME AS name, DATA_TYPE AS data_type, COLUMN_TYPE AS column_type,
           IS_NULLABLE AS nullable
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db
    ORDER BY TABLE_NAME, ORDINAL_POSITION
    """
)
PRIMARY_KEYS = sa.text(
    """
    SELECT TABLE_NAME AS tbl, COLUMN_NAME AS name FROM information_schema.STATISTICS
    WHERE TABLE_SCHEMA = :db AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX
    """
)
JSON_CHECKS = sa.text(
    """
    SELECT TABLE_NAME AS tbl, CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
    WHERE CONSTRAINT_SCHEMA = :db AND CHECK_CLAUSE LIKE 'json_valid(%'
    """
)
INNODB_STATS = sa.text(
    """
    SELECT table_name AS tbl, n_rows AS row_count, clustered_index_size * @@innodb_page_size AS byte_count
    FROM mysql.innodb_table_stats WHERE database_name = :db
    """
)
TABLE_STATS = sa.text(
    """
    SELECT TABLE_NAME AS tbl, TABLE_ROWS AS row_count, DATA_LENGTH AS byte_count
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db AND TABLE_TYPE <> 'VIEW'
    """
)
_JSON_VALID = re.compile(r"^json_valid\(`((?:[^`]|``)+)`\)$", re.IGNORECASE)
_NO_PRIVILEGE = (1142, 1143, 1044)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def json_checked(conn: sa.Connection, database: str) -> set[tuple[str, str]]:
    """(table, column) of MariaDB's JSON columns; MySQL has no such column (nor that view's
    TABLE_NAME), and answers nothing."""
    try:
        rows = conn.execute(JSON_CHECKS, {"db": database}).all()
    except sa.exc.DBAPIError:
        conn.rollback()
        return set()
    found = set()
    for tbl, clause in rows:
        m = _JSON_VALID.match(_text(clause).strip())
        if m is not None:
            found.add((_text(tbl), m.group(1).replace("``", "`")))
    return found


def estimates(conn: sa.Connection, database: str) -> dict[str, tuple[int, int]]:
    """Rows and bytes by table, without opening a table or recomputing statistics (see the module doc)."""
    try:
        rows = conn.execute(INNODB_STATS, {"db": database}).all()
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if code not in _NO_PRIVILEGE:
            raise
        on_metadata = conn.execute(sa.text("SELECT @@innodb_stats_on_metadata")).scalar()
        if _text(on_metadata) not in ("0", "OFF"):
            return {}
        rows = conn.execute(TABLE_STATS, {"db": database}).all()
    return {
        _text(tbl): (int(row_count), int(byte_count))
        for tbl, row_count, byte_count in rows
        if row_count is not None and byte_count is not None
    }


def type_key(data_type: str, column_type: str, is_json: bool, tinyint1_is_bit: bool) -> str:
    """The registry name of a column's type (:mod:`source_mysql.types.registry`)."""
    data_type = data_type.lower()
    column_type = column_type.lower()
    if is_json:
        return "json"
    if data_type == "tinyint" and column_type.startswith("tinyint(1)") and tinyint1_is_bit:
        return "bool"
    if data_type == "bit" and column_type == "bit(1)":
        return "bit1"
    return data_type


def list_relations(conn: sa.Connection, database: str, *, tinyint1_is_bit: bool = True) -> list[TableInfo]:
    """Every table and view of ``database`` that the user can see, with columns, keys and estimates."""
    params = {"db": database}
    kinds = {_text(n): KINDS.get(_text(k)) for n, k in conn.execute(TABLES, params).all()}
    columns: dict[str, list[ColumnInfo]] = defaultdict(list)
    checked = json_checked(conn, database)
    for tbl, name, data_type, column_type, nullable in conn.execute(COLUMNS, params).all():
        tbl, name = _text(tbl), _text(name)
        key = type_key(_text(data_type), _text(column_type), (tbl, name) in checked, tinyint1_is_bit)
        columns[tbl].append(
            ColumnInfo(name, _text(column_type), scalar(key), nullable=_text(nullable) == "YES")
        )
    keys: dict[str, list[str]] = defaultdict(list)
    for tbl, name in conn.execute(PRIMARY_KEYS, params).all():
        keys[_text(tbl)].append(_text(name))
    stats = estimates(conn, database)
    tables = []
    for name in sorted(kinds):
        kind = kinds[name]
        if kind is None or not columns.get(name):
            continue
        rows_bytes = stats.get(name)
        tables.append(
            TableInfo(
                name=name,
                namespace=database,
                columns=tuple(columns[name]),
                primary_key=tuple(keys.get(name, ())),
                kind=kind,
                row_estimate=rows_bytes[0] if rows_bytes else None,
                byte_estimate=rows_bytes[1] if rows_bytes else None,
            )
        )
    return tables
