"""What a SQL destination connector tells the toolkit: its capabilities, its config, its roles.

A destination dialect is configuration and behaviour, never per-write state (that is the
:class:`~dbkit.destination.write.WriteContext`). Its behaviour is four roles, each a small class
a connector may subclass and name on its dialect independently of the others:

- :class:`~dbkit.destination.type_mapping.TypeMapping` (``dialect.types``): column types;
- :class:`~dbkit.destination.table_ops.TableOperations` (``dialect.tables``): DDL, indexes, swaps;
- :class:`~dbkit.destination.bulk_load.BulkLoader` (``dialect.bulk``): typed batches into tables;
- :class:`~dbkit.destination.merge_sql.MergeSql` (``dialect.merger``): dedup.

The defaults are portable SQLAlchemy Core (``executemany`` inserts, DELETE + INSERT dedup,
DROP + RENAME swaps). A connector overrides what its database does better: COPY, MERGE, ...
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from pydantic import BaseModel

from dbkit.db.dialect import Dialect
from dbkit.destination.bulk_load import BulkLoader
from dbkit.destination.casting import Limits
from dbkit.destination.merge_sql import MergeSql
from dbkit.destination.naming import NamingRules
from dbkit.destination.table_ops import TableOperations
from dbkit.destination.type_mapping import TypeMapping
from dbkit.destination.write import WriteOptions

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class DestinationDialect(Dialect[ConfigT]):
    """Subclass with ``name``, ``capabilities``, :meth:`sqlalchemy_url` and a
    :class:`TypeMapping` subclass (``type_mapping``); name other role classes to override them.
    One dialect is made per connector run, from the validated config."""

    type_mapping: ClassVar[type[TypeMapping]] = TypeMapping
    table_operations: ClassVar[type[TableOperations]] = TableOperations
    bulk_loader: ClassVar[type[BulkLoader]] = BulkLoader
    merge_sql: ClassVar[type[MergeSql]] = MergeSql

    def __init__(self, config: ConfigT) -> None:
        super().__init__(config)
        caps = self.capabilities
        self.naming: NamingRules = NamingRules.of(caps)
        """How stream and field names become table and column names (from the capabilities)."""
        self.limits: Limits = Limits.of(caps)
        """What the database's columns can hold (from the capabilities), for the casting rules."""
        self.types = self.type_mapping(self)
        self.tables = self.table_operations(self)
        self.bulk = self.bulk_loader(self, self.types)
        self.merger = self.merge_sql(self, self.tables)

    def default_namespace(self) -> str | None:
        """Called once per write (and by ``check``): where streams without a namespace go (the
        configured schema); None: the connection's default. The default returns None."""
        return None

    def write_options(self) -> WriteOptions:
        """Called once per write: the user's choices from the config that change how existing
        data is treated (``drop_cascade``, CDC deletion mode). The default: no cascade, hard
        deletes."""
        return WriteOptions()
