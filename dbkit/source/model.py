"""The source data model: what discovery finds (tables, columns) and what orders a read (keys).

Plain frozen data, no behaviour that needs a connection: every other source module builds on
this one and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbkit.db.types import TypeHandler
from dbkit.protocol import StreamDescriptor


@dataclass(frozen=True)
class ColumnInfo:
    """A column as discovery found it: its declared type name and the handler for its values."""

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

    def key_columns(self) -> list[ColumnInfo] | None:
        """The primary key's columns when it can order a resumable read (it exists and none of
        its columns can be NULL), else None."""
        key = [self.column(name) for name in self.primary_key]
        if key and all(c is not None and not c.nullable for c in key):
            return [c for c in key if c is not None]
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
