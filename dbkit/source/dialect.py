"""What a SQL source connector tells the toolkit: tables, types, keys, and how to bind state.

Defaults work for any SQLAlchemy dialect (batch reflection, raw column values, Python value
conversion). A connector overrides what its database can do better: catalog queries for fast
discovery, server-side value formatting, a row locator for tables without a key, a CDC reader.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine.reflection import ObjectKind
from sqlalchemy.types import NullType

from dbkit.db.dialect import Dialect
from dbkit.db.types import TypeHandler, TypeRegistry, state_to_python
from dbkit.protocol import StreamDescriptor

if TYPE_CHECKING:
    from dbkit.source.cdc import CdcReader
    from dbkit.source.jobs import ReadContext, ReadJob
    from dbkit.source.records import RecordEncoder

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_name: str
    handler: TypeHandler
    nullable: bool = True


@dataclass(frozen=True)
class TableInfo:
    """A readable relation, as discovery found it."""

    name: str
    namespace: str | None
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...] = ()
    kind: str = "table"
    row_estimate: int | None = None
    byte_estimate: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def descriptor(self) -> StreamDescriptor:
        return StreamDescriptor(self.name, self.namespace)

    def column(self, name: str) -> ColumnInfo | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True)
class RowLocator:
    """A stand-in key for tables without a usable primary key (SQLite rowid, PostgreSQL ctid).

    ``expression`` orders and compares rows; ``name`` is recorded in state so that a changed
    locator is noticed; ``bind`` turns a state value back into a comparable SQL value.
    """

    name: str
    expression: Callable[[sa.TableClause], sa.ColumnElement[Any]]
    bind: Callable[[Any], sa.ColumnElement[Any]] | None = None


class SourceDialect(Dialect[ConfigT]):
    types: ClassVar[TypeRegistry]
    """The type handlers of this database; subclasses build theirs once, at class level."""

    fetch_batch_rows: ClassVar[int] = 10_000

    # ------------------------------------------------------------------ discovery
    def schemas(self) -> Sequence[str | None]:
        """Schemas (namespaces) to discover; ``None`` means the connection's default."""
        value = getattr(self.config, "schemas", None)
        return list(value) if value else [None]

    def include(self, namespace: str | None, name: str) -> bool:
        """Table include/exclude patterns (``schema.table`` globs) from the config, if it has them."""
        full = f"{namespace}.{name}" if namespace else name
        includes = getattr(self.config, "include_tables", None) or []
        excludes = getattr(self.config, "exclude_tables", None) or []
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
        from dbkit.source.records import PythonRecordEncoder

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
        from dbkit.source.cursor import choose_key

        return choose_key(self, table, self.table_clause(table)) is not None

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

    def check_readable(self, conn: sa.Connection) -> None:
        """Prove we can read: default lists the tables and reads one row of the first one."""
        tables = self.list_tables(conn)
        if not tables:
            from dbkit.errors import ConfigError

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

    def cdc_reader(self) -> CdcReader | None:
        """The change data capture reader, when the database and config have one."""
        return None
