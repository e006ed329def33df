"""Resuming from every STATE a read emits loses no row and repeats none.

For each kind of table (integer key, composite text key, rowid only, WITHOUT ROWID, a view
without any key), in full refresh and in cursor incremental mode, with ``checkpoint_records``
1..7: a full read is taken, and for every STATE it emitted a read resumed from that STATE must
emit exactly the rows not emitted before it (as a multiset: no row lost, none repeated), so that
the union is the table. After the final STATE an incremental read emits nothing, and so does the
read after a resumed one (the resumed read's final STATE still knows every row it and its
predecessor emitted at the last cursor value).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

TABLES = """
CREATE TABLE t_int (id INTEGER PRIMARY KEY, name TEXT, cur INTEGER);
CREATE TABLE t_text (a TEXT NOT NULL, b TEXT NOT NULL, name TEXT, cur INTEGER, PRIMARY KEY (a, b));
CREATE TABLE t_nopk (name TEXT, cur INTEGER);
CREATE TABLE t_wr (a TEXT, b INTEGER, name TEXT, cur INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE VIEW v_nokey AS SELECT name, cur FROM t_nopk;
"""

# cursor values with runs of ties, NULLs, and a value that comes back out of order
CURSORS = [None, 1, 1, 1, 2, 2, 3, 3, 3, 3, None, 5, 5, 1, 3]
NAMES = ["x", "y", "x", "x", "z", "z", "y", "y", "x", "w", "x", "q", "q", "y", "x"]


def fill(db: Any) -> None:
    db.script(TABLES)
    for i, (cur, name) in enumerate(zip(CURSORS, NAMES, strict=True)):
        db.execute("INSERT INTO t_int VALUES (?, ?, ?)", (100 - 7 * i, name, cur))
        db.execute("INSERT INTO t_text VALUES (?, ?, ?, ?)", (f"k{i % 3}", f"{(i * 7) % 11:02d}", name, cur))
        # content-identical rows: only the rowid tells them apart
        db.execute("INSERT INTO t_nopk VALUES (?, ?)", (name, cur))
        db.execute("INSERT INTO t_wr VALUES (?, ?, ?, ?)", (f"k{(i * 5) % 4}", i % 5 - 2, name, cur))


def check_every_resume(db: Any, configured: dict[str, Any], table: str, every: int, resumable: bool) -> int:
    """Read once, then resume from each STATE; returns how many STATEs the full read emitted."""
    name = configured["stream"]["name"]
    incremental = configured["sync_mode"] == "incremental"
    expected = db.multiset(db.table(table))
    full = db.read(configured, checkpoint_records=every)
    assert full.rc == 0, full.errors()
    assert full.statuses(name) == ["STARTED", "COMPLETE"]
    assert db.multiset(full.records(name)) == expected
    checkpoints = list(full.checkpoints(name))
    if resumable:
        total = sum(expected.values())
        # a STATE at least every `every` records of each segment (NULL cursors, then values)
        assert len(checkpoints) >= max(2, total // (2 * every)), [s for _, s in checkpoints]
    else:
        assert len(checkpoints) == 1  # a read that cannot resume says so only at its end
    for index, (before, state) in enumerate(checkpoints):
        resumed = db.read(configured, state=[state], checkpoint_records=every)
        assert resumed.rc == 0, resumed.errors()
        got = db.multiset(resumed.records(name))
        final = index == len(checkpoints) - 1
        if final and not incremental:
            assert got == expected, "a completed full refresh starts over"
            continue
        assert got == expected - db.multiset(before), (every, index, state)
        assert db.multiset(before) + got == expected
        if incremental:
            # the resumed read's final STATE: nothing is left, nothing is repeated
            after = db.read(configured, state=resumed.state_messages(name)[-1:], checkpoint_records=every)
            assert after.records(name) == [], (every, index, state, resumed.states(name)[-1])
    return len(checkpoints)


CASES = [
    ("t_int", True),
    ("t_text", True),
    ("t_nopk", True),
    ("t_wr", True),
    ("v_nokey", False),
]


@pytest.mark.parametrize(("table", "resumable"), CASES)
def test_full_refresh_resumes_from_every_state(sqlite_db: Any, table: str, resumable: bool) -> None:
    fill(sqlite_db)
    configured = sqlite_db.configure(table, "full_refresh")
    assert configured["stream"]["is_resumable"] is resumable
    for every in range(1, 8):
        check_every_resume(sqlite_db, configured, table, every, resumable)


@pytest.mark.parametrize(("table", "resumable"), CASES)
def test_incremental_resumes_from_every_state(sqlite_db: Any, table: str, resumable: bool) -> None:
    fill(sqlite_db)
    configured = sqlite_db.configure(table, "incremental", cursor="cur")
    for every in range(1, 8):
        # a view has no key, but incremental reads still checkpoint by value + row hashes
        check_every_resume(sqlite_db, configured, table, every, resumable=True)


def test_full_refresh_state_names_its_key(sqlite_db: Any) -> None:
    fill(sqlite_db)
    states = {}
    for table in ("t_int", "t_text", "t_nopk", "t_wr"):
        read = sqlite_db.read(sqlite_db.configure(table), checkpoint_records=100)
        assert read.states(table)[-1] == {"v": 1, "mode": "full_refresh", "complete": True}
        read = sqlite_db.read(sqlite_db.configure(table), checkpoint_records=4)
        states[table] = read.states(table)[0]
    assert states["t_int"]["by"] == ["id"]
    assert states["t_text"]["by"] == ["a", "b"]
    assert states["t_nopk"]["by"] == ["rowid"]
    assert states["t_wr"]["by"] == ["a", "b"]


def test_nullable_text_key_falls_back_to_rowid(sqlite_db: Any) -> None:
    """A rowid table's non-INTEGER primary key may hold NULLs: ordering by it could lose them."""
    sqlite_db.script("CREATE TABLE t (a TEXT PRIMARY KEY, v INTEGER)")
    sqlite_db.insert("t", [(None, 1), ("b", 2), (None, 3), ("a", 4), ("c", 5)])
    configured = sqlite_db.configure("t")
    assert configured["stream"]["source_defined_primary_key"] == [["a"]]
    read = sqlite_db.read(configured, checkpoint_records=2)
    assert read.states("t")[0]["by"] == ["rowid"]
    assert check_every_resume(sqlite_db, configured, "t", 2, True) == 3


@pytest.mark.parametrize("table", ["t_int", "t_nopk", "v_nokey"])
@pytest.mark.parametrize("nullable", [True, False])
def test_ties_across_checkpoints(sqlite_db: Any, table: str, nullable: bool) -> None:
    """30 rows share one cursor value and span many checkpoints (with and without a key)."""
    column = "cur INTEGER" if nullable else "cur INTEGER NOT NULL"
    sqlite_db.script(
        f"""
        CREATE TABLE t_int (id INTEGER PRIMARY KEY, name TEXT, {column});
        CREATE TABLE t_nopk (name TEXT, {column});
        CREATE VIEW v_nokey AS SELECT name, cur FROM t_nopk;
        """
    )
    values = [1, 2] + [7] * 30 + [8, 9, 9]
    for i, cur in enumerate(values):
        sqlite_db.execute("INSERT INTO t_int VALUES (?, ?, ?)", (1000 - i, f"n{i % 4}", cur))
        sqlite_db.execute("INSERT INTO t_nopk VALUES (?, ?)", (f"n{i % 4}", cur))
    configured = sqlite_db.configure(table, "incremental", cursor="cur")
    for every in (3, 4, 7):
        n = check_every_resume(sqlite_db, configured, table, every, resumable=True)
        assert n >= 30 // every
    # the ties end a read: a new row at that value is read, the 30 others are not repeated
    sqlite_db.execute("DELETE FROM t_int WHERE cur > 7")
    sqlite_db.execute("DELETE FROM t_nopk WHERE cur > 7")
    first = sqlite_db.read(configured, checkpoint_records=4)
    assert Counter(r["cur"] for r in first.records(table)) == {1: 1, 2: 1, 7: 30}
    final = first.states(table)[-1]["position"]
    assert final["cursor"] == 7
    assert len(final["seen"]) == 30
    sqlite_db.execute("INSERT INTO t_int VALUES (5000, 'new', 7)")
    sqlite_db.execute("INSERT INTO t_nopk VALUES ('new', 7)")
    second = sqlite_db.read(configured, state=first.state_messages(table)[-1:], checkpoint_records=4)
    assert [r["name"] for r in second.records(table)] == ["new"]
