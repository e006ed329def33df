"""source-postgres CDC edges: which updates delete their old key (REPLICA IDENTITY FULL marks every
column as the identity: an update that keeps the primary key must not delete its own row),
ALTER TABLE between and during syncs, big and many transactions, tables added to the
publication later, and both ``lsn_commit_behaviour`` values."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit.testing.runner import RunResult, configured_catalog
from dbkit.testing.suites import CdcSuite, apply_records

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DELETED = "_ab_cdc_deleted_at"


def _read_module() -> Any:
    """test_cdc_read's harness (test modules cannot import each other in importlib mode)."""
    path = Path(__file__).with_name("test_cdc_read.py")
    spec = importlib.util.spec_from_file_location("_source_postgres_cdc_read_harness", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Harness = _read_module().PostgresCdc


class Rig:
    """One CDC connection: its source, catalog, config and the state the destination echoed."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        method: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self.source = Harness(request, tmp_path)
        self.overrides = config
        self.method = method or {}
        self.state: dict[str, Any] | None = None
        self.catalog: dict[str, Any] = {}

    def sql(self, *statements: str) -> None:
        self.source.execute(*statements)

    def q(self, table: str) -> str:
        return str(self.source.qualified(table))

    def config(self, **method: Any) -> dict[str, Any]:
        config = self.source.cdc_config(**self.overrides)
        config["replication_method"].update({**self.method, **method})
        return dict(config)

    def discover(self, *tables: str) -> dict[str, Any]:
        found = self.source.runner().discover(self.config()).raise_on_failure()
        streams = [found.stream(t, self.source.namespace) for t in tables]
        self.catalog = configured_catalog(
            streams, sync_mode="incremental", destination_sync_mode="append_dedup"
        )
        return self.catalog

    def read(self, catalog: dict[str, Any] | None = None, **method: Any) -> RunResult:
        states = [self.state] if self.state is not None else None
        return self.source.runner().read(self.config(**method), catalog or self.catalog, states)

    def sync(self, catalog: dict[str, Any] | None = None, **method: Any) -> RunResult:
        """A read that must succeed; its last state is echoed to the next."""
        run = self.read(catalog, **method).raise_on_failure()
        self.state = CdcSuite.last_state(run)
        return run

    def position(self) -> int:
        assert self.state is not None
        return int(self.state["global"]["shared_state"]["position"]["lsn"])

    def confirmed(self) -> int:
        from source_postgres.cdc import parse_lsn

        row = self.source.slot_row()
        assert row is not None
        return int(parse_lsn(row["confirmed"]))


def changes(run: RunResult, table: str) -> list[tuple[str, dict[str, Any]]]:
    """``("d" | "u", data without meta columns)`` per record, in order."""
    return [
        ("d" if r.get(DELETED) else "u", {k: v for k, v in r.items() if not k.startswith("_ab_cdc_")})
        for r in run.records(table)
    ]


BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) AS i)"


def test_an_update_keeping_its_key_deletes_nothing(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """REPLICA IDENTITY FULL (and DEFAULT, and an identity index): an update deletes the old row
    only when its primary key changed, whatever the key's type (numeric and timestamptz text
    forms, composite keys) and with an unchanged TOASTed value beside it."""
    rig = Rig(request, tmp_path)
    rig.sql(
        f"CREATE TABLE {rig.q('num_k')} (k numeric(12,4) PRIMARY KEY, v int)",
        f"CREATE TABLE {rig.q('ts_k')} (k timestamptz PRIMARY KEY, v int)",
        f"CREATE TABLE {rig.q('comp_k')} (a int, b text, v int, doc text, PRIMARY KEY (a, b))",
        f"CREATE TABLE {rig.q('idx_k')} (id int PRIMARY KEY, u int NOT NULL UNIQUE, v int)",
        f"CREATE TABLE {rig.q('def_k')} (a int, b text, v int, PRIMARY KEY (a, b))",
        f"INSERT INTO {rig.q('num_k')} VALUES (1.5, 0), (2, 0)",
        f"INSERT INTO {rig.q('ts_k')} VALUES ('2024-01-02 03:04:05.123456+02', 0)",
        f"INSERT INTO {rig.q('comp_k')} VALUES (1, 'x', 0, {BIG}), (2, 'y', 0, 'small')",
        f"INSERT INTO {rig.q('idx_k')} VALUES (1, 10, 0)",
        f"INSERT INTO {rig.q('def_k')} VALUES (1, 'x', 0)",
    )
    tables = ("num_k", "ts_k", "comp_k", "idx_k", "def_k")
    rig.source.capture(*tables)  # REPLICA IDENTITY FULL
    rig.sql(
        f"ALTER TABLE {rig.q('idx_k')} REPLICA IDENTITY USING INDEX idx_k_u_key",
        f"ALTER TABLE {rig.q('def_k')} REPLICA IDENTITY DEFAULT",
    )
    rig.discover(*tables)
    rig.sync()
    rig.sql(
        f"UPDATE {rig.q('num_k')} SET v = 1",
        f"UPDATE {rig.q('ts_k')} SET v = 1",
        f"UPDATE {rig.q('comp_k')} SET v = 1 WHERE a = 1",  # doc: an unchanged TOASTed value
        f"UPDATE {rig.q('comp_k')} SET b = 'z' WHERE a = 2",  # the key changed: old row deleted
        f"UPDATE {rig.q('num_k')} SET k = 3 WHERE k = 2",
        f"UPDATE {rig.q('idx_k')} SET u = 11",  # the identity changed, the primary key did not
        f"UPDATE {rig.q('idx_k')} SET id = 2",  # the primary key changed, the identity did not
        f"UPDATE {rig.q('def_k')} SET v = 2",
        f"UPDATE {rig.q('def_k')} SET a = 3",
    )
    run = rig.sync()
    assert changes(run, "num_k") == [
        ("u", {"k": 1.5, "v": 1}),
        ("u", {"k": 2, "v": 1}),
        ("d", {"k": 2, "v": 1}),
        ("u", {"k": 3, "v": 1}),
    ]
    assert changes(run, "ts_k") == [("u", {"k": "2024-01-02T01:04:05.123456+00:00", "v": 1})]
    doc = run.records("comp_k")[0]["doc"]
    assert len(doc) == 9600
    assert changes(run, "comp_k") == [
        ("u", {"a": 1, "b": "x", "v": 1, "doc": doc}),
        ("d", {"a": 2, "b": "y", "v": 0, "doc": "small"}),
        ("u", {"a": 2, "b": "z", "v": 0, "doc": "small"}),
    ]
    assert changes(run, "def_k") == [
        ("u", {"a": 1, "b": "x", "v": 2}),
        ("d", {"a": 1, "b": "x"}),
        ("u", {"a": 3, "b": "x", "v": 2}),
    ]
    # the identity index's old key tells nothing about the primary key: no delete either way
    # (a primary key change under an identity that does not cover it is not seen as one)
    assert changes(run, "idx_k") == [("u", {"id": 1, "u": 11, "v": 0}), ("u", {"id": 2, "u": 11, "v": 0})]


def test_alter_table_between_and_during_syncs(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """ADD, DROP, ALTER TYPE and RENAME COLUMN in the WAL a sync reads: records carry the
    configured catalog's columns with the values each change wrote (a column the change did not
    have is absent, one the table no longer has is left out with one WARN); a catalog naming a
    column that is gone is a config_error saying to refresh; one that lacks a new column reads on
    without it; an ALTER while a sync streams waits for the next sync, which reads it the same."""
    rig = Rig(request, tmp_path)
    t = rig.q("alt")
    rig.sql(f"CREATE TABLE {t} (id int PRIMARY KEY, a int, b text, c int, d text)")
    rig.sql(f"INSERT INTO {t} VALUES (1, 1, 'b1', 1, 'd1')")
    rig.source.capture("alt")
    stale = rig.discover("alt")
    rig.sync()
    rig.sql(
        f"INSERT INTO {t} VALUES (10, 10, 'b10', 10, 'd10')",
        f"ALTER TABLE {t} ADD COLUMN e text",
        f"INSERT INTO {t} VALUES (11, 11, 'b11', 11, 'd11', 'e11')",
        f"UPDATE {t} SET e = 'e1' WHERE id = 1",
        f"ALTER TABLE {t} DROP COLUMN d",
        f"INSERT INTO {t} VALUES (12, 12, 'b12', 12, 'e12')",
        f"ALTER TABLE {t} ALTER COLUMN c TYPE text USING c::text || '!'",
        f"UPDATE {t} SET a = 2 WHERE id = 10",
        f"ALTER TABLE {t} RENAME COLUMN b TO bb",
        f"UPDATE {t} SET a = 3 WHERE id = 11",
        f"DELETE FROM {t} WHERE id = 12",
    )
    gone = rig.read(stale)
    (error, *_) = gone.errors()
    assert error["failure_type"] == "config_error", error
    assert "'b', 'd'" in error["message"]
    assert "refresh the source schema" in error["message"]
    assert gone.records("alt") == []

    fresh = rig.discover("alt")
    assert set(fresh["streams"][0]["stream"]["json_schema"]["properties"]) >= {"id", "a", "bb", "c", "e"}
    run = rig.sync(fresh)
    assert changes(run, "alt") == [
        ("u", {"id": 10, "a": 10, "c": "10"}),  # b, d: gone by now; e: not yet added; c: as text
        ("u", {"id": 11, "a": 11, "c": "11", "e": "e11"}),
        ("u", {"id": 1, "a": 1, "c": "1", "e": "e1"}),
        ("u", {"id": 12, "a": 12, "c": "12", "e": "e12"}),
        ("u", {"id": 10, "a": 2, "c": "10!", "e": None}),  # c retyped: the new type's value
        ("u", {"id": 11, "a": 3, "bb": "b11", "c": "11!", "e": "e11"}),
        ("d", {"id": 12, "a": 12, "bb": "b12", "c": "12!", "e": "e12"}),
    ]
    left_out = [line for line in run.logs() if "no longer has" in line]
    assert len(left_out) == 1, run.logs()
    assert "'b', 'd'" in left_out[0]
    assert any("changed mid-stream" in line and "retyped 'c'" in line for line in run.logs()), run.logs()

    # during a sync: the read's upper bound is fixed when it starts, so an ALTER and the changes
    # after it are the next sync's; that sync's catalog (not refreshed) lacks the new column
    rig.sql(f"INSERT INTO {t} SELECT i, i, 'x', 'y', 'z' FROM generate_series(100, 30099) AS i")
    deadline = time.monotonic() + 60
    while _slot_active(rig):  # the last read's walsender may still be on its way out
        assert time.monotonic() < deadline, "the slot stays active"
        time.sleep(0.05)
    runs: list[RunResult] = []
    reader = threading.Thread(target=lambda: runs.append(rig.read(fresh)))
    reader.start()
    while not _slot_active(rig):  # streaming: the read's upper bound is fixed
        assert time.monotonic() < deadline, "the read never started streaming"
        time.sleep(0.05)
    rig.sql(f"ALTER TABLE {t} ADD COLUMN f int", f"UPDATE {t} SET f = 7, a = -1 WHERE id = 1")
    assert reader.is_alive(), "the read ended before the ALTER: use more rows"
    reader.join(300)
    during = runs[0].raise_on_failure()
    extra = [r for r in during.records("alt") if not 100 <= r["id"] < 30100]
    assert extra == [], extra
    assert len(during.records("alt")) == 30000
    assert all("f" not in r for r in during.records("alt"))
    rig.state = CdcSuite.last_state(during)
    after = rig.sync(fresh)
    assert changes(after, "alt") == [("u", {"id": 1, "a": -1, "c": "1!", "e": "e1", "bb": "b1"})]
    unlisted = [line for line in after.logs() if "not in the configured catalog" in line]
    assert len(unlisted) == 1, after.logs()
    assert "'f' of public.alt" in unlisted[0]


def _slot_active(rig: Rig) -> bool:
    """Whether a walsender streams from the slot (not a backend advancing it, as a read does first)."""
    row = (
        rig.source.connect()
        .execute(
            "SELECT count(*) FROM pg_replication_slots AS s "
            "JOIN pg_stat_activity AS a ON a.pid = s.active_pid "
            "WHERE s.slot_name = %s AND a.backend_type = 'walsender'",
            (rig.source.slot,),
        )
        .fetchone()
    )
    return bool(row and row[0])


def single_row_transactions(rig: Rig, table: str, first: int, count: int) -> None:
    """``count`` inserts into ``table``, a transaction each (ids from ``first``)."""
    with psycopg.connect(**rig.source.database.connection_params(), autocommit=True) as conn:
        conn.execute(
            f"DO $$ BEGIN FOR i IN {first}..{first + count - 1} LOOP "
            f"INSERT INTO {rig.q(table)} (id, v) VALUES (i, 0); COMMIT; END LOOP; END $$"
        )


def test_a_transaction_larger_than_the_queue_killed_mid_way(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """One transaction of 10,500 changes over two tables (queue_size 1000: many batches without a
    point to resume from), between small ones. A read killed inside it resumes from the state
    after the small transactions before it: that transaction comes again whole (at-least-once),
    nothing before it does, nothing is lost."""
    rig = Rig(request, tmp_path, method={"queue_size": 1000}, checkpoint_records=100)
    rig.sql(*(f"CREATE TABLE {rig.q(t)} (id int PRIMARY KEY, v int)" for t in ("big1", "big2")))
    rig.source.capture("big1", "big2")
    rig.discover("big1", "big2")
    rig.sync()
    single_row_transactions(rig, "big1", 1, 300)
    rig.sql(
        f"""BEGIN;
        INSERT INTO {rig.q("big1")} SELECT i, 1 FROM generate_series(1001, 6000) AS i;
        INSERT INTO {rig.q("big2")} SELECT i, 1 FROM generate_series(1, 3000) AS i;
        UPDATE {rig.q("big1")} SET v = 2 WHERE id > 1000 AND id % 2 = 0;
        COMMIT"""
    )
    single_row_transactions(rig, "big2", 5001, 300)
    start = rig.state
    killed = rig.source.runner().read(rig.config(), rig.catalog, [start], kill_after_records=300 + 6000)
    assert killed.killed
    assert len(killed.records("big1")) + len(killed.records("big2")) >= 6300
    big = max(r["_ab_cdc_lsn"] for r in killed.records("big2"))  # the big transaction's commit
    assert killed.states(), "no state after the small transactions before the big one"
    rig.state = killed.states()[-1]
    resumed = rig.sync()
    again = [r for t in ("big1", "big2") for r in resumed.records(t)]
    assert min(r["_ab_cdc_lsn"] for r in again) == big, "a change before the big transaction came again"
    assert sum(r["_ab_cdc_lsn"] == big for r in again) == 10500, "the big transaction must come again whole"
    assert sum(r["_ab_cdc_lsn"] > big for r in again) == 300
    for table in ("big1", "big2"):
        target: dict[Any, Any] = {}
        for run in (killed, resumed):
            apply_records(target, run.records(table), "_ab_cdc_lsn")
        want = dict(rig.source.connect().execute(f"SELECT id, v FROM {rig.q(table)}").fetchall())
        assert {k: row["v"] for k, (_, row) in target.items() if row is not None} == want


def test_many_small_transactions_checkpoint_as_they_go(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """50,000 single-row transactions: states every checkpoint_records records, not only at the end."""
    rig = Rig(request, tmp_path, method={"queue_size": 1000}, checkpoint_records=5000)
    rig.sql(f"CREATE TABLE {rig.q('small')} (id int PRIMARY KEY, v int)")
    rig.source.capture("small")
    rig.discover("small")
    rig.sync()
    single_row_transactions(rig, "small", 1, 50_000)
    run = rig.sync()
    assert len(run.records("small")) == 50_000
    between = []
    count = 0
    for message in run.messages:
        if message["type"] == "RECORD":
            count += 1
        elif message["type"] == "STATE":
            between.append(count)
            count = 0
    assert len(between) >= 10, between
    assert max(between) <= 5000 + 1000, between  # an interval, plus at most one queue's worth


def test_a_table_added_to_the_publication_later(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A table added to the publication and the catalog after CDC started: the next sync
    snapshots it (and streams the first table on), the one after streams its changes."""
    rig = Rig(request, tmp_path)
    first, later = rig.q("first_t"), rig.q("later_t")
    rig.sql(f"CREATE TABLE {first} (id int PRIMARY KEY, v int)", f"INSERT INTO {first} VALUES (1, 0)")
    rig.source.capture("first_t")
    rig.discover("first_t")
    rig.sync()
    rig.sql(
        f"CREATE TABLE {later} (id int PRIMARY KEY, v int)",
        f"INSERT INTO {later} SELECT i, 0 FROM generate_series(1, 500) AS i",
        f"UPDATE {first} SET v = 1",
    )
    rig.source.capture("later_t")
    rig.sql(f"UPDATE {later} SET v = 1 WHERE id <= 10", f"INSERT INTO {first} VALUES (2, 0)")
    rig.discover("first_t", "later_t")
    added = rig.sync()
    assert changes(added, "first_t") == [("u", {"id": 1, "v": 1}), ("u", {"id": 2, "v": 0})]
    target: dict[Any, Any] = {}
    apply_records(target, added.records("later_t"), "_ab_cdc_lsn")
    want = dict(rig.source.connect().execute(f"SELECT id, v FROM {later}").fetchall())
    assert {k: row["v"] for k, (_, row) in target.items() if row is not None} == want
    assert len(want) == 500
    rig.sql(f"DELETE FROM {later} WHERE id = 500", f"UPDATE {later} SET v = 2 WHERE id = 1")
    streamed = rig.sync()
    assert changes(streamed, "later_t") == [("d", {"id": 500, "v": 0}), ("u", {"id": 1, "v": 2})]
    assert streamed.records("first_t") == []


