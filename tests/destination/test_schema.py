"""Schema evolution between syncs on destination-sqlite (dbkit.destination.schema)."""

from __future__ import annotations

import sqlite3
from typing import Any

META = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id"]


def _sync(dest: Any, m: Any, fields: dict[str, str], records: list[dict[str, Any]], **stream: Any) -> None:
    cat = m.catalog(m.stream("s", fields, **stream))
    lines = [m.record("s", r, emitted_at=1_700_000_000_000 + i) for i, r in enumerate(records)]
    dest.ok(cat, [*lines, m.status("s")])


def test_column_added_between_syncs(dest: Any, msgs: Any) -> None:
    _sync(dest, msgs, {"id": "integer", "a": "string"}, [{"id": 1, "a": "x"}])
    _sync(dest, msgs, {"id": "integer", "a": "string", "b": "date"}, [{"id": 2, "a": "y", "b": "2024-01-01"}])
    assert dest.columns("s") == ["id", "a", *META, "b"]
    assert dest.rows("s", order_by="id") == [
        {"id": 1, "a": "x", "b": None},
        {"id": 2, "a": "y", "b": "2024-01-01"},
    ]
    assert dest.column_types("s")["b"] == "DATE"


def test_column_removed_from_the_schema_is_kept(dest: Any, msgs: Any) -> None:
    _sync(dest, msgs, {"id": "integer", "a": "string"}, [{"id": 1, "a": "x"}])
    _sync(dest, msgs, {"id": "integer"}, [{"id": 2, "a": "ignored: not in the schema"}])
    assert dest.columns("s") == ["id", "a", *META]
    assert dest.rows("s", order_by="id") == [{"id": 1, "a": "x"}, {"id": 2, "a": None}]
    assert dest.meta("s")[1] == {"changes": [], "sync_id": None}


def test_integer_widened_to_number(dest: Any, msgs: Any) -> None:
    _sync(dest, msgs, {"id": "integer", "x": "integer"}, [{"id": 1, "x": 5}, {"id": 2, "x": 2**62}])
    assert dest.column_types("s")["x"] == "INTEGER"
    _sync(dest, msgs, {"id": "integer", "x": "number"}, [{"id": 3, "x": 1.5}])
    assert dest.column_types("s")["x"] == "DECIMAL_BLOB"
    assert dest.columns("s") == ["id", "x", *META]
    assert dest.rows("s", order_by="id") == [{"id": 1, "x": 5}, {"id": 2, "x": 2**62}, {"id": 3, "x": 1.5}]
    # back to integer: a number column takes integers, nothing narrows
    _sync(dest, msgs, {"id": "integer", "x": "integer"}, [{"id": 4, "x": 7}])
    assert dest.column_types("s")["x"] == "DECIMAL_BLOB"
    assert dest.rows("s", order_by="id")[-1] == {"id": 4, "x": 7}


def test_number_and_boolean_widened_to_string(dest: Any, msgs: Any) -> None:
    fields = {"id": "integer", "n": "number", "b": "boolean"}
    _sync(dest, msgs, fields, [{"id": 1, "n": 1.5, "b": True}, {"id": 2, "n": 10, "b": False}])
    _sync(dest, msgs, {"id": "integer", "n": "string", "b": "string"}, [{"id": 3, "n": "007", "b": "yes"}])
    types = dest.column_types("s")
    assert (types["n"], types["b"]) == ("TEXT", "TEXT")
    # stored values keep their value, now as text; the new text is stored exactly (not as 7)
    assert dest.rows("s", order_by="id") == [
        {"id": 1, "n": "1.5", "b": "1"},
        {"id": 2, "n": "10", "b": "0"},
        {"id": 3, "n": "007", "b": "yes"},
    ]
    with dest.connect() as conn:
        assert conn.execute("SELECT typeof(n) FROM s WHERE id = 3").fetchone() == ("text",)


