"""Catalog from the dialect's table list: one stream per readable table or view."""

from __future__ import annotations

from collections.abc import Iterable

from dbkit.protocol import AirbyteStream, SyncMode
from dbkit.source.model import TableInfo

# Column names that usually carry "last changed" times, best first; suggested as default cursor.
CURSOR_HINTS = (
    "updated_at",
    "modified_at",
    "last_modified",
    "last_modified_at",
    "last_updated",
    "updated",
    "modified",
    "update_time",
    "changed_at",
    "updated_on",
    "modified_on",
)


def suggested_cursor(table: TableInfo) -> str | None:
    by_name = {c.name.lower(): c for c in table.columns if c.handler.can_be_cursor}
    for hint in CURSOR_HINTS:
        column = by_name.get(hint)
        if column is not None:
            return column.name
    return None


def stream_for(table: TableInfo, resumable: bool) -> AirbyteStream:
    properties = {c.name: c.handler.json_schema(c.nullable) for c in table.columns}
    has_cursor = any(c.handler.can_be_cursor for c in table.columns)
    cursor = suggested_cursor(table)
    return AirbyteStream(
        name=table.name,
        namespace=table.namespace,
        json_schema={
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": properties,
        },
        supported_sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
        if has_cursor
        else (SyncMode.FULL_REFRESH,),
        source_defined_cursor=False,
        default_cursor_field=(cursor,) if cursor else (),
        source_defined_primary_key=tuple((c,) for c in table.primary_key),
        is_resumable=resumable,
    )


def catalog_streams(
    tables: Iterable[TableInfo], resumable: dict[str, bool] | None = None
) -> list[AirbyteStream]:
    out = []
    for table in tables:
        key = str(table.descriptor)
        out.append(stream_for(table, (resumable or {}).get(key, bool(table.primary_key))))
    return out
