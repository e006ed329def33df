"""A deliberately broken destination: numbers are stored through a float."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pyarrow as pa

from dbkit.destination import BulkLoader
from dbkit.entrypoint import launch
from destination_sqlite import SqliteDestination
from destination_sqlite.dialect import SqliteBulkLoader, SqliteDestinationDialect


class LosesDigitsLoader(SqliteBulkLoader):
    def to_python(self, column: pa.ChunkedArray, arrow_type: pa.DataType) -> list[Any]:
        values = super().to_python(column, arrow_type)
        numeric = [v for v in values if isinstance(v, str)]
        if numeric and all(_is_number(v) for v in numeric):
            return [float(v) if isinstance(v, str) else v for v in values]  # the bug
        return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class LosesDigitsDialect(SqliteDestinationDialect):
    bulk_loader: ClassVar[type[BulkLoader]] = LosesDigitsLoader


class LosesDigitsDestination(SqliteDestination):
    dialect_class = LosesDigitsDialect


if __name__ == "__main__":
    sys.exit(launch(LosesDigitsDestination()))
