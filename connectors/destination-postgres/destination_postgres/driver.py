"""psycopg-composed statements on a SQLAlchemy connection, and identifier helpers shared by the
roles of destination-postgres. Identifiers are always quoted by psycopg, never pasted."""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

PG: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
"""A PostgreSQL SQLAlchemy dialect, to compile types without a connection."""


def driver(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under ``conn`` (same session, same transaction)."""
    found = conn.connection.driver_connection
    assert isinstance(found, psycopg.Connection)
    return found


def execute(conn: sa.Connection, statement: sql.Composed | sql.SQL) -> int:
    """Run a psycopg-composed statement in the connection's transaction; the row count."""
    with driver(conn).cursor() as cursor:
        cursor.execute(statement)
        return max(cursor.rowcount, 0)


def query(conn: sa.Connection, text: str | sql.Composed, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every row of a query run in the connection's transaction."""
    with driver(conn).cursor() as cursor:
        cursor.execute(text, params)
        return list(cursor.fetchall())


def qualified(schema: str | None, name: str) -> sql.Identifier:
    """``schema.name`` quoted (``name`` alone without a schema)."""
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def ident(table: sa.Table) -> sql.Identifier:
    """A table's quoted, schema-qualified name."""
    return qualified(table.schema, table.name)


def shown(schema: str | None, name: str) -> str:
    """A table's name for messages."""
    return f"{schema}.{name}" if schema else name


def table_oid(conn: sa.Connection, namespace: str | None, name: str) -> int | None:
    """The oid of a table (namespace None: one of this session's temporary tables), or None."""
    row = conn.execute(
        sa.text(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :name AND c.relkind IN ('r', 'p') AND "
            "(n.nspname = :ns OR (:ns IS NULL AND n.oid = pg_my_temp_schema()))"
        ),
        {"name": name, "ns": namespace},
    ).first()
    return None if row is None else int(row[0])
