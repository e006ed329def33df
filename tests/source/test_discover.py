"""Discovery on SQLite: relations, column schemas by declared type (and SQLite's affinity rules),
values that break their declared type, sync modes, cursor and key suggestions, patterns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from dbkit.config import TableSelection
from dbkit.db.types import AirbyteType, json_schema_for
from dbkit.source.dialect import SourceDialect
from source_sqlite.dialect import build_types

S = AirbyteType
BAD = object()  # the value violates the declared type: null + a SOURCE_SERIALIZATION_ERROR change

# (declared type, SQLite literal, expected JSON value, expected Airbyte type of the column)
CASES: list[tuple[str, str, Any, AirbyteType | None]] = [
    # INTEGER affinity: any declared type containing "INT"
    ("INTEGER", "42", 42, S.INTEGER),
    ("INT", "'17'", 17, S.INTEGER),  # affinity turned the text into an integer
    ("BIGINT", "9223372036854775807", 9223372036854775807, S.INTEGER),
    ("UNSIGNED BIG INT", "-5", -5, S.INTEGER),
    ("INT8", "2.0", 2, S.INTEGER),
    ("INTEGER", "1e20", 100000000000000000000, S.INTEGER),  # kept as REAL by SQLite: every digit
    ("MEDIUMINT", "'9223372036854775808'", 9223372036854775808, S.INTEGER),
    ("FLOATING POINT", "2", 2, S.INTEGER),  # "INT" comes first in SQLite's rules
    ("INTEGER", "'abc'", BAD, S.INTEGER),
    ("INTEGER", "1.5", BAD, S.INTEGER),
    ("INTEGER", "X'01'", BAD, S.INTEGER),
    # TEXT affinity: "CHAR", "CLOB", "TEXT"
    ("TEXT", "'héllo'", "héllo", S.STRING),
    ("VARCHAR(20)", "12", "12", S.STRING),
    ("NVARCHAR(5)", "'x'", "x", S.STRING),
    ("CHARACTER VARYING(255)", "1.5", "1.5", S.STRING),
    ("CLOB", "'c'", "c", S.STRING),
    ("TEXT", "X'6869'", "hi", S.STRING),
    ("TEXT", "X'00ff'", BAD, S.STRING),  # bytes that are not UTF-8
    ("UUID", "'0b7d6f84-8a5e-4f3b-9d0e-3f1c2a4b5c6d'", "0b7d6f84-8a5e-4f3b-9d0e-3f1c2a4b5c6d", S.STRING),
    ("STRING", "'abc'", "abc", S.STRING),  # NUMERIC affinity by the rules; meant as text
    # BLOB affinity: "BLOB" or no type at all
    ("BLOB", "X'DEADBEEF'", "3q2+7w==", S.BINARY),
    ("BLOB", "'text'", "dGV4dA==", S.BINARY),
    ("BLOB", "5", BAD, S.BINARY),
    ("", "5", 5, S.UNKNOWN),
    ("", "'x'", "x", S.UNKNOWN),
    ("", "X'01'", "AQ==", S.UNKNOWN),
    ("", "1e999", BAD, S.UNKNOWN),
    # REAL affinity: "REAL", "FLOA", "DOUB"
    ("REAL", "1.5", 1.5, S.NUMBER),
    ("DOUBLE PRECISION", "3", 3.0, S.NUMBER),
    ("FLOAT", "'2.25'", 2.25, S.NUMBER),
    ("DOUBLE", "1e999", BAD, S.NUMBER),
    ("REAL", "-1e999", BAD, S.NUMBER),
    ("FLOAT", "'abc'", BAD, S.NUMBER),
    # NUMERIC affinity: everything else
    ("NUMERIC", "'1.10'", 1.1, S.NUMBER),
    ("DECIMAL(10,2)", "7", 7, S.NUMBER),
    ("NUMERIC", "'abc'", BAD, S.NUMBER),
    ("NUMERIC", "'1_000'", BAD, S.NUMBER),
    ("MONEY", "X'00'", BAD, S.NUMBER),
    # BLOB affinity keeps numeric text as given: every digit
    ("DECIMAL_BLOB", "'12345678901234567890.123456789'", Decimal("12345678901234567890.123456789"), S.NUMBER),
    ("DECIMAL_BLOB", "1.5", 1.5, S.NUMBER),
    ("DECIMAL_BLOB", "X'00'", BAD, S.NUMBER),
    # refinements by common type names
    ("BOOLEAN", "1", True, S.BOOLEAN),
    ("BOOL", "FALSE", False, S.BOOLEAN),
    ("BOOLEAN", "'true'", True, S.BOOLEAN),
    ("BOOLEAN", "'yes'", BAD, S.BOOLEAN),
    ("BOOLEAN", "2", BAD, S.BOOLEAN),
    ("DATE", "'2024-02-29'", "2024-02-29", S.DATE),
    ("DATE", "'2024-01-01 00:00:00'", "2024-01-01", S.DATE),
    ("DATE", "'0044-03-15 BC'", "0044-03-15 BC", S.DATE),
    ("DATE", "'0000-06-01'", "0001-06-01 BC", S.DATE),  # ISO year 0 is 1 BC
    ("DATE", "'10000-01-01'", "+10000-01-01", S.DATE),
    ("DATE", "'2023-02-29'", BAD, S.DATE),
    ("DATE", "'2024-13-01'", BAD, S.DATE),
    ("DATE", "'2024-01-01 10:00:00'", BAD, S.DATE),
    ("DATE", "20240101", BAD, S.DATE),
    ("DATE", "'0000-01-01 BC'", BAD, S.DATE),
    ("DATETIME", "'2024-01-02 03:04:05'", "2024-01-02T03:04:05", S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("TIMESTAMP", "'2024-01-02T03:04:05.123456'", "2024-01-02T03:04:05.123456", S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("DATETIME", "'2024-01-02'", "2024-01-02T00:00:00", S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("DATETIME", "'2024-01-02 25:00:00'", BAD, S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("DATETIME", "'2024-01-02T03:04:05Z'", BAD, S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("DATETIME", "'yesterday'", BAD, S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("DATETIME", "1700000000", BAD, S.TIMESTAMP_WITHOUT_TIMEZONE),
    ("TIMESTAMPTZ", "'2024-01-02 03:04:05+0530'", "2024-01-02T03:04:05+05:30", S.TIMESTAMP_WITH_TIMEZONE),
    (
        "TIMESTAMP WITH TIME ZONE",
        "'2024-01-02 03:04:05'",
        "2024-01-02T03:04:05+00:00",
        S.TIMESTAMP_WITH_TIMEZONE,
    ),
    ("TIMESTAMPTZ", "'2024-01-02T03:04:05.5z'", "2024-01-02T03:04:05.5+00:00", S.TIMESTAMP_WITH_TIMEZONE),
    ("TIMESTAMPTZ", "'2024-01-02 03:04:05+25:00'", BAD, S.TIMESTAMP_WITH_TIMEZONE),
    ("TIME", "'12:34'", "12:34:00", S.TIME_WITHOUT_TIMEZONE),
    ("TIME", "'12:34:56.789'", "12:34:56.789", S.TIME_WITHOUT_TIMEZONE),
    ("TIME", "'24:00:00'", BAD, S.TIME_WITHOUT_TIMEZONE),
    ("TIMETZ", "'12:34:56-08:00'", "12:34:56-08:00", S.TIME_WITH_TIMEZONE),
    ("JSON", '\'{"a": 1, "b": [true, null]}\'', {"a": 1, "b": [True, None]}, S.UNKNOWN),
    ("JSON", "'[1, \"two\"]'", [1, "two"], S.UNKNOWN),
    ("JSON", "42", 42, S.UNKNOWN),
    ("JSONB", "'not json'", BAD, S.UNKNOWN),
    ("JSON", "'[1,'", BAD, S.UNKNOWN),
    ("JSON", "'NaN'", BAD, S.UNKNOWN),
]


def column(i: int) -> str:
    return f"c{i:02d}"


@pytest.fixture(scope="module")
def cases_read(make_db: Any) -> tuple[dict[str, Any], Any]:
    """One column per case; row i holds case i's literal and NULL elsewhere."""
    sqlite_db = make_db()
    columns = ", ".join(f"{column(i)} {declared or ''}".strip() for i, (declared, *_) in enumerate(CASES))
    sqlite_db.script(f"CREATE TABLE cases (id INTEGER PRIMARY KEY, {columns})")
    for i, (_, literal, _, _) in enumerate(CASES):
        sqlite_db.execute(f"INSERT INTO cases (id, {column(i)}) VALUES ({i}, {literal})")
    stream = sqlite_db.discover()["cases"]
    read = sqlite_db.read(sqlite_db.configure("cases", stream=stream))
    assert read.rc == 0, read.errors()
    return stream, read


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0] or 'none'}:{c[1]}" for c in CASES])
def test_type_case(cases_read: tuple[dict[str, Any], Any], i: int) -> None:
    _, _, expected, airbyte_type = CASES[i]
    stream, read = cases_read
    name = column(i)
    assert stream["json_schema"]["properties"][name] == json_schema_for(airbyte_type or S.UNKNOWN)
    record = read.record_messages("cases")[i]
    assert record["data"]["id"] == i
    others = {k: v for k, v in record["data"].items() if k not in ("id", name)}
    assert set(others.values()) == {None}
    changes = record.get("meta", {}).get("changes", [])
    if expected is BAD:
        assert record["data"][name] is None
        assert changes == [{"field": name, "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}]
    else:
        assert changes == []
        assert record["data"][name] == expected
        assert type(record["data"][name]) is type(expected)


def test_exact_numbers_inside_json_text(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE j (id INTEGER PRIMARY KEY, doc JSON)")
    doc = '{"big": 123456789012345678901234567890, "frac": 0.123456789012345678901234567890}'
    sqlite_db.execute("INSERT INTO j VALUES (1, ?)", (doc,))
    sqlite_db.execute("INSERT INTO j VALUES (2, ?)", ('{\n  "pretty": [1,\n 2]\n}',))
    rc, raw = sqlite_db.run(
        "read",
        "--config",
        sqlite_db._write("config", sqlite_db.config()),
        "--catalog",
        sqlite_db._write("catalog", {"streams": [sqlite_db.configure("j")]}),
    )
    assert rc == 0
    records = [line for line in raw.splitlines() if b'"RECORD"' in line]
    assert len(records) == 2  # the pretty-printed document did not break the line protocol
    assert (
        b'"doc":{"big":123456789012345678901234567890,"frac":0.123456789012345678901234567890}' in records[0]
    )
    assert b'"doc":{"pretty":[1,2]}' in records[1]


def test_relations_and_their_properties(sqlite_db: Any) -> None:
    sqlite_db.script(
        """
        CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT NOT NULL, updated_at DATETIME);
        CREATE TABLE composite (b TEXT, a INTEGER, v BLOB, PRIMARY KEY (b, a));
        CREATE TABLE wr (k TEXT PRIMARY KEY, Modified_At INTEGER) WITHOUT ROWID;
        CREATE TABLE blobs (data BLOB, other BLOB);
        CREATE TABLE gen (a INTEGER, twice INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,
                          label TEXT GENERATED ALWAYS AS ('n' || a) STORED);
        CREATE TABLE shadowed (rowid TEXT, oid TEXT, _rowid_ TEXT);
        CREATE TABLE half_shadowed (rowid TEXT, v INTEGER);
        CREATE TABLE strict_t (id INTEGER PRIMARY KEY, anything ANY) STRICT;
        CREATE TABLE no_cursor_hint (id INTEGER PRIMARY KEY, updated_at BLOB);
        CREATE VIEW v AS SELECT id, name FROM plain;
        CREATE VIRTUAL TABLE docs USING fts5(body);
        """
    )
    sqlite_db.execute("INSERT INTO gen (a) VALUES (3)")
    sqlite_db.execute("INSERT INTO half_shadowed VALUES ('r', 1), ('s', 2), ('t', 3)")
    sqlite_db.execute("INSERT INTO strict_t VALUES (1, 'x'), (2, 2), (3, X'00')")
    streams = sqlite_db.discover()
    # FTS5's internal shadow tables are not user data
    assert set(streams) == {
        "plain",
        "composite",
        "wr",
        "blobs",
        "gen",
        "shadowed",
        "half_shadowed",
        "strict_t",
        "no_cursor_hint",
        "v",
        "docs",
    }
    assert list(streams["docs"]["json_schema"]["properties"]) == ["body"]  # hidden columns left out
    plain = streams["plain"]
    assert plain["json_schema"]["properties"] == {
        "id": {"type": "integer"},  # INTEGER PRIMARY KEY is never NULL
        "name": {"type": "string"},
        "updated_at": json_schema_for(S.TIMESTAMP_WITHOUT_TIMEZONE),
    }
    assert plain["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert plain["default_cursor_field"] == ["updated_at"]
    assert plain["source_defined_primary_key"] == [["id"]]
    assert plain["is_resumable"] is True
    assert streams["composite"]["source_defined_primary_key"] == [["b"], ["a"]]
    assert streams["composite"]["is_resumable"] is True  # by rowid: the key columns may be NULL
    assert streams["wr"]["default_cursor_field"] == ["Modified_At"]
    assert streams["wr"]["json_schema"]["properties"]["k"] == {"type": "string"}  # WITHOUT ROWID key
    assert streams["wr"]["is_resumable"] is True
    assert streams["blobs"]["supported_sync_modes"] == ["full_refresh"]  # no column can be a cursor
    assert "default_cursor_field" not in streams["no_cursor_hint"]
    assert list(streams["gen"]["json_schema"]["properties"]) == ["a", "twice", "label"]
    assert streams["v"]["is_resumable"] is False
    assert "source_defined_primary_key" not in streams["v"]
    assert streams["shadowed"]["is_resumable"] is False  # every name of the rowid is a column
    assert streams["half_shadowed"]["is_resumable"] is True
    assert streams["strict_t"]["json_schema"]["properties"]["anything"] == {}

    read = sqlite_db.read([sqlite_db.configure(n, stream=streams[n]) for n in ("gen", "strict_t")])
    assert read.records("gen") == [{"a": 3, "twice": 6, "label": "n3"}]
    assert read.records("strict_t") == [
        {"id": 1, "anything": "x"},
        {"id": 2, "anything": 2},
        {"id": 3, "anything": "AA=="},
    ]
    # a column named rowid hides the real one: the read resumes by another of its names
    half = sqlite_db.configure("half_shadowed", stream=streams["half_shadowed"])
    first = sqlite_db.read(half, checkpoint_records=1)
    assert first.states("half_shadowed")[0]["by"] == ["rowid"]
    resumed = sqlite_db.read(half, state=first.state_messages("half_shadowed")[:1], checkpoint_records=1)
    assert resumed.records("half_shadowed") == [{"rowid": "s", "v": 2}, {"rowid": "t", "v": 3}]


def test_include_and_exclude_patterns(sqlite_db: Any) -> None:
    sqlite_db.script(
        """
        CREATE TABLE sales_2023 (id INTEGER PRIMARY KEY);
        CREATE TABLE sales_2024 (id INTEGER PRIMARY KEY);
        CREATE TABLE sales_tmp (id INTEGER PRIMARY KEY);
        CREATE TABLE users (id INTEGER PRIMARY KEY);
        """
    )
    assert set(sqlite_db.discover()) == {"sales_2023", "sales_2024", "sales_tmp", "users"}
    assert set(sqlite_db.discover(include_tables=["sales_*"])) == {"sales_2023", "sales_2024", "sales_tmp"}
    assert set(sqlite_db.discover(include_tables=["sales_*"], exclude_tables=["*_tmp"])) == {
        "sales_2023",
        "sales_2024",
    }
    assert set(sqlite_db.discover(exclude_tables=["sales_202?"])) == {"sales_tmp", "users"}
    assert set(sqlite_db.discover(include_tables=["Users"])) == set()  # patterns are case-sensitive
    # a stream whose table the patterns now exclude cannot be read
    users = sqlite_db.configure("users")
    read = sqlite_db.read(users, exclude_tables=["users"])
    assert read.rc == 1
    assert read.errors()[0]["failure_type"] == "config_error"


def test_row_estimates_after_analyze(sqlite_db: Any) -> None:
    sqlite_db.script("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v)")
    sqlite_db.insert("t", [(i, str(i % 3)) for i in range(50)])
    configured = sqlite_db.configure("t")
    assert sqlite_db.read(configured).estimates() == []  # nothing measured yet
    sqlite_db.execute("ANALYZE")
    estimate = [{"name": "t", "type": "STREAM", "row_estimate": 50}]
    first = sqlite_db.read(configured)
    assert first.estimates() == estimate
    # a full refresh reads it all again: the same estimate
    assert (
        sqlite_db.read(configured, state=[m["state"] for m in first.of("STATE")][-1:]).estimates() == estimate
    )
    # the estimate is of the rows a read emits: the table's size is not that of an incremental
    # read that goes on from a saved cursor (it would promise hours of rows to a read of none)
    incremental = sqlite_db.configure("t", mode="incremental", cursor="id")
    first = sqlite_db.read(incremental)
    assert first.estimates() == estimate
    again = sqlite_db.read(incremental, state=[m["state"] for m in first.of("STATE")][-1:])
    assert again.rc == 0
    assert again.records() == []
    assert again.estimates() == []


def test_a_broken_view_is_left_out_with_a_warning(sqlite_db: Any) -> None:
    sqlite_db.script(
        """
        CREATE TABLE gone (x INTEGER);
        CREATE TABLE kept (id INTEGER PRIMARY KEY, y TEXT);
        CREATE VIEW broken AS SELECT x FROM gone;
        CREATE VIEW fine AS SELECT id FROM kept;
        DROP TABLE gone;
        """
    )
    sqlite_db.execute("INSERT INTO kept VALUES (1, 'a')")
    rc, raw = sqlite_db.run("discover", "--config", sqlite_db._write("config", sqlite_db.config()))
    assert rc == 0
    messages = [orjson.loads(line) for line in raw.splitlines()]
    warnings = [m["log"]["message"] for m in messages if m["type"] == "LOG" and m["log"]["level"] == "WARN"]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0]
    assert "no such table" in warnings[0]
    streams = {s["name"]: s for s in messages[-1]["catalog"]["streams"]}
    assert set(streams) == {"kept", "fine"}
    assert streams["kept"]["source_defined_primary_key"] == [["id"]]
    read = sqlite_db.read([sqlite_db.configure(n, stream=streams[n]) for n in ("kept", "fine")])
    assert read.rc == 0
    assert read.records("kept") == [{"id": 1, "y": "a"}]
    assert read.records("fine") == [{"id": 1}]


def test_the_default_discovery_by_sqlalchemy_reflection(sqlite_db: Any) -> None:
    """A dialect that does not override ``list_tables`` gets batch reflection."""

    class Config(TableSelection):
        path: str

    class Reflected(SourceDialect[Config]):
        types = build_types()

        def sqlalchemy_url(self) -> sa.URL:
            return sa.make_url(f"sqlite:///{self.config.path}")

    sqlite_db.script(
        """
        CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT NOT NULL, y VARCHAR(20));
        CREATE TABLE b (k TEXT, j TEXT, PRIMARY KEY (j, k));
        CREATE TABLE skipped (z INTEGER);
        CREATE VIEW v AS SELECT x FROM a;
        """
    )
    dialect = Reflected(Config(path=str(sqlite_db.path), exclude_tables=["skip*"]))
    engine = sa.create_engine(dialect.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            tables = {t.name: t for t in dialect.list_tables(conn)}
    finally:
        engine.dispose()
    assert set(tables) == {"a", "b", "v"}
    assert tables["a"].primary_key == ("id",)
    assert tables["b"].primary_key == ("j", "k")  # in key order, not column order
    assert tables["v"].kind == "view"
    assert tables["a"].kind == "table"
    x = tables["a"].column("x")
    assert x is not None
    assert not x.nullable
    assert x.handler.airbyte_type is S.STRING
    y = tables["a"].column("y")
    assert y is not None
    assert y.type_name == "VARCHAR(20)"
