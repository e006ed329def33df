"""A deliberately broken source: a resumed read starts one key too far and drops a row."""

from __future__ import annotations

import sys
from typing import Any

import sqlalchemy as sa

from dbkit.entrypoint import launch
from dbkit.source import ColumnInfo
from source_sqlite import SqliteSource
from source_sqlite.dialect import SqliteSourceDialect


class DropsRowDialect(SqliteSourceDialect):
    def bind_state_value(self, column: ColumnInfo, value: Any) -> sa.ColumnElement[Any]:
        if isinstance(value, int) and not isinstance(value, bool):
            value += 1  # the bug: "after key 7" becomes "after key 8"
        return super().bind_state_value(column, value)


class DropsRowSource(SqliteSource):
    dialect_class = DropsRowDialect


if __name__ == "__main__":
    sys.exit(launch(DropsRowSource()))
