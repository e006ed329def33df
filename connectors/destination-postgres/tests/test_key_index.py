"""The key index of a dedup table: unique once the table holds each key once, so later dedup
writes need no scan of the whole table for duplicates; dropped by a write that may add
duplicates (append), and made again by the next dedup write. Batches whose keys only the
database can compare (numbers) are ranked by the MERGE."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import (
    ITEM_SCHEMA,
    DestinationSuite,
    item,
    record,
    state,
    status,
    stream,
    sync_messages,
)

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "items"


def _indexes(pg: Any, table: str = NAME) -> dict[str, tuple[bool, list[str]]]:
    rows = pg.query(
        "SELECT ic.relname, i.indisunique, array(SELECT a.attname::text FROM unnest(i.indkey) "
        "WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "ORDER BY k.o) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND t.relname = :t",
        t=table,
    )
    return {str(name): (bool(unique), list(columns)) for name, unique, columns in rows}


def _names(pg: Any, cat: dict[str, Any]) -> dict[int, str]:
    return {r["id"]: r["name"] for r in pg.rows(cat, NAME)}


def test_a_dedup_write_makes_its_key_index_unique(pg: Any) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 30)])).raise_on_failure()
    assert list(_indexes(pg).values()) == [(True, ["id"])]

    # later writes trust it, and the table stays one row per key
    pg.write(cat, sync_messages(NAME, [item(i, f"w{i}", 2) for i in range(20, 40)])).raise_on_failure()
    names = _names(pg, cat)
    assert len(names) == 39
    assert (names[19], names[20], names[39]) == ("v19", "w20", "w39")
    assert list(_indexes(pg).values()) == [(True, ["id"])]


def test_an_append_write_drops_the_unique_key_index_and_the_next_dedup_collapses(pg: Any) -> None:
    dedup = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    append = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append")
    pg.write(dedup, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 11)])).raise_on_failure()

    # an append of keys already held must not hit the index a dedup write made
    result = pg.write(append, sync_messages(NAME, [item(i, f"a{i}", 2) for i in range(1, 6)]))
    result.raise_on_failure()
    assert len(pg.rows(append, NAME)) == 15
    assert not any(unique for unique, _ in _indexes(pg).values())
    assert any("dropped the unique key index" in line for line in result.logs())

    # the next dedup write keeps the newest row of each key, and makes the index unique again
    pg.write(dedup, sync_messages(NAME, [item(10, "d10", 3)])).raise_on_failure()
    names = _names(pg, dedup)
    assert names == {**{i: f"a{i}" for i in range(1, 6)}, **{i: f"v{i}" for i in range(6, 10)}, 10: "d10"}
    assert list(_indexes(pg).values()) == [(True, ["id"])]


def test_a_non_unique_key_index_of_an_older_write_is_rebuilt_unique(pg: Any) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 11)])).raise_on_failure()
    (name,) = _indexes(pg)
    pg.execute(f'DROP INDEX public."{name}"', f'CREATE INDEX "{name}" ON public.{NAME} (id)')
    pg.execute(f"INSERT INTO public.{NAME} SELECT * FROM public.{NAME} WHERE id = 3")  # a duplicate

    pg.write(cat, sync_messages(NAME, [item(5, "w5", 2)])).raise_on_failure()
    names = _names(pg, cat)
    assert len(pg.rows(cat, NAME)) == 10
    assert (names[3], names[5]) == ("v3", "w5")
    assert _indexes(pg) == {name: (True, ["id"])}


def test_a_users_unique_index_is_the_only_key_index(pg: Any) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 11)])).raise_on_failure()
    for name in _indexes(pg):
        pg.execute(f'DROP INDEX public."{name}"')
    pg.execute(f"ALTER TABLE public.{NAME} ADD CONSTRAINT items_pk PRIMARY KEY (id)")

    pg.write(cat, sync_messages(NAME, [item(i, f"w{i}", 2) for i in range(5, 15)])).raise_on_failure()
    assert _indexes(pg) == {"items_pk": (True, ["id"])}
    assert len(_names(pg, cat)) == 14

    # an append that would break the user's own index is refused, with a clear error
    append = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append")
    result = pg.write(append, sync_messages(NAME, [item(1, "again", 3)]))
    assert result.errors()[0]["failure_type"] == "config_error"
    assert _indexes(pg) == {"items_pk": (True, ["id"])}


def test_number_keys_equal_as_numbers_are_one_key_within_a_batch(pg: Any) -> None:
    schema = {"id": json_schema_for(AirbyteType.NUMBER), "name": json_schema_for(AirbyteType.STRING)}
    cat = catalog([stream(NAME, schema, pk=["id"])], "append_dedup", cursor=None)
    messages = [
        record(NAME, {"id": Decimal("1"), "name": "first"}, 1_000),
        record(NAME, {"id": Decimal("1.0"), "name": "second"}, 2_000),
        record(NAME, {"id": Decimal("2.50"), "name": "x"}, 1_000),
        record(NAME, {"id": Decimal("2.5"), "name": "y"}, 3_000),
        state(NAME, {"upto": 4}, 4),
        status(NAME),
    ]
    pg.write(cat, messages).raise_on_failure()
    rows = pg.query(f"SELECT id, name FROM public.{NAME} ORDER BY id")
    assert [(Decimal(r[0]), r[1]) for r in rows] == [(Decimal(1), "second"), (Decimal("2.5"), "y")]


def test_keys_the_database_compares_its_own_way_are_ranked_by_it(pg: Any) -> None:
    # a uuid key: two spellings of one value are one key, though their texts differ
    pg.execute(f"CREATE TABLE public.{NAME} (id uuid, name text)")
    schema = {"id": json_schema_for(AirbyteType.STRING), "name": json_schema_for(AirbyteType.STRING)}
    cat = catalog([stream(NAME, schema, pk=["id"])], "append_dedup", cursor=None)
    one = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    messages = [
        record(NAME, {"id": one, "name": "first"}, 1_000),
        record(NAME, {"id": one.upper(), "name": "second"}, 2_000),
        state(NAME, {"upto": 2}, 2),
        status(NAME),
    ]
    pg.write(cat, messages).raise_on_failure()
    assert pg.query(f"SELECT id::text, name FROM public.{NAME}") == [(one, "second")]
    # and again, now that the key index is unique
    pg.write(cat, messages).raise_on_failure()
    assert pg.query(f"SELECT id::text, name FROM public.{NAME}") == [(one, "second")]


def test_a_unique_index_in_another_column_order_still_gets_a_key_index_to_probe(pg: Any) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id", "name"])], "append_dedup", pk=("id", "name"))
    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 6)])).raise_on_failure()
    for name in _indexes(pg):
        pg.execute(f'DROP INDEX public."{name}"')
    pg.execute(f"ALTER TABLE public.{NAME} ADD CONSTRAINT items_pk PRIMARY KEY (name, id)")

    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 2) for i in range(3, 8)])).raise_on_failure()
    indexes = _indexes(pg)
    assert indexes.pop("items_pk") == (True, ["name", "id"])
    assert list(indexes.values()) == [(False, ["id", "name"])]
    assert len(pg.rows(cat, NAME)) == 7
