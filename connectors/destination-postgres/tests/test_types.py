"""The column type of each Airbyte type, exactly as PostgreSQL reports it (``format_type``)."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import DestinationSuite, stream, sync_messages

pytestmark = pytest.mark.postgres
T = AirbyteType

CASES: dict[str, tuple[Any, str]] = {
    "string": (json_schema_for(T.STRING), "text"),
    "nullable_string": ({"type": ["null", "string"]}, "text"),
    "integer": (json_schema_for(T.INTEGER), "bigint"),
    "nullable_integer": ({"type": ["null", "integer"]}, "bigint"),
    "big_integer": ({"type": "integer", "airbyte_type": "big_integer"}, "numeric"),
    "integer_past_int64": ({"type": "integer", "minimum": -(2**64)}, "numeric"),
    "integer_in_int64": ({"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "bigint"),
    "number": (json_schema_for(T.NUMBER), "numeric"),
    "boolean": (json_schema_for(T.BOOLEAN), "boolean"),
    "date": (json_schema_for(T.DATE), "date"),
    "time": (json_schema_for(T.TIME_WITHOUT_TIMEZONE), "time without time zone"),
    "timetz": (json_schema_for(T.TIME_WITH_TIMEZONE), "time with time zone"),
    "timestamp": (json_schema_for(T.TIMESTAMP_WITHOUT_TIMEZONE), "timestamp without time zone"),
    "timestamptz": (json_schema_for(T.TIMESTAMP_WITH_TIMEZONE), "timestamp with time zone"),
    "binary": (json_schema_for(T.BINARY), "bytea"),
    "object": (json_schema_for(T.OBJECT), "jsonb"),
    "array": (json_schema_for(T.ARRAY), "jsonb"),
    "typed_array": ({"type": "array", "items": {"type": "integer"}}, "jsonb"),
    "unknown": ({}, "jsonb"),
    "union": ({"type": ["string", "integer"]}, "jsonb"),
    "one_of": ({"oneOf": [{"type": "string"}, {"type": "object"}]}, "jsonb"),
}
META = {
    "_airbyte_raw_id": "character varying",
    "_airbyte_extracted_at": "timestamp with time zone",
    "_airbyte_meta": "jsonb",
    "_airbyte_generation_id": "bigint",
}


def test_column_types(pg: Any) -> None:
    props = {"id": json_schema_for(T.INTEGER), **{name: schema for name, (schema, _) in CASES.items()}}
    cat = DestinationSuite.catalog([stream("typed", props)], "append", cursor=None, pk=None)
    pg.write(cat, sync_messages("typed", [{"id": 1}])).raise_on_failure()
    assert pg.column_types("public", "typed") == {
        "id": "bigint",
        **{name: pg_type for name, (_, pg_type) in CASES.items()},
        **META,
    }, "data columns in the stream's order, then the four metadata columns"
    (meta,) = pg.query(
        "SELECT attnotnull FROM pg_attribute "
        "WHERE attrelid = 'typed'::regclass AND attname = '_airbyte_raw_id'"
    )
    assert meta == (True,)