@pytest.mark.parametrize("behaviour", ["After loading Data in the destination", "While reading Data"])
def test_lsn_commit_behaviour(behaviour: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Where the slot's confirmed_flush_lsn is after a sync, and after a sync whose states the
    destination never echoed (a failed load: the next sync starts from the state before)."""
    rig = Rig(request, tmp_path, method={"lsn_commit_behaviour": behaviour})
    t = rig.q("acked")
    rig.sql(f"CREATE TABLE {t} (id int PRIMARY KEY, v int)", f"INSERT INTO {t} VALUES (1, 0)")
    rig.source.capture("acked")
    rig.discover("acked")
    rig.sync()
    echoed = rig.position()
    rig.sql(f"UPDATE {t} SET v = 1", f"INSERT INTO {t} VALUES (2, 0)")
    loaded = rig.sync()  # the destination echoed its states: the next sync starts from them
    assert len(loaded.records("acked")) == 2
    read_to = rig.position()
    assert read_to > echoed
    if behaviour == "While reading Data":
        assert rig.confirmed() >= read_to - 1, "confirmed as read"
    else:
        assert rig.confirmed() == echoed, "confirmed only the state the sync started from"

    # a sync whose load fails: its states never come back; the next starts from the state before
    rig.sql(f"UPDATE {t} SET v = 2 WHERE id = 1")
    failed_load = rig.read().raise_on_failure()
    assert changes(failed_load, "acked") == [("u", {"id": 1, "v": 2})]
    lost_position = CdcSuite.last_state(failed_load)["global"]["shared_state"]["position"]["lsn"]
    if behaviour == "While reading Data":
        assert rig.confirmed() >= lost_position - 1
        retry = rig.read()
        (error, *_) = retry.errors()
        assert error["failure_type"] == "config_error", error
        assert "past the saved position" in error["message"]
        assert "While reading Data" in error["message"]
        assert retry.records("acked") == []
        resync = rig.read(catalog=None, invalid_cdc_cursor_position_behavior="Re-sync data")
        resync.raise_on_failure()
        assert sorted(r["id"] for r in resync.records("acked")) == [1, 2], "a resync reads every row"
    else:
        assert rig.confirmed() == read_to, "the position the failed sync started from, no further"
        retry = rig.sync()
        assert changes(retry, "acked") == [("u", {"id": 1, "v": 2})], "the lost load's changes come again"
        assert rig.confirmed() == read_to


def test_unchanged_toast_of_a_column_renamed_or_dropped_since(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """REPLICA IDENTITY DEFAULT: an update left TOASTed values unchanged, then the columns were
    renamed and dropped before the sync. Their values cannot be looked up by key any more: the
    read goes on, leaves them out with a WARN, and fills in the columns that still exist."""
    rig = Rig(request, tmp_path)
    t = rig.q("toasty")
    rig.sql(
        f"CREATE TABLE {t} (id int PRIMARY KEY, doc text, old text, keep text, n int)",
        f"INSERT INTO {t} VALUES (1, {BIG}, {BIG}, {BIG}, 0)",
    )
    rig.source.capture("toasty")
    rig.sql(f"ALTER TABLE {t} REPLICA IDENTITY DEFAULT")
    rig.discover("toasty")
    rig.sync()
    rig.sql(
        f"UPDATE {t} SET n = 1",
        f"ALTER TABLE {t} RENAME COLUMN doc TO body",
        f"ALTER TABLE {t} DROP COLUMN old",
    )
    rig.discover("toasty")
    run = rig.sync()
    ((op, data),) = changes(run, "toasty")
    assert op == "u"
    assert data == {"id": 1, "n": 1, "keep": data["keep"]}
    assert len(data["keep"]) == 9600
    warned = [line for line in run.logs() if "could not be looked up" in line]
    assert len(warned) == 1, run.logs()
    assert "'doc', 'old'" in warned[0]
