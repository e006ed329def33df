"""Catalog from the dialect's table list: one stream per readable table or view."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dbkit.protocol import AirbyteStream, SyncMode
from dbkit.source.cdc.contract import DELETED_AT, TIMESTAMP_SCHEMA, UPDATED_AT
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
    """The default cursor offered for a table: the one its source declares
    (``table.extra["default_cursor"]``: a custom SQL stream's), else a column named like a
    "last changed" time."""
    declared = table.extra.get("default_cursor")
    if isinstance(declared, str) and table.column(declared) is not None:
        return declared
    by_name = {c.name.lower(): c for c in table.columns if c.handler.can_be_cursor}
    for hint in CURSOR_HINTS:
        column = by_name.get(hint)
        if column is not None:
            return column.name
    return None


def cdc_stream_for(table: TableInfo, resumable: bool, cdc: CdcCatalog) -> AirbyteStream:
    """A stream read by change data capture: incremental with the log position as the source's
    cursor and the primary key as its key, the meta columns in its schema. A view or a table
    without a primary key is offered as full refresh only (changes are applied by key)."""
    stream = stream_for(table, resumable)
    if table.kind != "table" or not table.primary_key:
        return AirbyteStream(
            name=stream.name,
            namespace=stream.namespace,
            json_schema=stream.json_schema,
            supported_sync_modes=(SyncMode.FULL_REFRESH,),
            source_defined_primary_key=stream.source_defined_primary_key,
            is_resumable=resumable,
        )
    properties = dict(stream.properties)
    for name, schema in cdc.meta_schema.items():
        properties[name] = dict(schema)
    properties[UPDATED_AT] = dict(TIMESTAMP_SCHEMA)
    properties[DELETED_AT] = dict(TIMESTAMP_SCHEMA)
    return AirbyteStream(
        name=stream.name,
        namespace=stream.namespace,
        json_schema={**stream.json_schema, "properties": properties},
        supported_sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
        source_defined_cursor=True,
        default_cursor_field=(cdc.position_column,),
        source_defined_primary_key=stream.source_defined_primary_key,
        is_resumable=resumable,
    )


class CdcCatalog:
    """What discovery needs of a change reader: its position column and meta column schemas."""

    def __init__(self, position_column: str, meta_schema: Mapping[str, Mapping[str, Any]]) -> None:
        self.position_column = position_column
        self.meta_schema = meta_schema


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
    tables: Iterable[TableInfo], resumable: dict[str, bool] | None = None, cdc: CdcCatalog | None = None
) -> list[AirbyteStream]:
    """One stream per table; with ``cdc`` (the connection reads a change log) as
    :func:`cdc_stream_for` describes them."""
    out = []
    for table in tables:
        key = str(table.descriptor)
        can_resume = (resumable or {}).get(key, bool(table.primary_key))
        out.append(
            cdc_stream_for(table, can_resume, cdc) if cdc is not None else stream_for(table, can_resume)
        )
    return out
