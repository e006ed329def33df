"""Identifier normalization and allocation (dbkit.destination.naming), and what SQLite gets."""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest

from dbkit.destination.batch import META_COLUMNS
from dbkit.destination.naming import HASH_LENGTH, NamingRules, allocate, normalize, short_hash

PG = NamingRules(max_bytes=63)
SQLITE = NamingRules(max_bytes=1000, case_insensitive=True)
LOWER = NamingRules(max_bytes=63, case="lower")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", "id"),
        ("CamelCase", "CamelCase"),
        ("with space", "with_space"),
        ("dash-and.dot", "dash_and_dot"),
        ('quote"s', "quote_s"),
        ("it's", "it_s"),
        ("select", "select"),
        ("order", "order"),
        ("group", "group"),
        ("1st", "_1st"),
        ("", "_"),
        ("café", "café"),
        ("cafe\u0301", "café"),  # NFC: the decomposed form is the same name
        ("名前", "名前"),
        ("a\tb\nc", "a_b_c"),
        ("emoji😀", "emoji_"),
        ("$price", "_price"),
    ],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name, PG) == expected


def test_normalize_case_rules() -> None:
    assert normalize("CamelCase", LOWER) == "camelcase"
    assert normalize("CamelCase", NamingRules(case="upper")) == "CAMELCASE"


def test_long_names_are_cut_with_a_hash_of_the_original() -> None:
    long = "a" * 150
    out = normalize(long, PG)
    assert len(out.encode()) == 63
    assert out == "a" * (63 - HASH_LENGTH - 1) + "_" + short_hash(long)
    # two names equal after truncation get distinct names
    other = "a" * 149 + "b"
    assert normalize(other, PG) != out
    assert normalize(other, PG)[:54] == out[:54]
    mapping = allocate([long, other, "a" * 200], PG)
    assert len(set(mapping.values())) == 3
    assert all(len(v.encode()) <= 63 for v in mapping.values())


def test_long_unicode_names_are_cut_on_a_character_boundary() -> None:
    name = "é" * 100  # 200 bytes
    out = normalize(name, PG)
    assert len(out.encode()) <= 63
    assert out.endswith("_" + short_hash(name))
    assert set(out[: -(HASH_LENGTH + 1)]) == {"é"}
    out.encode("utf-8").decode("utf-8")  # whole characters


def test_names_colliding_after_normalization_get_distinct_names() -> None:
    mapping = allocate(["a b", "a-b", "a_b"], PG)
    assert mapping["a_b"] == "a_b"  # the name that is already exact keeps it
    assert mapping["a b"] == "a_b_" + short_hash("a b")
    assert mapping["a-b"] == "a_b_" + short_hash("a-b")
    # when none is exact, every one gets a hash
    mapping = allocate(["a b", "a-b"], PG)
    assert mapping == {"a b": "a_b_" + short_hash("a b"), "a-b": "a_b_" + short_hash("a-b")}


def test_case_insensitive_collisions() -> None:
    mapping = allocate(["Name", "name", "NAME"], SQLITE)
    assert mapping["name"] == "name"  # lower case wins the plain name
    assert mapping["Name"] == "Name_" + short_hash("Name")
    assert mapping["NAME"] == "NAME_" + short_hash("NAME")
    assert len({v.casefold() for v in mapping.values()}) == 3
    # where case matters, they are all different names already
    assert allocate(["Name", "name", "NAME"], PG) == {"Name": "Name", "name": "name", "NAME": "NAME"}


def test_names_taken_by_metadata_columns_are_renamed() -> None:
    names = ["_airbyte_raw_id", "_AIRBYTE_META", "_airbyte_extracted_at", "_airbyte_generation_id", "x"]
    mapping = allocate(names, SQLITE, taken=META_COLUMNS)
    assert mapping["x"] == "x"
    for name in names[:-1]:
        assert mapping[name] == normalize(name, SQLITE) + "_" + short_hash(name)
    assert not {v.casefold() for v in mapping.values()} & {m.casefold() for m in META_COLUMNS}
    # case-sensitive rules: only the exact spelling is taken
    pg = allocate(names, PG, taken=META_COLUMNS)
    assert pg["_AIRBYTE_META"] == "_AIRBYTE_META"
    assert pg["_airbyte_raw_id"] != "_airbyte_raw_id"


NAMES = [
    "a b",
    "a-b",
    "a_b",
    "Name",
    "name",
    "1x",
    "_1x",
    "select",
    "x" * 120,
    "x" * 119 + "y",
    "é",
    "e\u0301",
]


@pytest.mark.parametrize("rules", [PG, SQLITE, LOWER], ids=["pg", "sqlite", "lower"])
def test_allocation_is_order_independent(rules: NamingRules) -> None:
    reference = allocate(NAMES, rules)
    assert len({rules.key(v) for v in reference.values()}) == len(set(NAMES))
    colliding = ["a b", "a-b", "a_b", "Name", "name", "é", "e\u0301"]
    for perm in itertools.permutations(colliding):  # every order of the names that collide
        assert allocate([*perm, *NAMES], rules) == reference
    rng = random.Random(7)  # noqa: S311 - a fixed shuffle order, not a secret
    for _ in range(200):
        shuffled = NAMES[:]
        rng.shuffle(shuffled)
        assert allocate(shuffled, rules) == reference


