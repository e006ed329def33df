"""Destination sync modes over several syncs on destination-sqlite, with exact final tables:
append, overwrite (interrupted, resumed, superseded), append_dedup (cursor rules, CDC deletes,
users' unique indexes), truncate and merge refreshes, namespaces and colliding stream names."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.destination.naming import NamingRules, normalize, short_hash, with_hash

SQLITE = NamingRules(max_bytes=1000, case_insensitive=True)
FIELDS = {"id": "integer", "v": "string"}
DEDUP = {"id": "integer", "c": "integer", "v": "string"}


def _lines(m: Any, name: str, rows: list[Any], complete: bool = True) -> list[Any]:
    """Records from ``(data, emitted_at)`` pairs or plain data (emitted_at 1000 + position), then a
    STATE (as a source ends every stream), then COMPLETE unless the input is cut short."""
    out = []
    for i, row in enumerate(rows):
        data, emitted = row if isinstance(row, tuple) else (row, 1000 + i)
        out.append(m.record(name, data, emitted_at=emitted))
    out.append(m.state(name, {"records": len(rows)}))
    if complete:
        out.append(m.status(name))
    return out


def _data(dest: Any, table: str, order: str = "id") -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in dest.rows(table, order_by=order)]


# ------------------------------------------------------------------ append


def test_append_over_two_syncs(dest: Any, msgs: Any) -> None:
    m = msgs
    s1 = m.catalog(m.stream("s", FIELDS, generation_id=1, minimum_generation_id=0, sync_id=10))
    dest.ok(s1, _lines(m, "s", [{"id": 1, "v": "a"}, {"id": 1, "v": "a"}]))
    s2 = m.catalog(m.stream("s", FIELDS, generation_id=1, minimum_generation_id=0, sync_id=11))
    dest.ok(s2, _lines(m, "s", [{"id": 2, "v": "b"}]))
    raw = dest.raw_rows("s", order_by="rowid")
    assert [(r["id"], r["v"]) for r in raw] == [(1, "a"), (1, "a"), (2, "b")]  # duplicates kept
    assert [r["_airbyte_meta"] for r in raw] == ['{"changes":[],"sync_id":10}'] * 2 + [
        '{"changes":[],"sync_id":11}'
    ]
    assert [r["_airbyte_extracted_at"] for r in raw] == [m.extracted_at_text(t) for t in (1000, 1001, 1000)]
    assert dest.generations("s", order_by="rowid") == [1, 1, 1]
    assert dest.tables() == ["s"]


# ------------------------------------------------------------------ overwrite


def _over(m: Any, generation: int | None) -> Any:
    return m.catalog(
        m.stream(
            "s",
            FIELDS,
            "overwrite",
            generation_id=generation,
            minimum_generation_id=generation,
            sync_id=generation,
        )
    )


def test_overwrite_interrupted_resumed_and_superseded(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_over(m, 1), _lines(m, "s", [{"id": 1, "v": "first"}, {"id": 2, "v": "first"}]))
    assert dest.tables() == ["s"]
    dest.ok(_over(m, 2), _lines(m, "s", [{"id": 3, "v": "second"}]))
    assert _data(dest, "s") == [(3, "second")]
    assert dest.generations("s") == [2]
    assert dest.tables() == ["s"]

    # third sync, interrupted: the input ends without COMPLETE
    result = dest.write(
        _over(m, 3), _lines(m, "s", [{"id": 4, "v": "third"}, {"id": 5, "v": "third"}], complete=False)
    )
    assert result.code == 1
    assert result.error["failure_type"] == "transient_error"
    assert _data(dest, "s") == [(3, "second")]  # untouched
    assert dest.tables() == ["s", "s_airbyte_tmp"]
    assert _data(dest, "s_airbyte_tmp") == [(4, "third"), (5, "third")]

    # a retry with the same generation resumes the temporary table, then swaps it in
    dest.ok(_over(m, 3), _lines(m, "s", [{"id": 6, "v": "third"}]))
    assert _data(dest, "s") == [(4, "third"), (5, "third"), (6, "third")]
    assert dest.generations("s") == [3, 3, 3]
    assert dest.tables() == ["s"]

    # an interrupted attempt, then a new generation: the stale temporary table is dropped
    dest.write(_over(m, 4), _lines(m, "s", [{"id": 7, "v": "stale"}], complete=False))
    assert dest.tables() == ["s", "s_airbyte_tmp"]
    dest.ok(_over(m, 5), _lines(m, "s", [{"id": 8, "v": "fifth"}]))
    assert _data(dest, "s") == [(8, "fifth")]
    assert dest.generations("s") == [5]
    assert dest.tables() == ["s"]


def test_overwrite_without_generation_ids(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_over(m, None), _lines(m, "s", [{"id": 1, "v": "a"}]))
    dest.ok(_over(m, None), _lines(m, "s", [{"id": 2, "v": "b"}]))
    assert _data(dest, "s") == [(2, "b")]
    assert dest.generations("s") == [None]
    assert dest.tables() == ["s"]


def test_overwrite_with_no_records_empties_the_table(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_over(m, 1), _lines(m, "s", [{"id": 1, "v": "a"}]))
    dest.ok(_over(m, 2), [m.status("s")])
    assert _data(dest, "s") == []
    assert dest.tables() == ["s"]


def test_overwrite_keeps_users_views(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_over(m, 1), _lines(m, "s", [{"id": 1, "v": "a"}]))
    with dest.connect() as conn:
        conn.execute("CREATE VIEW s_view AS SELECT id, v FROM s")
    dest.ok(_over(m, 2), _lines(m, "s", [{"id": 2, "v": "b"}]))
    with dest.connect() as conn:
        assert conn.execute("SELECT * FROM s_view").fetchall() == [(2, "b")]


# ------------------------------------------------------------------ append_dedup


def _dedup(m: Any, **kw: Any) -> Any:
    return m.catalog(m.stream("s", DEDUP, "append_dedup", pk=["id"], cursor="c", **kw))


def test_dedup_cursor_rules(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(
        _dedup(m),
        _lines(
            m,
            "s",
            [
                ({"id": 1, "c": 1, "v": "a"}, 1000),
                ({"id": 2, "c": 5, "v": "b"}, 1000),
                ({"id": 3, "c": None, "v": "c"}, 1000),
                ({"id": 4, "c": 1, "v": "x"}, 1000),
                ({"id": 7, "c": 3, "v": "keep"}, 1000),
            ],
        ),
    )
    dest.ok(
        _dedup(m),
        _lines(
            m,
            "s",
            [
                ({"id": 1, "c": 2, "v": "a-newer"}, 2000),  # higher cursor wins
                ({"id": 2, "c": 4, "v": "b-older"}, 2000),  # lower cursor loses
                ({"id": 3, "c": 1, "v": "c-not-null"}, 2000),  # a stored NULL cursor is older
                ({"id": 4, "c": 1, "v": "y-later"}, 2000),  # equal cursor: later extracted_at wins
                ({"id": 7, "c": None, "v": "null-cursor"}, 3000),  # a NULL cursor loses
                # duplicates inside one batch: the highest cursor, then the latest extraction
                ({"id": 5, "c": 1, "v": "p"}, 2000),
                ({"id": 5, "c": 3, "v": "q"}, 2000),
                ({"id": 5, "c": 2, "v": "r"}, 2500),
                ({"id": 6, "c": 1, "v": "first"}, 2000),
                ({"id": 6, "c": 1, "v": "second"}, 2000),  # all equal: the later arrival
                ({"id": 8, "c": None, "v": "n1"}, 2000),
                ({"id": 8, "c": None, "v": "n2"}, 2100),  # both NULL: the later extraction
            ],
        ),
    )
    dest.ok(_dedup(m), _lines(m, "s", [({"id": 4, "c": 1, "v": "z-earlier"}, 1500)]))  # equal, earlier: loses
    assert _data(dest, "s") == [
        (1, 2, "a-newer"),
        (2, 5, "b"),
        (3, 1, "c-not-null"),
        (4, 1, "y-later"),
        (5, 3, "q"),
        (6, 1, "second"),
        (7, 3, "keep"),
        (8, None, "n2"),
    ]
    assert dest.tables() == ["s"]  # the staging table was session-private


def test_dedup_across_batches_of_one_sync(dest: Any, msgs: Any) -> None:
    m = msgs
    rows = [{"id": i % 3, "c": i, "v": f"v{i}"} for i in range(10)] + [{"id": 0, "c": 1, "v": "old"}]
    dest.ok(_dedup(m), _lines(m, "s", rows), batch_records=2)
    assert _data(dest, "s") == [(0, 9, "v9"), (1, 7, "v7"), (2, 8, "v8")]


def test_dedup_composite_primary_key(dest: Any, msgs: Any) -> None:
    m = msgs
    fields = {"a": "integer", "b": "string", "c": "integer", "v": "string"}
    cat = m.catalog(m.stream("s", fields, "append_dedup", pk=["a", "b"], cursor="c"))
    dest.ok(
        cat, _lines(m, "s", [{"a": 1, "b": "x", "c": 1, "v": "1x"}, {"a": 1, "b": "y", "c": 1, "v": "1y"}])
    )
    dest.ok(
        cat,
        _lines(
            m,
            "s",
            [
                {"a": 1, "b": "x", "c": 2, "v": "1x-new"},
                {"a": 2, "b": "x", "c": 1, "v": "2x"},
                {"a": 1, "b": "y", "c": 0, "v": "1y-old"},
            ],
        ),
    )
    assert _data(dest, "s", order="a, b") == [(1, "x", 2, "1x-new"), (1, "y", 1, "1y"), (2, "x", 1, "2x")]


def test_dedup_without_cursor_latest_extraction_wins(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("s", FIELDS, "append_dedup", pk=["id"]))
    dest.ok(
        cat, _lines(m, "s", [({"id": 1, "v": "x"}, 10), ({"id": 1, "v": "y"}, 5), ({"id": 2, "v": "a"}, 5)])
    )
    assert _data(dest, "s") == [(1, "x"), (2, "a")]
    dest.ok(cat, _lines(m, "s", [({"id": 1, "v": "older"}, 7), ({"id": 2, "v": "newer"}, 6)]))
    assert _data(dest, "s") == [(1, "x"), (2, "newer")]
    dest.ok(cat, _lines(m, "s", [({"id": 1, "v": "same-time"}, 10)]))  # a tie goes to the newcomer
    assert _data(dest, "s") == [(1, "same-time"), (2, "newer")]


def test_users_unique_index_survives_every_dedup_sync(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_dedup(m), _lines(m, "s", [{"id": i, "c": 0, "v": "a"} for i in range(5)]))
    with dest.connect() as conn:
        conn.execute('CREATE UNIQUE INDEX "s_users_unique" ON s (id)')
    for sync in range(1, 4):
        rows = [{"id": i % 6, "c": sync * 10 + i, "v": f"s{sync}-{i}"} for i in range(12)]
        dest.ok(_dedup(m), _lines(m, "s", rows), batch_records=3 + sync)
    assert _data(dest, "s") == [(i, 30 + 6 + i, f"s3-{6 + i}") for i in range(6)]
    with dest.connect() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")]
        assert "s_users_unique" in names
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM s").fetchone() == (6, 6)


# ------------------------------------------------------------------ CDC deletes

CDC = {"id": "integer", "lsn": "integer", "v": "string", "_ab_cdc_deleted_at": "timestamp_with_timezone"}
GONE = "2024-01-01T00:00:00Z"
GONE_STORED = "2024-01-01T00:00:00.000000Z"


def _cdc(m: Any) -> Any:
    return m.catalog(m.stream("s", CDC, "append_dedup", pk=["id"], cursor="lsn"))


def _row(i: int, lsn: int, v: str = "", deleted: bool = False) -> dict[str, Any]:
    return {"id": i, "lsn": lsn, "v": v or f"v{lsn}", "_ab_cdc_deleted_at": GONE if deleted else None}


def test_cdc_hard_delete(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_cdc(m), _lines(m, "s", [_row(1, 1), _row(2, 2), _row(3, 3)]))
    dest.ok(
        _cdc(m),
        _lines(
            m,
            "s",
            [
                _row(2, 10, deleted=True),
                _row(3, 1, deleted=True),  # a deletion older than the stored row loses
                _row(4, 11, deleted=True),  # deleting a key never seen inserts nothing
                # out of order within one batch: the newest change (the delete) wins
                _row(5, 5),
                _row(5, 10, deleted=True),
                _row(5, 7),
            ],
        ),
    )
    assert _data(dest, "s") == [(1, 1, "v1", None), (3, 3, "v3", None)]


def test_cdc_soft_delete(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(_cdc(m), _lines(m, "s", [_row(1, 1), _row(2, 2)]), cdc_deletion_mode="soft_delete")
    dest.ok(
        _cdc(m),
        _lines(m, "s", [_row(2, 10, deleted=True), _row(5, 5), _row(5, 10, deleted=True), _row(5, 7)]),
        cdc_deletion_mode="soft_delete",
    )
    assert _data(dest, "s") == [(1, 1, "v1", None), (2, 10, "v10", GONE_STORED), (5, 10, "v10", GONE_STORED)]
    # an older update after the delete, in a later batch and a later sync, does not undo it
    dest.ok(
        _cdc(m), _lines(m, "s", [_row(2, 7), _row(5, 9)]), cdc_deletion_mode="soft_delete", batch_records=1
    )
    assert _data(dest, "s") == [(1, 1, "v1", None), (2, 10, "v10", GONE_STORED), (5, 10, "v10", GONE_STORED)]
    # a newer insert after a delete brings the key back
    dest.ok(_cdc(m), _lines(m, "s", [_row(2, 20)]), cdc_deletion_mode="soft_delete")
    assert _data(dest, "s")[1] == (2, 20, "v20", None)


def test_cdc_hard_delete_then_older_updates_in_later_batches(dest: Any, msgs: Any) -> None:
    m = msgs
    # batches of 2: each deletion is applied before the older update arrives
    rows = [
        _row(1, 1),
        _row(1, 10, deleted=True),
        # next batch
        _row(1, 7),  # older than the deletion applied before: stays deleted
        _row(2, 10, deleted=True),
        # next batch
        _row(2, 3),  # likewise
        _row(3, 4, deleted=True),
        # next batch
        _row(3, 6),  # newer than its deletion: the key comes back
        _row(4, 1),
        # next batch
        _row(4, 5, deleted=True),
        _row(5, 1),
        # next batch
        {"id": 4, "lsn": None, "v": "null cursor", "_ab_cdc_deleted_at": None},  # NULL is older
    ]
    dest.ok(_cdc(m), _lines(m, "s", rows), batch_records=2)
    assert _data(dest, "s") == [(3, 6, "v6", None), (5, 1, "v1", None)]
    assert dest.tables() == ["s"]


def test_cdc_hard_delete_then_an_older_update_in_a_later_sync(dest: Any, msgs: Any) -> None:
    """The documented limit (merge.py): tombstones last one write, so an update older than a
    deletion applied in an earlier sync inserts the key again."""
    m = msgs
    dest.ok(_cdc(m), _lines(m, "s", [_row(1, 1), _row(1, 10, deleted=True)]), batch_records=1)
    assert _data(dest, "s") == []
    dest.ok(_cdc(m), _lines(m, "s", [_row(1, 5)]))
    assert _data(dest, "s") == [(1, 5, "v5", None)]


# ------------------------------------------------------------------ refreshes


def test_truncate_refresh_of_an_append_stream(dest: Any, msgs: Any) -> None:
    m = msgs

    def cat(gen: int, min_gen: int) -> Any:
        return m.catalog(m.stream("s", FIELDS, generation_id=gen, minimum_generation_id=min_gen))

    dest.ok(cat(1, 0), _lines(m, "s", [{"id": 1, "v": "g1"}]))
    dest.ok(cat(1, 0), _lines(m, "s", [{"id": 2, "v": "g1"}]))
    # merge refresh (keep older generations): minimum_generation_id 0
    dest.ok(cat(2, 0), _lines(m, "s", [{"id": 3, "v": "g2"}]))
    assert _data(dest, "s") == [(1, "g1"), (2, "g1"), (3, "g2")]
    assert dest.generations("s", order_by="id") == [1, 1, 2]
    # truncate refresh: minimum_generation_id == generation_id > 0, interrupted first
    dest.write(cat(3, 3), _lines(m, "s", [{"id": 4, "v": "g3"}], complete=False))
    assert _data(dest, "s") == [(1, "g1"), (2, "g1"), (3, "g2")]
    dest.ok(cat(3, 3), _lines(m, "s", [{"id": 5, "v": "g3"}]))
    assert _data(dest, "s") == [(4, "g3"), (5, "g3")]
    assert dest.generations("s", order_by="id") == [3, 3]
    # and appending goes on after it
    dest.ok(cat(3, 0), _lines(m, "s", [{"id": 6, "v": "g3"}]))
    assert _data(dest, "s") == [(4, "g3"), (5, "g3"), (6, "g3")]
    assert dest.tables() == ["s"]


def test_truncate_refresh_of_a_dedup_stream(dest: Any, msgs: Any) -> None:
    m = msgs
    dest.ok(
        _dedup(m, generation_id=1, minimum_generation_id=0), _lines(m, "s", [{"id": 1, "c": 1, "v": "old"}])
    )
    dest.ok(
        _dedup(m, generation_id=2, minimum_generation_id=2),
        _lines(m, "s", [{"id": 2, "c": 1, "v": "a"}, {"id": 2, "c": 2, "v": "b"}]),
    )
    assert _data(dest, "s") == [(2, 2, "b")]
    dest.ok(
        _dedup(m, generation_id=2, minimum_generation_id=0), _lines(m, "s", [{"id": 2, "c": 3, "v": "c"}])
    )
    assert _data(dest, "s") == [(2, 3, "c")]
    assert dest.tables() == ["s"]


# ------------------------------------------------------------------ names of tables


def test_a_stream_in_two_namespaces(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("users", FIELDS, namespace="a"), m.stream("users", FIELDS, namespace="b"))
    lines = [
        m.record("users", {"id": 1, "v": "in a"}, namespace="a"),
        m.record("users", {"id": 1, "v": "in b"}, namespace="b"),
        m.status("users", namespace="a"),
        m.status("users", namespace="b"),
    ]
    dest.ok(cat, lines)
    table_a = with_hash(normalize("users", SQLITE), "a.users", SQLITE)
    table_b = with_hash(normalize("users", SQLITE), "b.users", SQLITE)
    assert table_a == "users_" + short_hash("a.users")
    assert dest.tables() == sorted([table_a, table_b])
    assert _data(dest, table_a) == [(1, "in a")]
    assert _data(dest, table_b) == [(1, "in b")]


def test_streams_whose_names_collide_after_normalization(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(
        m.stream("my stream", FIELDS), m.stream("my-stream", FIELDS), m.stream("My_Stream", FIELDS)
    )
    lines = [
        m.record("my stream", {"id": 1}),
        m.record("my-stream", {"id": 2}),
        m.record("My_Stream", {"id": 3}),
        m.status("my stream"),
        m.status("my-stream"),
        m.status("My_Stream"),
    ]
    dest.ok(cat, lines)
    names = {
        "my stream": "my_stream_" + short_hash("my stream"),
        "my-stream": "my_stream_" + short_hash("my-stream"),
        "My_Stream": "My_Stream",
    }
    assert dest.tables() == sorted(names.values())
    assert [_data(dest, names[n])[0][0] for n in ("my stream", "my-stream", "My_Stream")] == [1, 2, 3]


@pytest.mark.parametrize("before", [None, 6], ids=["new table", "older generation"])
def test_an_interrupted_refresh_keeps_only_what_a_state_covers(
    dest: Any, msgs: Any, before: int | None
) -> None:
    """Records after the last STATE of a refresh that does not complete are not loaded: the
    resumed source sends them again, and the refreshed table holds each row once. The refresh
    loads into the temporary table when the table holds an older generation, into the table
    itself when there is none yet (nothing to keep visible)."""
    m = msgs
    if before is not None:
        dest.ok(_over(m, before), _lines(m, "s", [{"id": 0, "v": "old"}]))
    loaded = "s" if before is None else "s_airbyte_tmp"
    rows = [{"id": i, "v": "new"} for i in range(1, 7)]
    cut = [
        m.record("s", rows[0]),
        m.record("s", rows[1]),
        m.state("s", {"after": 2}),
        m.record("s", rows[2]),
        m.record("s", rows[3]),
    ]  # the input ends here
    result = dest.write(_over(m, 7), cut)
    assert result.code == 1
    assert result.state_values() == [{"after": 2}]
    assert _data(dest, loaded) == [(1, "new"), (2, "new")]
    if before is not None:
        assert _data(dest, "s") == [(0, "old")]
    # the resumed attempt starts after the last echoed STATE: rows 3.. come again
    dest.ok(_over(m, 7), _lines(m, "s", rows[2:]))
    assert _data(dest, "s") == [(i, "new") for i in range(1, 7)]
    assert dest.tables() == ["s"]


@pytest.mark.parametrize("before", [None, 7], ids=["new table", "older generation"])
def test_a_refresh_loads_covered_records_when_its_buffer_fills(
    dest: Any, msgs: Any, before: int | None
) -> None:
    """A full buffer of a refreshing stream loads what a STATE covers and keeps the rest."""
    m = msgs
    if before is not None:
        dest.ok(_over(m, before), _lines(m, "s", [{"id": 0, "v": "old"}]))
    lines = [m.record("s", {"id": i, "v": "x"}) for i in range(1, 4)]
    lines += [m.state("s", {"after": 3}), m.record("s", {"id": 4, "v": "x"})]
    result = dest.write(_over(m, 8), lines, batch_records=4)
    assert result.code == 1  # no COMPLETE
    assert result.state_values() == [{"after": 3}]
    assert _data(dest, "s" if before is None else "s_airbyte_tmp") == [(1, "x"), (2, "x"), (3, "x")]
