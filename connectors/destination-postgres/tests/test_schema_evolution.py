"""Schema evolution between syncs (the rule in the README): new fields become new columns;
integer widens to numeric; any other type change makes the column text (JSON columns stay
jsonb), which keeps every stored value; columns never narrow back; a column the stream no longer
has is kept (NULL in new rows)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import BASE_MS, DestinationSuite, stream, sync_messages

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "evolving"
T = AirbyteType


def cat(types: dict[str, AirbyteType], sync: int, mode: str = "append") -> dict[str, Any]:
    props = {"id": json_schema_for(T.INTEGER), **{k: json_schema_for(v) for k, v in types.items()}}
    return catalog([stream(NAME, props, pk=["id"])], mode, cursor=None, pk=["id"], sync_id=sync)


@pytest.mark.parametrize("mode", ["append", "append_dedup"])
def test_types_widen_columns_are_added_and_kept(pg: Any, mode: str) -> None:
    first = {"a": T.INTEGER, "b": T.BOOLEAN, "c": T.STRING, "d": T.DATE, "j": T.OBJECT, "gone": T.STRING}
    pg.write(
        cat(first, 1, mode),
        sync_messages(
            NAME, [{"id": 1, "a": 7, "b": True, "c": "x", "d": "2024-01-01", "j": {"k": 1}, "gone": "g"}]
        ),
    ).raise_on_failure()
    assert pg.column_types("public", NAME) == {
        "id": "bigint",
        "a": "bigint",
        "b": "boolean",
        "c": "text",
        "d": "date",
        "j": "jsonb",
        "gone": "text",
        "_airbyte_raw_id": "character varying",
        "_airbyte_extracted_at": "timestamp with time zone",
        "_airbyte_meta": "jsonb",
        "_airbyte_generation_id": "bigint",
    }

    second = {
        "a": T.NUMBER,
        "b": T.INTEGER,
        "c": T.INTEGER,
        "d": T.TIMESTAMP_WITH_TIMEZONE,
        "j": T.INTEGER,
        "new": T.STRING,
    }
    row2 = {"id": 2, "a": Decimal("2.5"), "b": 5, "c": 6, "d": "2024-01-02T03:04:05Z", "j": 8, "new": "n"}
    pg.write(cat(second, 2, mode), sync_messages(NAME, [row2], at=BASE_MS + 1000)).raise_on_failure()
    types = pg.column_types("public", NAME)
    assert {k: types[k] for k in ("a", "b", "c", "d", "j", "gone", "new")} == {
        "a": "numeric",  # integer -> number: numeric
        "b": "text",  # boolean -> integer: incompatible, text keeps both
        "c": "text",  # text takes anything
        "d": "text",  # date -> timestamp: incompatible, text
        "j": "jsonb",  # JSON takes anything
        "gone": "text",  # no longer in the stream: kept
        "new": "text",
    }
    rows = {r[0]: r[1:] for r in pg.query('SELECT id, a::text, b, c, d, j::text, gone, new FROM "evolving"')}
    assert rows == {
        1: ("7", "true", "x", "2024-01-01", '{"k": 1}', "g", None),
        2: ("2.5", "5", "6", "2024-01-02T03:04:05Z", "8", None, "n"),
    }
    (meta,) = pg.query("SELECT _airbyte_meta->'changes' FROM evolving WHERE id = 2")
    assert meta[0] == [], "no value of the second sync was lost"

    # the first schema again: nothing narrows back, and the values still fit
    pg.write(
        cat(first, 3, mode),
        sync_messages(
            NAME,
            [{"id": 3, "a": 9, "b": False, "c": "z", "d": "2024-03-01", "j": [1], "gone": "g3"}],
            at=BASE_MS + 2000,
        ),
    ).raise_on_failure()
    assert pg.column_types("public", NAME) == types
    rows = {r[0]: r[1:] for r in pg.query('SELECT id, a::text, b, d, gone, new FROM "evolving"')}
    assert rows[3] == ("9", "false", "2024-03-01", "g3", None)
    assert len(rows) == 3