def test_salting_a_rare_hash_clash_is_order_independent() -> None:
    # a source name that is literally another name's hashed form: the exact one keeps its name
    literal = "a_b_" + short_hash("a b")
    names = ["a b", "a_b", literal]
    reference = allocate(names, PG)
    assert reference[literal] == literal
    assert reference["a_b"] == "a_b"
    assert reference["a b"] not in (literal, "a_b")
    for perm in itertools.permutations(names):
        assert allocate(perm, PG) == reference


@pytest.mark.parametrize("rules", [PG, SQLITE], ids=["pg", "sqlite"])
def test_adding_an_unrelated_name_changes_no_other(rules: NamingRules) -> None:
    before = allocate(NAMES, rules)
    after = allocate([*NAMES, "brand_new"], rules)
    assert after["brand_new"] == "brand_new"
    assert {k: after[k] for k in before} == before


def test_sqlite_tables_and_columns_get_allocated_names(dest: Any, msgs: Any) -> None:
    m = msgs
    long_a = "col_" + "a" * 1100
    long_b = "col_" + "a" * 1099 + "b"
    fields = {
        "select": "integer",
        "order": "string",
        "group": "string",
        "with space": "string",
        'quo"te': "string",
        "name": "string",
        "Name": "string",
        "_airbyte_meta": "string",
        "名前": "string",
        long_a: "integer",
        long_b: "integer",
        "x" * 150: "integer",
    }
    table = "Select Order"
    cat = m.catalog(m.stream(table, fields))
    data = {k: (i if t == "integer" else f"v{i}") for i, (k, t) in enumerate(fields.items())}
    dest.ok(cat, [m.record(table, data, emitted_at=1_700_000_000_123), m.status(table)])
    assert dest.tables() == ["Select_Order"]
    columns = dest.columns("Select_Order")
    expected = {
        "select": "select",
        "order": "order",
        "group": "group",
        "with space": "with_space",
        'quo"te': "quo_te",
        "name": "name",
        "Name": "Name_" + short_hash("Name"),
        "_airbyte_meta": "_airbyte_meta_" + short_hash("_airbyte_meta"),
        "名前": "名前",
        long_a: normalize(long_a, SQLITE),
        long_b: normalize(long_b, SQLITE),
        "x" * 150: "x" * 150,  # SQLite allows 1000 bytes: no cut
    }
    assert normalize(long_a, SQLITE) != normalize(long_b, SQLITE)
    assert all(len(normalize(n, SQLITE).encode()) == 1000 for n in (long_a, long_b))
    assert columns == [*expected.values(), *META_COLUMNS]
    (row,) = dest.rows("Select_Order")
    assert row == {expected[k]: v for k, v in data.items()}
    (meta,) = dest.meta("Select_Order")
    assert meta == {"changes": [], "sync_id": None}


def test_sqlite_names_are_stable_across_syncs(dest: Any, msgs: Any) -> None:
    m = msgs
    fields = {"a b": "integer", "a-b": "integer"}
    dest.ok(m.catalog(m.stream("t", fields)), [m.record("t", {"a b": 1, "a-b": 2}), m.status("t")])
    first = dest.columns("t")
    # an unrelated field added: the names of the others do not change, the new one is appended
    fields2 = {"zzz": "integer", **fields}
    dest.ok(m.catalog(m.stream("t", fields2)), [m.record("t", {"a b": 3, "a-b": 4, "zzz": 5}), m.status("t")])
    assert dest.columns("t") == [*first, "zzz"]
    assert dest.rows("t", order_by="rowid") == [
        {first[0]: 1, first[1]: 2, "zzz": None},
        {first[0]: 3, first[1]: 4, "zzz": 5},
    ]
    assert all(re.fullmatch(r"a_b_[0-9a-f]{8}", c) for c in first[:2])


def test_reserved_table_prefixes() -> None:
    rules = NamingRules(max_bytes=1000, case_insensitive=True, reserved_table_prefixes=("sqlite_",))
    assert normalize("sqlite_stat", rules, table=True) == "_sqlite_stat"
    assert normalize("SQLite_Stat", rules, table=True) == "_SQLite_Stat"
    assert normalize("sqlite_stat", rules) == "sqlite_stat"  # a column may have the name
    assert normalize("sqlitex", rules, table=True) == "sqlitex"
    mapping = allocate(["sqlite_a", "_sqlite_a"], rules, table=True)
    assert mapping["_sqlite_a"] == "_sqlite_a"
    assert mapping["sqlite_a"] == "_sqlite_a_" + short_hash("sqlite_a")


def test_sqlite_stream_with_a_reserved_name(dest: Any, msgs: Any) -> None:
    m = msgs
    fields = {"id": "integer", "sqlite_col": "string"}
    cat = m.catalog(
        m.stream("sqlite_master_copy", fields, "overwrite"),
        m.stream("SQLITE_x", fields, "append_dedup", pk=["id"]),
    )
    lines = [
        m.record("sqlite_master_copy", {"id": 1, "sqlite_col": "a"}),
        m.record("SQLITE_x", {"id": 2, "sqlite_col": "b"}),
        m.status("sqlite_master_copy"),
        m.status("SQLITE_x"),
    ]
    dest.ok(cat, lines)
    assert dest.tables() == ["_SQLITE_x", "_sqlite_master_copy"]
    assert dest.rows("_sqlite_master_copy") == [{"id": 1, "sqlite_col": "a"}]
    assert dest.rows("_SQLITE_x") == [{"id": 2, "sqlite_col": "b"}]
