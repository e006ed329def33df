"""A deliberately broken source: numbers go through a float and lose digits."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from dbkit.db.types import AirbyteType, TypeHandler, TypeRegistry
from dbkit.entrypoint import launch
from source_sqlite import SqliteSource
from source_sqlite.dialect import SqliteSourceDialect, build_types


def _as_float(value: Any) -> Any:
    return float(value)  # the bug


def _types() -> TypeRegistry:
    types = build_types()
    lossy = TypeHandler(AirbyteType.NUMBER, _as_float)
    types.register(["numeric", "decimal", "real", "decimal_blob"], lossy)
    return types


class LosesDigitsDialect(SqliteSourceDialect):
    types: ClassVar[TypeRegistry] = _types()


class LosesDigitsSource(SqliteSource):
    dialect_class = LosesDigitsDialect


if __name__ == "__main__":
    sys.exit(launch(LosesDigitsSource()))
