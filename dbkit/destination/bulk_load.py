"""The bulk-loading role of a destination: typed batches into a table, in the caller's
transaction. The default is portable (``executemany`` of the rows); a connector overrides
:meth:`BulkLoader.load_batches` with what its database does better (COPY, LOAD DATA, ...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from dbkit.db.dialect import Dialect
from dbkit.destination.batch import TYPECAST, Batch
from dbkit.destination.type_mapping import TypeMapping
from dbkit.destination.write import WriteContext


class ValueRefused(Exception):
    """The database refused one value of a batch that the casting rules accepted (a safety net:
    e.g. a user's column of a type the rules do not know). ``part`` is the index of the batch
    among those given to :meth:`BulkLoader.load_batches`, ``row`` the row in it. The loader then
    stores NULL there with a change (``reason``) and loads the batch again."""

    def __init__(self, part: int, row: int, column: str, reason: str = TYPECAST, detail: str = "") -> None:
        super().__init__(f"value of column {column!r} refused: {detail}")
        self.part = part
        self.row = row
        self.column = column
        self.reason = reason
        self.detail = detail


class BulkLoader:
    """Sends typed batches. Stateless; made once per dialect (``dialect.bulk``), with the
    dialect's type mapping."""

    def __init__(self, dialect: Dialect[Any], types: TypeMapping) -> None:
        self.dialect = dialect
        self.types = types

    def load_batches(
        self, conn: sa.Connection, table: sa.Table, batches: Iterable[Batch], write: WriteContext
    ) -> None:
        """Called once per load (and again after a :class:`ValueRefused`): insert the typed
        batches (the parts of one load, built as they are iterated) into ``table`` in the
        caller's transaction. The default calls :meth:`bulk_load` for each. May raise
        :class:`ValueRefused` (then the transaction is rolled back and the load repeated)."""
        for batch in batches:
            self.bulk_load(conn, table, batch.table)

    def encode(self, batch: Batch) -> Any:
        """Called on the builder's thread as each part is built, ahead of its load (for the parts
        that will be loaded as they are: appends, and the rows of new keys of a dedup): what
        :meth:`load_batches` would send for it, made ahead (kept as ``batch.encoded``), so that
        the load only sends. None (the default): nothing is made ahead."""
        return None

    def bulk_load(self, conn: sa.Connection, table: sa.Table, batch: pa.Table) -> None:
        """Called per part by the default :meth:`load_batches`: insert one typed batch; the
        default converts it to rows (:meth:`to_python`) and uses ``executemany``."""
        columns = [
            self.to_python(batch.column(i), batch.schema.field(i).type) for i in range(batch.num_columns)
        ]
        rows = [dict(zip(batch.column_names, values, strict=True)) for values in zip(*columns, strict=True)]
        if rows:
            conn.execute(table.insert(), rows)

    def to_python(self, column: pa.ChunkedArray, arrow_type: pa.DataType) -> list[Any]:
        """Called per batch column by :meth:`bulk_load`: its values as the driver binds them."""
        values: list[Any] = column.to_pylist()
        return values

    def clear_staging(self, conn: sa.Connection, staging: sa.Table) -> None:
        """Called before each batch of a dedup stream is loaded into its staging table (in the
        batch's transaction): empty it."""
        conn.execute(sa.delete(staging))
