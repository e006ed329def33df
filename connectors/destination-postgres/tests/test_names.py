"""PostgreSQL's 63-byte identifiers: tables, temporary tables, staging tables, indexes and
columns whose names collide once cut get distinct hash-suffixed names (multi-byte characters are
never cut in half); reserved words and names the generated SQL uses itself cannot break it."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import BASE_MS, DestinationSuite, stream, sync_messages

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
STRING = json_schema_for(AirbyteType.STRING)
INTEGER = json_schema_for(AirbyteType.INTEGER)


def fits(name: str) -> bool:
    return len(name.encode("utf-8")) <= 63


def indexes(pg: Any, schema: str) -> dict[str, str]:
    """index name -> table name, in a schema."""
    return {
        str(r[0]): str(r[1])
        for r in pg.query("SELECT indexname, tablename FROM pg_indexes WHERE schemaname = :s", s=schema)
    }


@pytest.mark.parametrize("mode", ["append_dedup", "overwrite"])
def test_long_multibyte_names_that_collide_when_cut(pg: Any, mode: str) -> None:
    schema = "Schéma " + "ü" * 40  # 89 bytes
    head = "Ström_" + "é" * 40  # 87 bytes: the first 63 bytes of both streams are equal
    names = [head + "_first", head + "_second"]
    cols = ["ç" * 35 + "_x", "ç" * 35 + "_y", "ç" * 35]  # 72, 72, 70 bytes
    props = {"id": INTEGER, "updated_at": STRING, **dict.fromkeys(cols, STRING)}
    streams = [stream(n, props, namespace=schema, pk=["id"]) for n in names]
    cat = catalog(streams, mode, generation=1)
    messages: list[dict[str, Any]] = []
    for n in names:
        rows = [{"id": 1, "updated_at": "1", **{c: f"{n}|{c}|old" for c in cols}}]
        rows.append({"id": 1, "updated_at": "2", **{c: f"{n}|{c}" for c in cols}})
        messages += sync_messages(n, rows, namespace=schema)
    pg.write(cat, messages).raise_on_failure()
    if mode == "overwrite":  # a second refresh: temporary tables and their indexes again
        cat = catalog(streams, mode, generation=2, sync_id=2)
        newest = [m for m in messages if m["type"] != "RECORD" or m["record"]["data"]["updated_at"] == "2"]
        pg.write(cat, newest).raise_on_failure()
    plans = pg.plans(cat)
    (namespace,) = {p.namespace for p in plans.values()}
    assert namespace is not None
    assert fits(namespace)
    assert namespace.startswith("Schéma_ü")
    tables = {p.name for p in plans.values()}
    assert len(tables) == 2
    assert all(fits(t) for t in tables)
    assert pg.tables(namespace) == tables, "PostgreSQL did not cut any name itself"
    for plan in plans.values():
        columns = [c.name for c in plan.columns]
        assert len(set(columns)) == len(columns)
        assert all(fits(c) for c in columns)
        assert set(pg.column_types(namespace, plan.name)) >= set(columns)
        (row,) = pg.read_table(plan.name, namespace)
        for column in plan.columns:
            if column.field in cols:
                assert row[column.name] == f"{plan.descriptor.name}|{column.field}"
        assert all(fits(t) for t in (plan.tmp_name,))
    if mode == "append_dedup":
        found = indexes(pg, namespace)
        assert all(fits(i) for i in found)
        assert sorted(found.values()) == sorted(tables), "one key index per table, distinct names"
    assert pg.working_tables() == []


def test_names_the_generated_sql_uses_itself(pg: Any) -> None:
    """Fields named like the merge's own columns (row_number, _dbkit_rn, _dbkit_seq), metadata
    columns, reserved words and quotes, as key, cursor and data, in append_dedup with CDC."""
    fields = [
        "row_number",
        "_dbkit_rn",
        "_dbkit_seq",
        "_airbyte_raw_id",
        "_airbyte_meta",
        "_airbyte_extracted_at",
        "_airbyte_generation_id",
        "select",
        'qu"ote',
        "a;b--c",
        "t",
        "s",
        "x",
    ]
    props = {
        **dict.fromkeys(fields, STRING),
        "order": INTEGER,
        "group": STRING,
        "_ab_cdc_deleted_at": STRING,
    }
    name = 'the "stream"; drop table x; --'
    cat = catalog([stream(name, props, pk=["order"])], "append_dedup", cursor="group", pk=["order"])
    rows = [{**{f: f"{f}|{i}" for f in fields}, "order": i % 3, "group": f"g{i}"} for i in range(6)]
    rows.append({"order": 0, "group": "g9", "_ab_cdc_deleted_at": "now"})  # deletes key 0
    rows.append({"order": 1, "group": "g0"})  # older than the stored version of key 1: ignored
    pg.write(cat, sync_messages(name, rows), batch_records=3).raise_on_failure()
    pg.write(cat, sync_messages(name, rows[4:6], at=BASE_MS + 1000)).raise_on_failure()
    plan = pg.plan(cat, name)
    stored = {r["order"]: r for r in pg.rows(cat, name)}
    assert sorted(stored) == [1, 2]
    assert stored[1]["group"] == "g4"
    assert stored[2]["group"] == "g5"
    for field in fields:
        assert stored[2][field] == f"{field}|5"
    assert len({c.name for c in plan.columns}) == len(props)
    raw_ids = {str(r["_raw_id"]) for r in stored.values()}
    assert all(len(r) == 36 for r in raw_ids), "_airbyte_raw_id kept its meaning"
    assert pg.working_tables() == []
