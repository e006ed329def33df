"""The source framework: discovery, read plans, checkpoints, stream status."""

from dbkit.source.connector import SqlSource
from dbkit.source.dialect import ColumnInfo, RowLocator, SourceDialect, TableInfo
from dbkit.source.reader import ReadSettings, SourceReader, StreamOutcome

__all__ = [
    "ColumnInfo",
    "ReadSettings",
    "RowLocator",
    "SourceDialect",
    "SourceReader",
    "SqlSource",
    "StreamOutcome",
    "TableInfo",
]
