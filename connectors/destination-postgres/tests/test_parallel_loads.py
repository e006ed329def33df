"""Parallel loads (``parallel_loads``) where two loads of one write lock the same row: the later
load, sent and waiting for its turn to commit, holds what the earlier one waits for. It runs out
of patience, rolls back, and loads again after it; the write ends with every row once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dbkit.testing.suites import BASE_MS, ITEM_SCHEMA, DestinationSuite, item, stream, sync_messages

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a trigger sleeps, then the patience runs out
NAME = "items"


def test_loads_that_lock_the_same_row_do_not_hang(pg: Any) -> None:
    cat = DestinationSuite.catalog([stream(NAME, ITEM_SCHEMA)], "append")
    pg.write(cat, sync_messages(NAME, [item(1, "a", 1)])).raise_on_failure()
    pg.execute(
        "CREATE TABLE counters (k int PRIMARY KEY, n int)",
        "INSERT INTO counters VALUES (1, 0)",
        "CREATE OR REPLACE FUNCTION dbkit_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.name = 'slow' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$",
        f'CREATE TRIGGER dbkit_slow BEFORE INSERT ON "{NAME}" FOR EACH ROW EXECUTE FUNCTION dbkit_slow()',
        "CREATE OR REPLACE FUNCTION dbkit_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE counters SET n = n + 1 WHERE k = 1; RETURN NULL; END $$",
        f'CREATE TRIGGER dbkit_bump AFTER INSERT ON "{NAME}" FOR EACH STATEMENT '
        "EXECUTE FUNCTION dbkit_bump()",
    )
    rows = [item(i, f"v{i}", 1) for i in range(2, 32)]
    rows[5] = item(7, "slow", 1)  # the first batch of 10 sleeps; the second one bumps the counter first
    started = time.monotonic()
    result = pg.write(
        cat,
        sync_messages(NAME, rows, at=BASE_MS + 1000),
        batch_records=10,
        flush_seconds=3600,
        parallel_loads=2,
    ).raise_on_failure()
    assert time.monotonic() - started < 40, "the later load gives way after its patience (10 s)"
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(1, 32)), "each row once"
    assert pg.query("SELECT n FROM counters") == [(3,)], "one committed COPY per batch"
    assert any("rolled back and runs again after it" in line for line in result.logs())
    assert [s["stream"]["stream_state"]["upto"] for s in result.states()][-1] == len(rows)


def test_a_later_load_that_fails_lets_the_earlier_one_commit_and_echo_its_states(pg: Any) -> None:
    """The second load fails while the first, sent beside it, still runs: the first commits (it
    needs nothing of the second), its STATEs are echoed before the error, and a rerun from the
    last echoed STATE loads each row once."""
    cat = DestinationSuite.catalog([stream(NAME, ITEM_SCHEMA)], "append")
    pg.write(cat, sync_messages(NAME, [item(0, "zero", 1)])).raise_on_failure()
    pg.execute(
        "CREATE OR REPLACE FUNCTION dbkit_check() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.name = 'slow' THEN PERFORM pg_sleep(2); END IF; "
        "IF NEW.name = 'bad' THEN RAISE EXCEPTION 'dbkit test: refused'; END IF; RETURN NEW; END $$",
        f'CREATE TRIGGER dbkit_check BEFORE INSERT ON "{NAME}" FOR EACH ROW EXECUTE FUNCTION dbkit_check()',
    )
    rows = [item(i, f"v{i}", 1) for i in range(1, 31)]
    rows[8] = item(9, "slow", 1)  # the first batch (rows 0-9) is slow; the second one fails at once
    rows[12] = item(13, "bad", 1)
    messages = sync_messages(NAME, rows, at=BASE_MS + 1000)
    failed = pg.write(cat, messages, batch_records=10, flush_seconds=3600, parallel_loads=2)
    assert failed.exit_code != 0
    assert "refused" in json.dumps(failed.errors())
    last = [s["stream"]["stream_state"]["upto"] for s in failed.states()][-1]
    assert last == 9, "the first batch committed: its states are echoed"
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(11))
    pg.execute(f'DROP TRIGGER dbkit_check ON "{NAME}"')
    pg.write(cat, sync_messages(NAME, rows[last + 1 :], at=BASE_MS + 2000)).raise_on_failure()
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == list(range(31)), "each row once"