def test_widening_keeps_indexes_views_and_rows(dest: Any, msgs: Any) -> None:
    fields = {"id": "integer", "x": "integer"}
    _sync(dest, msgs, fields, [{"id": 1, "x": 1}], mode="append_dedup", pk=["id"])
    with dest.connect() as conn:
        conn.execute('CREATE UNIQUE INDEX "users_own_pk" ON s (id)')
        conn.execute("CREATE VIEW v AS SELECT id, x FROM s")
    _sync(
        dest,
        msgs,
        {"id": "integer", "x": "number"},
        [{"id": 1, "x": 2.5}, {"id": 2, "x": 3}],
        mode="append_dedup",
        pk=["id"],
    )
    assert dest.column_types("s")["x"] == "DECIMAL_BLOB"
    with dest.connect() as conn:
        indexes = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 's'")
        }
        assert "users_own_pk" in indexes
        assert conn.execute("SELECT * FROM v ORDER BY id").fetchall() == [(1, 2.5), (2, 3)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sorted(dest.tables()) == ["s"]


def test_table_from_an_older_layout_gets_the_missing_meta_columns(dest: Any, msgs: Any) -> None:
    with sqlite3.connect(dest.db_path) as conn:
        conn.execute(
            'CREATE TABLE s (id INTEGER, a TEXT, "_airbyte_raw_id" TEXT NOT NULL, '
            '"_airbyte_extracted_at" TIMESTAMPTZ NOT NULL, "_airbyte_meta" JSON NOT NULL)'
        )
        conn.execute(
            "INSERT INTO s VALUES (1, 'old', '00000000-0000-4000-8000-000000000000', "
            "'2020-01-01T00:00:00.000000Z', '{\"changes\":[],\"sync_id\":null}')"
        )
    _sync(
        dest,
        msgs,
        {"id": "integer", "a": "string"},
        [{"id": 2, "a": "new"}],
        generation_id=5,
        minimum_generation_id=0,
        sync_id=8,
    )
    assert dest.columns("s") == ["id", "a", *META]
    assert dest.rows("s", order_by="id") == [{"id": 1, "a": "old"}, {"id": 2, "a": "new"}]
    assert dest.generations("s", order_by="id") == [None, 5]
    assert dest.meta("s", order_by="id")[1] == {"changes": [], "sync_id": 8}


def test_table_from_a_layout_without_any_meta_columns(dest: Any, msgs: Any) -> None:
    with sqlite3.connect(dest.db_path) as conn:
        conn.execute("CREATE TABLE s (id INTEGER, a TEXT)")
        conn.execute("INSERT INTO s VALUES (1, 'old')")
    _sync(dest, msgs, {"id": "integer", "a": "string"}, [{"id": 2, "a": "new"}])
    assert dest.columns("s") == ["id", "a", *META]
    raw = dest.raw_rows("s", order_by="id")
    assert [r["_airbyte_raw_id"] is None for r in raw] == [True, False]
    assert [(r["id"], r["a"]) for r in raw] == [(1, "old"), (2, "new")]


def test_field_renamed_only_by_case_uses_the_existing_column(dest: Any, msgs: Any) -> None:
    _sync(
        dest,
        msgs,
        {"id": "integer", "name": "string"},
        [{"id": 1, "name": "a"}],
        mode="append_dedup",
        pk=["id"],
    )
    _sync(
        dest,
        msgs,
        {"ID": "integer", "Name": "string"},
        [{"ID": 1, "Name": "b"}, {"ID": 2, "Name": "c"}],
        mode="append_dedup",
        pk=["ID"],
    )
    assert dest.columns("s") == ["id", "name", *META]
    assert dest.rows("s", order_by="id") == [{"id": 1, "name": "b"}, {"id": 2, "name": "c"}]


def test_user_declared_column_types_are_understood(dest: Any, msgs: Any) -> None:
    with sqlite3.connect(dest.db_path) as conn:
        conn.execute("CREATE TABLE s (id BIGINT, price DECIMAL(10, 2), label VARCHAR(20))")
    _sync(
        dest,
        msgs,
        {"id": "integer", "price": "number", "label": "string"},
        [{"id": 1, "price": 9.99, "label": "x"}],
    )
    # nothing needed widening: the declared types stay as the user wrote them
    types = dest.column_types("s")
    assert (types["id"], types["price"], types["label"]) == ("BIGINT", "DECIMAL(10, 2)", "VARCHAR(20)")
    assert dest.rows("s") == [{"id": 1, "price": 9.99, "label": "x"}]
