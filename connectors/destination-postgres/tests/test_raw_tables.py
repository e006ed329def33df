"""raw_tables: every record kept untouched in ``<table>_raw``, in the typed load's transaction,
refreshed (swapped) with the typed table."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.destination import to_json_text
from dbkit.testing.suites import (
    BASE_MS,
    ITEM_SCHEMA,
    DestinationSuite,
    item,
    record,
    state,
    stream,
    sync_messages,
)

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
RAW = {"raw_tables": True}


def raw_rows(pg: Any, cat: dict[str, Any], name: str) -> list[dict[str, Any]]:
    namespace, table = pg.raw_name(cat, name)
    rows: list[dict[str, Any]] = pg.read_table(table, namespace)
    for row in rows:
        row["_airbyte_data"] = _json(row["_airbyte_data"])
        row["_airbyte_meta"] = _json(row["_airbyte_meta"])
    return rows


def _json(value: Any) -> Any:
    """jsonb as psycopg returns it, with numbers compared by value (Decimal)."""
    return json.loads(json.dumps(value) if not isinstance(value, str) else value, parse_float=Decimal)


def _plain(value: Any) -> Any:
    return json.loads(to_json_text(value), parse_float=Decimal)


def test_append_keeps_every_record_with_the_typed_rows_raw_id(pg: Any) -> None:
    name = "items"
    cat = catalog([stream(name, ITEM_SCHEMA)], "append")
    first = [
        item(1, "a", 1),
        {**item(2, "b", 1), "extra": {"nested": [1, 2.50, None]}, "amount": "not a number"},
    ]
    pg.write(cat, sync_messages(name, first), **RAW).raise_on_failure()
    second = [item(3, "c", 2)]
    cat2 = catalog([stream(name, ITEM_SCHEMA)], "append", sync_id=2)
    pg.write(cat2, sync_messages(name, second, at=BASE_MS + 1000), **RAW).raise_on_failure()

    typed = {str(r["_raw_id"]): r for r in pg.rows(cat2, name)}
    raw = {str(r["_airbyte_raw_id"]): r for r in raw_rows(pg, cat2, name)}
    assert len(typed) == 3
    assert raw.keys() == typed.keys(), "each typed row's _airbyte_raw_id is that of its raw row"
    by_id = {int(r["_airbyte_data"]["id"]): r for r in raw.values()}
    for i, original in enumerate([*first, *second], start=1):
        assert by_id[i]["_airbyte_data"] == _plain(original), "the record's data, untouched"
    bad = by_id[2]
    assert bad["_airbyte_data"]["amount"] == "not a number"
    assert typed[str(bad["_airbyte_raw_id"])]["amount"] is None
    assert bad["_airbyte_meta"] == typed[str(bad["_airbyte_raw_id"])]["_meta"], "same _airbyte_meta"
    assert [c["field"] for c in bad["_airbyte_meta"]["changes"]] == ["amount"]
    assert {r["_airbyte_generation_id"] for r in raw.values()} == {1}
    namespace, table = pg.raw_name(cat2, name)
    assert (namespace, table) == ("public", "items_raw")
    assert pg.column_types(namespace, table) == {
        "_airbyte_raw_id": "character varying",
        "_airbyte_extracted_at": "timestamp with time zone",
        "_airbyte_meta": "jsonb",
        "_airbyte_generation_id": "bigint",
        "_airbyte_data": "jsonb",
    }
    assert pg.working_tables() == []


def test_dedup_keeps_the_newest_typed_row_and_every_raw_record(pg: Any) -> None:
    name = "items"
    cat = catalog([stream(name, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    rows = [item(1, "a", 1), item(1, "a newer", 2), item(2, "b", 1), item(1, "a older", 0)]
    pg.write(cat, sync_messages(name, rows), batch_records=2, **RAW).raise_on_failure()
    typed = pg.rows(cat, name)
    assert [(r["id"], r["name"]) for r in typed] == [(1, "a newer"), (2, "b")]
    raw = raw_rows(pg, cat, name)
    assert sorted(r["_airbyte_data"]["name"] for r in raw) == ["a", "a newer", "a older", "b"]
    raw_ids = {str(r["_airbyte_raw_id"]) for r in raw}
    assert len(raw_ids) == 4
    assert {str(r["_raw_id"]) for r in typed} <= raw_ids
    assert pg.working_tables() == []


def test_overwrite_swaps_the_raw_table_with_the_typed_one(pg: Any) -> None:
    name = "items"
    first = [item(1, "a", 1), item(2, "b", 1)]
    second = [item(7, "x", 5), item(8, "y", 5), item(9, "z", 6)]
    cat1 = catalog([stream(name, ITEM_SCHEMA)], "overwrite", generation=1)
    pg.write(cat1, sync_messages(name, first), **RAW).raise_on_failure()
    cat2 = catalog([stream(name, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
    broken = pg.write(cat2, sync_messages(name, second[:2], complete=False), **RAW)
    assert broken.exit_code != 0
    assert sorted(r["_airbyte_data"]["id"] for r in raw_rows(pg, cat2, name)) == [1, 2], "old raw rows stay"
    assert sorted(r["id"] for r in pg.rows(cat2, name)) == [1, 2]
    # the next attempt of generation 2 resumes both temporary tables
    pg.write(cat2, sync_messages(name, second[2:]), **RAW).raise_on_failure()
    raw = raw_rows(pg, cat2, name)
    assert sorted(r["_airbyte_data"]["id"] for r in raw) == [7, 8, 9]
    assert {r["_airbyte_generation_id"] for r in raw} == {2}
    assert {str(r["_airbyte_raw_id"]) for r in raw} == {str(r["_raw_id"]) for r in pg.rows(cat2, name)}
    assert pg.working_tables() == []
    assert pg.tables("public") == {"items", "items_raw"}


def test_truncate_and_merge_refresh_treat_raw_rows_like_typed_rows(pg: Any) -> None:
    name = "items"
    streams = [stream(name, ITEM_SCHEMA)]
    pg.write(
        catalog(streams, "append", generation=1, minimum_generation=0),
        sync_messages(name, [item(1, "a", 1)]),
        **RAW,
    ).raise_on_failure()
    merge_cat = catalog(streams, "append", generation=2, minimum_generation=0, sync_id=2)
    pg.write(merge_cat, sync_messages(name, [item(2, "b", 2)]), **RAW).raise_on_failure()
    assert sorted(r["_airbyte_generation_id"] for r in raw_rows(pg, merge_cat, name)) == [1, 2]
    drop_cat = catalog(streams, "append", generation=3, minimum_generation=2, sync_id=3)
    pg.write(drop_cat, sync_messages(name, [item(3, "c", 3)]), **RAW).raise_on_failure()
    assert sorted(r["_airbyte_generation_id"] for r in raw_rows(pg, drop_cat, name)) == [2, 3]
    truncate_cat = catalog(streams, "append", generation=4, minimum_generation=4, sync_id=4)
    pg.write(truncate_cat, sync_messages(name, [item(4, "d", 4)]), **RAW).raise_on_failure()
    raw = raw_rows(pg, truncate_cat, name)
    assert [(r["_airbyte_data"]["id"], r["_airbyte_generation_id"]) for r in raw] == [(4, 4)]
    assert [r["id"] for r in pg.rows(truncate_cat, name)] == [4]


def test_the_raw_rows_commit_with_the_typed_rows_or_not_at_all(pg: Any) -> None:
    """A raw row PostgreSQL refuses (a trigger raising) fails the batch: its typed rows are not
    committed either, and no STATE after them is echoed."""
    name = "items"
    cat = catalog([stream(name, ITEM_SCHEMA)], "append")
    pg.write(cat, sync_messages(name, [item(1, "a", 1)]), **RAW).raise_on_failure()
    pg.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW._airbyte_data->>'name' = 'refused' THEN RAISE EXCEPTION 'no raw row'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON items_raw FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    messages = [
        record(name, item(2, "b", 2)),
        state(name, {"upto": 1}, 1),
        record(name, item(3, "refused", 2)),
        record(name, item(4, "d", 2)),
        state(name, {"upto": 2}, 2),
    ]
    result = pg.write(cat, messages, batch_records=1, **RAW)
    assert result.exit_code != 0
    assert [s["stream"]["stream_state"]["upto"] for s in result.states()] == [1]
    assert [r["id"] for r in pg.rows(cat, name)] == [1, 2], "the failed batch's typed rows are not committed"
    assert sorted(r["_airbyte_data"]["id"] for r in raw_rows(pg, cat, name)) == [1, 2]


def test_json_jsonb_cannot_hold_is_repaired_never_dropped(pg: Any) -> None:
    name = "items"
    props = {"id": json_schema_for(AirbyteType.INTEGER), "s": json_schema_for(AirbyteType.STRING)}
    cat = catalog([stream(name, props)], "append", cursor=None, pk=None)
    lines = [
        b'{"type":"RECORD","record":{"stream":"items","emitted_at":1700000000000,'
        b'"data":{"id":1,"s":"nul\\u0000here","o":{"k\\u0000":"x\\u0000"}}}}',
        b'{"type":"RECORD","record":{"stream":"items","emitted_at":1700000000000,'
        b'"data":{"id":2,"s":"huge","n":1e200000}}}',
        b'{"type":"RECORD","record":{"stream":"items","emitted_at":1700000000000,'
        b'"data":{"id":3,"s":"escaped \\\\u0000 is text","big":123456789012345678901234567890.5}}}',
        state(name, {"upto": 3}, 3),
        {
            "type": "TRACE",
            "trace": {
                "type": "STREAM_STATUS",
                "emitted_at": 1.0,
                "stream_status": {"stream_descriptor": {"name": name}, "status": "COMPLETE"},
            },
        },
    ]
    pg.write(cat, lines, **RAW).raise_on_failure()
    namespace, table = pg.raw_name(cat, name)
    texts = [r[0] for r in pg.query(f'SELECT _airbyte_data::text FROM "{namespace}"."{table}"')]
    values = [json.loads(t, parse_float=Decimal) for t in texts]
    assert len(values) == 3, "no record is dropped"
    assert [r["id"] for r in pg.rows(cat, name)] == [1, 2, 3]
    stored = {v["id"]: v for v in values if isinstance(v, dict)}
    assert stored[1] == {"id": 1, "s": "nulhere", "o": {"k": "x"}}, "NUL removed, in keys too"
    # numeric cannot hold 1e200000: the record's exact text is kept, as a JSON string
    assert [v for v in values if isinstance(v, str)] == ['{"id":2,"s":"huge","n":1e200000}']
    assert stored[3] == {
        "id": 3,
        "s": "escaped \\u0000 is text",
        "big": Decimal("123456789012345678901234567890.5"),
    }


def test_deeply_nested_data_is_kept_in_the_raw_table(pg: Any) -> None:
    """jsonb's parser recurses (about 13,000 levels with the default max_stack_depth): the typed
    row holds NULL with a change past 10,000 levels, and the raw table keeps every record,
    as jsonb where PostgreSQL takes it, else as its exact text (a JSON string)."""
    name = "items"
    props = {"id": json_schema_for(AirbyteType.INTEGER), "j": {}}
    cat = catalog([stream(name, props)], "append", cursor=None, pk=None)

    def line(i: int, depth: int, inner: bytes = b"1") -> bytes:
        deep = b"[" * depth + inner + b"]" * depth
        return b'{"type":"RECORD","record":{"stream":"items","emitted_at":1,"data":{"id":%d,"j":%s}}}' % (
            i,
            deep,
        )

    lines = [
        line(1, 5_000, b'"nul\\u0000"'),  # repaired (NUL removed) at any depth
        line(2, 20_000),  # too deep for the typed column and for jsonb
        line(3, 1),
        state(name, {"upto": 3}, 3),
        {
            "type": "TRACE",
            "trace": {
                "type": "STREAM_STATUS",
                "emitted_at": 1.0,
                "stream_status": {"stream_descriptor": {"name": name}, "status": "COMPLETE"},
            },
        },
    ]
    pg.write(cat, lines, **RAW).raise_on_failure()
    (plan,) = pg.plans(cat).values()
    typed = pg.query(
        f'SELECT id, length(j::text), _airbyte_meta::text FROM "{plan.namespace}"."{plan.name}" ORDER BY id'
    )
    assert [(i, n) for i, n, _ in typed] == [(1, 2 * 5_000 + len('"nul"')), (2, None), (3, 3)]
    assert json.loads(typed[1][2])["changes"] == [
        {"field": "j", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}
    ]
    namespace, table = pg.raw_name(cat, name)
    raw = pg.query(
        f"SELECT jsonb_typeof(_airbyte_data), length(_airbyte_data::text), "
        f'position(\'nul\' in _airbyte_data::text) > 0 FROM "{namespace}"."{table}" ORDER BY 2'
    )
    assert [kind for kind, _, _ in raw] == ["object", "object", "string"], "every record is kept"
    assert raw[1][1] == len('{"j": , "id": 1}') + 2 * 5_000 + len('"nul"')  # jsonb's spacing
    assert raw[2][1] > 40_000  # the 20,000-level record, as its text


def test_raw_table_names_stay_apart_and_fit_63_bytes(pg: Any) -> None:
    long = "l" * 61
    names = ["t", "t_raw", long, long + "x"]
    streams = [stream(n, ITEM_SCHEMA) for n in names]
    cat = catalog(streams, "append")
    messages: list[dict[str, Any]] = []
    for i, n in enumerate(names):
        messages += sync_messages(n, [item(i, n, 1)])
    pg.write(cat, messages, **RAW).raise_on_failure()
    plans = pg.plans(cat)
    typed = {p.name for p in plans.values()}
    raw = {n: pg.raw_name(cat, n)[1] for n in names}
    assert len(set(raw.values())) == len(names)
    assert not set(raw.values()) & typed
    assert all(len(r.encode()) <= 63 for r in raw.values())
    assert raw["t_raw"] == "t_raw_raw"
    assert raw["t"] != "t_raw", "t_raw is the typed table of another stream"
    assert pg.tables("public") == typed | set(raw.values())
    for i, n in enumerate(names):
        (row,) = raw_rows(pg, cat, n)
        assert row["_airbyte_data"]["name"] == n
        assert row["_airbyte_data"]["id"] == i
