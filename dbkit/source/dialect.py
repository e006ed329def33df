"""What a SQL source connector tells the toolkit: tables, types, keys, and how to bind state.

Defaults work for any SQLAlchemy dialect (batch reflection, raw column values, Python value
conversion). A connector overrides what its database can do better: catalog queries for fast
discovery, server-side value formatting, a row locator for tables without a key, its own read
jobs. The data it describes tables with is in :mod:`dbkit.source.model`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine.reflection import ObjectKind
from sqlalchemy.types import NullType

from dbkit.config import TableSelection
from dbkit.db.dialect import Dialect
from dbkit.db.types import TypeRegistry, state_to_python
from dbkit.errors import ConfigError
from dbkit.source.jobs import ReadContext, ReadJob
from dbkit.source.model import ColumnInfo, RowLocator, TableInfo
from dbkit.source.records import PythonRecordEncoder, RecordEncoder

if TYPE_CHECKING:
    from dbkit.db.database import Database
    from dbkit.source.cdc.contract import CdcReader

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class SourceDialect(Dialect[ConfigT]):
    types: ClassVar[TypeRegistry]
    """The type handlers of this database; subclasses build theirs once, at class level."""

    fetch_batch_rows: ClassVar[int] = 10_000

    # ------------------------------------------------------------------ discovery
    def schemas(self) -> Sequence[str | None]:
        """Schemas (namespaces) to discover; ``None`` means the connection's default. The default
        is just that; a dialect whose config names schemas returns them."""
        return [None]

    def include(self, namespace: str | None, name: str) -> bool:
        """Table include/exclude patterns (``schema.table`` globs) from the config, when it is a
        :class:`~dbkit.config.TableSelection`."""
        if not isinstance(self.config, TableSelection):
            return True
        full = f"{namespace}.{name}" if namespace else name
        includes = self.config.include_tables
        excludes = self.config.exclude_tables
        if includes and not any(
            fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(name, p) for p in includes
        ):
            return False
        return not any(fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(name, p) for p in excludes)

    def list_tables(self, conn: sa.Connection) -> list[TableInfo]:
        """Every readable table and view, with columns and primary keys.

        The default uses SQLAlchemy's batch reflection (one round of catalog queries per schema,
        not per table). Connectors override it with their own catalog query where that is faster
        or more exact (declared type names, privileges, estimates).
        """
        inspector = sa.inspect(conn)
        tables: list[TableInfo] = []
        for schema in self.schemas():
            columns = inspector.get_multi_columns(schema=schema, kind=ObjectKind.ANY)
            pks = inspector.get_multi_pk_constraint(schema=schema, kind=ObjectKind.ANY)
            views = set(inspector.get_view_names(schema=schema))
            for (sch, name), cols in sorted(columns.items(), key=lambda kv: kv[0][1]):
                if not self.include(sch, name):
                    continue
                infos = tuple(
                    self.column_info(
                        c["name"], self.type_name(c["type"], conn), bool(c.get("nullable", True))
                    )
                    for c in cols
                )
                pk_info = pks.get((sch, name))
                pk = tuple(pk_info["constrained_columns"] or ()) if pk_info else ()
                tables.append(
                    TableInfo(
                        name=name,
                        namespace=sch,
                        columns=infos,
                        primary_key=pk,
                        kind="view" if name in views else "table",
                    )
                )
        return tables

    def type_name(self, sa_type: Any, conn: sa.Connection) -> str:
        try:
            return str(sa_type.compile(dialect=conn.dialect))
        except Exception:
            return str(sa_type)

    def column_info(self, name: str, type_name: str, nullable: bool) -> ColumnInfo:
        return ColumnInfo(name, type_name, self.types.resolve(type_name), nullable)

    # ------------------------------------------------------------------ reading
    def table_clause(self, table: TableInfo) -> sa.TableClause:
        """A lightweight table construct with untyped columns: values come back as the driver gives them."""
        return sa.table(table.name, *(sa.column(c.name) for c in table.columns), schema=table.namespace)

    def record_encoder(
        self, table: TableInfo, t: sa.TableClause, columns: Sequence[ColumnInfo]
    ) -> RecordEncoder:
        """How rows of ``t`` become record data; the default converts values in Python, per column."""
        return PythonRecordEncoder(t, columns)

    def key_expression(self, table: sa.TableClause, column: ColumnInfo) -> sa.ColumnElement[Any]:
        """The expression selected to capture a key or cursor value for STATE (default: the column)."""
        return table.c[column.name]

    def key_state_value(self, column: ColumnInfo, raw: Any) -> Any:
        """Turn a captured key/cursor value into its JSON form for STATE."""
        return column.handler.state_value(raw)

    def bind_state_value(self, column: ColumnInfo, value: Any) -> sa.ColumnElement[Any]:
        """A SQL value comparable with the column, from a STATE value (must be exact).

        The default turns :func:`dbkit.db.types.default_state_value` forms back into the driver's
        own Python value and binds it without a SQL type, so the driver adapts it the way it read
        it (no cast to VARCHAR and the like).
        """
        return sa.literal(state_to_python(value), NullType())

    def is_resumable(self, table: TableInfo) -> bool:
        """Whether a full refresh of ``table`` can resume from a checkpoint (the catalog says so);
        default: it has a usable key or a row locator, as the generic plans need."""
        return table.key_columns() is not None or self.row_locator(table) is not None

    def connections_per_stream(self) -> int:
        """Connections one stream's read may hold at once (a read job may read in parallel)."""
        return 1

    def row_locator(self, table: TableInfo) -> RowLocator | None:
        """A key for tables without a usable primary key, or None (then the read is not resumable)."""
        return None

    def max_value_query(self, table: sa.TableClause, column: ColumnInfo) -> sa.Select[Any]:
        """The query for the cursor's upper bound, returning its STATE-capturable value."""
        return (
            sa.select(self.key_expression(table, column).label("v"))
            .order_by(table.c[column.name].desc())
            .where(table.c[column.name].is_not(None))
            .limit(1)
        )

    def cursor_beyond(
        self, column: ColumnInfo, value: sa.ColumnElement[Any]
    ) -> sa.ColumnElement[bool] | None:
        """A condition true when ``value`` (the cursor column, or a bound state value) is one of
        the values of ``column``'s type that sort above every real one (PostgreSQL's
        ``'infinity'``, ``NaN``), or None when the type has none (the default).

        Such values never become a cursor read's position: the position stays at the largest
        real value, and the rows above it are read again by every incremental read (with a
        warning), so that one of them cannot freeze the stream (see :mod:`dbkit.source.plans`).
        """
        return None

    def check_readable(self, conn: sa.Connection) -> None:
        """Prove we can read: default lists the tables and reads one row of the first one."""
        tables = self.list_tables(conn)
        if not tables:
            raise ConfigError(
                f"connected to {self.describe_target()}, but found no table we may read "
                f"in schemas {', '.join(str(s) for s in self.schemas())}"
            )
        first = tables[0]
        conn.execute(sa.select(sa.literal(1)).select_from(self.table_clause(first)).limit(1)).all()

    def read_job(self, context: ReadContext) -> ReadJob | None:
        """A read this dialect runs itself (see :mod:`dbkit.source.jobs`), or None for the
        generic plans. Called once per stream, before anything is read."""
        return None

    def cdc_reader(self, database: Database) -> CdcReader[Any] | None:
        """The change log to read when the config asks for change data capture (see
        :mod:`dbkit.source.cdc`), or None for standard reads (the default). Called once per
        discover and read; must do no I/O (the reader connects when it is used)."""
        return None
