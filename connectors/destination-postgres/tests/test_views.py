"""Views on destination tables: with ``drop_cascade`` off a refresh or a column type change that
would drop them stops with a config_error naming them (old data kept); with it on, the sync
drops them and succeeds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import ITEM_SCHEMA, DestinationSuite, item, stream, sync_messages

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "items"


def views(pg: Any) -> set[str]:
    return {r[0] for r in pg.query("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}


def config_error(result: Any) -> str:
    assert result.exit_code != 0
    (error,) = result.errors()
    assert error["failure_type"] == "config_error", error
    message: str = error["message"]
    return message


@pytest.mark.parametrize("raw_tables", [False, True])
def test_overwrite_with_a_dependent_view(pg: Any, raw_tables: bool) -> None:
    old = [item(1, "old", 1), item(2, "old", 1)]
    pg.write(
        catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=1),
        sync_messages(NAME, old),
        raw_tables=raw_tables,
    ).raise_on_failure()
    on = "items_raw" if raw_tables else NAME  # a view on the raw table blocks the swap of both
    pg.execute(f'CREATE VIEW "My View" AS SELECT * FROM "{on}"')
    cat2 = catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
    new = [item(7, "new", 2)]
    message = config_error(pg.write(cat2, sync_messages(NAME, new), raw_tables=raw_tables))
    assert "My View" in message
    assert "drop_cascade" in message
    assert [(r["id"], r["name"]) for r in pg.rows(cat2, NAME)] == [(1, "old"), (2, "old")], "old data kept"
    if raw_tables:
        assert len(pg.read_table("items_raw", "public")) == 2, "the raw table was not swapped either"
    assert views(pg) == {"My View"}

    cat3 = catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=3, sync_id=3)
    pg.write(cat3, sync_messages(NAME, new), drop_cascade=True, raw_tables=raw_tables).raise_on_failure()
    assert [(r["id"], r["name"], r["_generation"]) for r in pg.rows(cat3, NAME)] == [(7, "new", 3)]
    assert views(pg) == set(), "the view was dropped with the replaced table"
    assert pg.working_tables() == []


def test_a_foreign_key_to_the_table_blocks_an_overwrite_without_drop_cascade(pg: Any) -> None:
    pg.write(
        catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=1),
        sync_messages(NAME, [item(1, "a", 1)]),
    ).raise_on_failure()
    pg.execute(
        f'ALTER TABLE "{NAME}" ADD CONSTRAINT items_id_key UNIQUE (id)',
        f'CREATE TABLE child (item_id bigint CONSTRAINT child_item_fk REFERENCES "{NAME}" (id))',
    )
    cat2 = catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
    message = config_error(pg.write(cat2, sync_messages(NAME, [item(2, "b", 1)])))
    assert "child_item_fk" in message
    assert [r["id"] for r in pg.rows(cat2, NAME)] == [1]


def test_a_type_change_under_a_view(pg: Any) -> None:
    def cat(v: AirbyteType, sync: int) -> dict[str, Any]:
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "v": json_schema_for(v),
            "w": json_schema_for(AirbyteType.INTEGER),
        }
        return catalog([stream(NAME, props)], "append", cursor=None, pk=None, sync_id=sync)

    pg.write(cat(AirbyteType.INTEGER, 1), sync_messages(NAME, [{"id": 1, "v": 7, "w": 1}])).raise_on_failure()
    pg.execute(f'CREATE VIEW on_w AS SELECT id, w FROM "{NAME}"')
    # integer -> number: the view does not use v, so nothing is in the way
    pg.write(
        cat(AirbyteType.NUMBER, 2), sync_messages(NAME, [{"id": 2, "v": Decimal("2.5"), "w": 2}])
    ).raise_on_failure()
    assert pg.column_types("public", NAME)["v"] == "numeric"
    assert views(pg) == {"on_w"}

    pg.execute(f'CREATE VIEW on_v AS SELECT id, v FROM "{NAME}"')
    message = config_error(
        pg.write(cat(AirbyteType.STRING, 3), sync_messages(NAME, [{"id": 3, "v": "x", "w": 3}]))
    )
    assert "on_v" in message
    assert "'v'" in message
    assert pg.column_types("public", NAME)["v"] == "numeric", "nothing changed"
    assert [r["id"] for r in pg.rows(cat(AirbyteType.STRING, 3), NAME)] == [1, 2]

    pg.write(
        cat(AirbyteType.STRING, 3), sync_messages(NAME, [{"id": 3, "v": "x", "w": 3}]), drop_cascade=True
    ).raise_on_failure()
    assert pg.column_types("public", NAME)["v"] == "text"
    assert views(pg) == {"on_w"}, "only the view using the column was dropped"
    assert {r["id"]: r["v"] for r in pg.rows(cat(AirbyteType.STRING, 3), NAME)} == {1: "7", 2: "2.5", 3: "x"}
