"""Parallel loads (``parallel_loads``) where the loads of one write meet a trigger.

A trigger the write finds at setup makes the stream's loads run one at a time. One created after
the setup (as a DBA might, mid-write) is not seen: two loads that lock the same row then meet,
the later one, sent and waiting for its turn to commit, holding what the earlier one waits for.
It runs out of patience, rolls back, and loads again after it; the write ends with every row
once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from dbkit.testing.suites import BASE_MS, ITEM_SCHEMA, DestinationSuite, item, stream, sync_messages

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a trigger sleeps, then the patience runs out
NAME = "items"
GENERATION = 7
SLOW_TRIGGER = (
    "CREATE OR REPLACE FUNCTION dbkit_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.name = 'slow' THEN PERFORM pg_sleep(2); END IF; "
    "IF NEW.name = 'bad' THEN RAISE EXCEPTION 'dbkit test: refused'; END IF; RETURN NEW; END $$",
    f'CREATE TRIGGER dbkit_slow BEFORE INSERT ON "{NAME}" FOR EACH ROW EXECUTE FUNCTION dbkit_slow()',
)
COUNTER_TRIGGER = (
    "CREATE TABLE IF NOT EXISTS counters (k int PRIMARY KEY, n int)",
    "INSERT INTO counters VALUES (1, 0)",
    "CREATE OR REPLACE FUNCTION dbkit_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE counters SET n = n + 1 WHERE k = 1; RETURN NULL; END $$",
    f'CREATE TRIGGER dbkit_bump AFTER INSERT ON "{NAME}" FOR EACH STATEMENT EXECUTE FUNCTION dbkit_bump()',
)


def after_setup(pg: Any, statements: Sequence[str], messages: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    """The write's input: nothing until its setup is done (the table's generation default is
    this write's), then ``statements`` run, then ``messages``."""
    pg.wait_for_setup(NAME, GENERATION)
    pg.execute(*statements)
    yield from messages


def catalog(generation: int = GENERATION) -> dict[str, Any]:
    return DestinationSuite.catalog([stream(NAME, ITEM_SCHEMA)], "append", generation=generation)


def test_a_trigger_found_at_setup_makes_the_loads_run_one_at_a_time(pg: Any) -> None:
    cat = catalog()
    pg.write(catalog(1), sync_messages(NAME, [item(1, "a", 1)])).raise_on_failure()
    pg.execute(*SLOW_TRIGGER, *COUNTER_TRIGGER)
    rows = [item(i, f"v{i}", 1) for i in range(2, 32)]
    rows[5] = item(7, "slow", 1)
    messages = sync_messages(NAME, rows, at=BASE_MS + 1000)
    started = time.monotonic()
    result = pg.write(
        cat, messages, batch_records=10, flush_seconds=3600, parallel_loads=2
    ).raise_on_failure()
    assert time.monotonic() - started < 10, "no load waited for its patience"
    assert not any("rolled back" in line for line in result.logs())
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(1, 32))
    assert pg.query("SELECT n FROM counters") == [(3,)]


def test_loads_that_lock_the_same_row_do_not_hang(pg: Any) -> None:
    cat = catalog()
    pg.write(catalog(1), sync_messages(NAME, [item(1, "a", 1)])).raise_on_failure()
    rows = [item(i, f"v{i}", 1) for i in range(2, 32)]
    rows[5] = item(7, "slow", 1)  # the first batch of 10 sleeps; the second one bumps the counter first
    messages = after_setup(
        pg, [*SLOW_TRIGGER, *COUNTER_TRIGGER], sync_messages(NAME, rows, at=BASE_MS + 1000)
    )
    started = time.monotonic()
    config = pg.config(batch_records=10, flush_seconds=3600, parallel_loads=2)
    result = pg.runner().write(config, cat, messages).raise_on_failure()
    assert time.monotonic() - started < 40, "the later load gives way after its patience (10 s)"
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(1, 32)), "each row once"
    assert pg.query("SELECT n FROM counters") == [(3,)], "one committed COPY per batch"
    assert any("it was waiting for this one" in line for line in result.logs())
    assert [s["stream"]["stream_state"]["upto"] for s in result.states()][-1] == len(rows)


def test_a_later_load_that_fails_lets_the_earlier_one_commit_and_echo_its_states(pg: Any) -> None:
    """The second load fails while the first, sent beside it, still runs: the first commits (it
    needs nothing of the second), its STATEs are echoed before the error, and a rerun from the
    last echoed STATE loads each row once."""
    cat = catalog()
    pg.write(catalog(1), sync_messages(NAME, [item(0, "zero", 1)])).raise_on_failure()
    rows = [item(i, f"v{i}", 1) for i in range(1, 31)]
    rows[8] = item(9, "slow", 1)  # the first batch (rows 0-9) is slow; the second one fails at once
    rows[12] = item(13, "bad", 1)
    messages = after_setup(pg, SLOW_TRIGGER, sync_messages(NAME, rows, at=BASE_MS + 1000))
    config = pg.config(batch_records=10, flush_seconds=3600, parallel_loads=2)
    failed = pg.runner().write(config, cat, messages)
    assert failed.exit_code != 0
    assert "refused" in json.dumps(failed.errors())
    last = [s["stream"]["stream_state"]["upto"] for s in failed.states()][-1]
    assert last == 9, "the first batch committed: its states are echoed"
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(11))
    pg.execute(f'DROP TRIGGER dbkit_slow ON "{NAME}"')
    pg.write(cat, sync_messages(NAME, rows[last + 1 :], at=BASE_MS + 2000)).raise_on_failure()
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(31)), "each row once"


def test_a_second_connection_refused_names_parallel_loads(pg: Any) -> None:
    """A user allowed one connection: the second lane cannot connect, and the error says how to
    load on one; with ``parallel_loads: 1`` the same write succeeds."""
    role = f"dbkit_one_{uuid.uuid4().hex[:10]}"
    database = pg.query("SELECT current_database()")[0][0]
    pg.execute(
        f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1",
        f"GRANT CREATE, USAGE ON SCHEMA public TO {role}",
        f'GRANT CREATE, CONNECT ON DATABASE "{database}" TO {role}',
    )
    try:
        cat = catalog(1)
        rows = [item(i, f"v{i}", 1) for i in range(1, 21)]
        failed = pg.write(cat, sync_messages(NAME, rows), batch_records=2, parallel_loads=2, username=role)
        assert failed.exit_code != 0
        (error,) = failed.errors()
        assert "for parallel loads" in error["message"], error
        assert "parallel_loads: 1 loads on one connection" in error["message"], error
        before = len(pg.rows(cat, NAME))  # what the failed write committed (and echoed)
        one = pg.write(cat, sync_messages(NAME, rows), batch_records=2, parallel_loads=1, username=role)
        one.raise_on_failure()
        assert len(pg.rows(cat, NAME)) == before + len(rows)
    finally:
        pg.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")
