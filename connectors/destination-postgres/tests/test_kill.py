"""SIGKILL in the middle of a batch — while its COPY runs, and while its MERGE runs — then a
rerun from the last echoed STATE: the final table is exactly as expected and no staging or
temporary table is left anywhere in the database.

A row trigger on the target table sleeps on one marked record, so the kill lands inside the
statement (seen in ``pg_stat_activity`` as the COPY / MERGE waiting on ``PgSleep``), after the
batches before it were committed and their STATEs echoed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from dbkit.testing.suites import (
    BASE_MS,
    ITEM_SCHEMA,
    DestinationSuite,
    item,
    stream,
    sync_messages,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # each test sleeps 4 s in a trigger
catalog = DestinationSuite.catalog
NAME = "items"
SLOW = "slow"


def install_sleep_trigger(pg: Any, table: str, events: str) -> None:
    pg.execute(
        "CREATE OR REPLACE FUNCTION dbkit_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.name = '{SLOW}' THEN PERFORM pg_sleep(4); END IF; RETURN NEW; END $$",
        f'CREATE TRIGGER dbkit_sleep BEFORE {events} ON "{table}" FOR EACH ROW '
        "EXECUTE FUNCTION dbkit_sleep()",
    )


def sleeping_statement(pg: Any, verb: str) -> int | None:
    """The backend pid of the connector's statement starting with ``verb`` stuck in the trigger."""
    rows = pg.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND wait_event = 'PgSleep' AND query ILIKE :verb",
        verb=f"{verb} %",
    )
    return int(rows[0][0]) if rows else None


def waiting_to_commit(pg: Any) -> int:
    """Backends of other sessions holding an open transaction, idle (a batch sent, waiting for
    the one before it to commit)."""
    rows = pg.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
    )
    return int(rows[0][0])


def wait_gone(pg: Any, pid: int, timeout: float = 60) -> None:
    """Wait until a killed client's backend has finished (its transaction rolled back)."""
    deadline = time.monotonic() + timeout
    while pg.query("SELECT 1 FROM pg_stat_activity WHERE pid = :pid", pid=pid):
        assert time.monotonic() < deadline, "the killed client's backend did not end"
        time.sleep(0.1)


def kill_inside(
    pg: Any,
    cat: dict[str, Any],
    rows: list[dict[str, Any]],
    verb: str,
    boundary: int,
    refresh: bool = False,
    before_input: Callable[[], None] | None = None,
    **config: Any,
) -> int:
    """Run a write of ``rows``, SIGKILL it while its ``verb`` statement sleeps in the trigger
    (once STATE ``upto >= boundary`` was echoed); the last echoed ``upto``."""
    run = pg.start(
        cat,
        sync_messages(NAME, rows, at=BASE_MS + 1000),
        before_input,
        batch_records=10,
        flush_seconds=3600,
        **config,
    )
    seen: dict[str, int] = {}

    def inside() -> bool:
        pid = sleeping_statement(pg, verb)
        states = run.states()
        if pid is None or not states or states[-1]["stream"]["stream_state"]["upto"] < boundary:
            return False
        seen["pid"] = pid
        return True

    assert run.wait_for(inside), f"the write never reached its {verb} in the trigger"
    if config.get("parallel_loads", 1) > 1:  # the next batch is sent and waits for its turn
        assert run.wait_for(lambda: waiting_to_commit(pg) == 1), "no batch loaded beside the sleeping one"
    run.kill()
    echoed = run.states()
    last: int = echoed[-1]["stream"]["stream_state"]["upto"]
    wait_gone(pg, seen["pid"])
    left = [t for t in pg.working_tables() if not (refresh and t[1].endswith("_airbyte_tmp") and t[2] == "p")]
    assert left == [], "the killed session's working tables must be gone (a refresh keeps its own)"
    return last


@pytest.mark.parametrize("parallel_loads", [1, 2])
def test_killed_during_copy_then_rerun_from_the_last_state(pg: Any, parallel_loads: int) -> None:
    """With parallel loads the batch after the sleeping one is sent beside it, and rolled back
    with it: loads commit in order, so the rerun loads each row once."""
    first = [item(1, "a", 1), item(2, "b", 1)]
    pg.write(catalog([stream(NAME, ITEM_SCHEMA)], "append"), sync_messages(NAME, first)).raise_on_failure()
    cat = catalog([stream(NAME, ITEM_SCHEMA)], "append", generation=5)

    def trigger_after_setup() -> None:  # a trigger found at setup makes the loads one at a time
        pg.wait_for_setup(NAME, 5)
        install_sleep_trigger(pg, NAME, "INSERT")

    before_input: Callable[[], None] | None = trigger_after_setup
    if parallel_loads == 1:
        install_sleep_trigger(pg, NAME, "INSERT")
        before_input = None
    rows = [item(i, f"v{i}", 1) for i in range(3, 63)]
    rows[35] = item(38, SLOW, 1)  # in the 4th batch of 10 (indexes 30-39)
    last = kill_inside(
        pg, cat, rows, "COPY", boundary=29, before_input=before_input, parallel_loads=parallel_loads
    )
    committed = sorted(r["id"] for r in pg.rows(cat, NAME))
    assert 38 not in committed, "the batch being copied was not committed"
    assert committed[: last + 3] == list(range(1, last + 4)), "every row the echoed STATEs cover is committed"
    pg.execute(f'DROP TRIGGER dbkit_sleep ON "{NAME}"')
    pg.write(cat, sync_messages(NAME, rows[last + 1 :], at=BASE_MS + 2000)).raise_on_failure()
    final = pg.rows(cat, NAME)
    assert [r["id"] for r in final] == list(range(1, 63)), "each row exactly once"
    assert next(r for r in final if r["id"] == 38)["name"] == SLOW
    assert pg.working_tables() == []
    assert pg.tables("public") == {NAME}


@pytest.mark.parametrize("raw_tables", [False, True])
def test_killed_during_merge_then_rerun_from_the_last_state(pg: Any, raw_tables: bool) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    first = [item(i, f"v{i}", 1) for i in range(1, 21)]
    pg.write(cat, sync_messages(NAME, first), raw_tables=raw_tables).raise_on_failure()
    install_sleep_trigger(pg, NAME, "INSERT OR UPDATE")
    # updates of existing keys (newer cursor), new keys, and keys repeated inside the write
    rows = [item(1 + (i * 7) % 30, f"u{i}", 2 + i // 10) for i in range(60)]
    rows[35] = item(5, SLOW, 9)  # an update, in the 4th batch (indexes 30-39)
    last = kill_inside(pg, cat, rows, "MERGE", boundary=29, raw_tables=raw_tables)
    pg.execute(f'DROP TRIGGER dbkit_sleep ON "{NAME}"')
    stored = {r["id"]: r["name"] for r in pg.rows(cat, NAME)}
    assert stored[5] != SLOW, "the batch being merged was not committed"
    rerun = sync_messages(NAME, rows[last + 1 :], at=BASE_MS + 2000)
    pg.write(cat, rerun, raw_tables=raw_tables).raise_on_failure()
    want: dict[int, tuple[str, str]] = {}
    for row in [*first, *rows]:  # newest cursor wins; equal cursors: the later record
        current = want.get(row["id"])
        if current is None or row["updated_at"] >= current[1]:
            want[row["id"]] = (row["name"], row["updated_at"])
    final = pg.rows(cat, NAME)
    assert [r["id"] for r in final] == sorted(want), "one row per key"
    assert {r["id"]: r["name"] for r in final} == {k: v[0] for k, v in want.items()}
    assert pg.working_tables() == []
    if raw_tables:
        raw = pg.query("SELECT _airbyte_data->>'name', _airbyte_raw_id FROM items_raw")
        assert sorted(r[0] for r in raw) == sorted(r["name"] for r in [*first, *rows]), "every record once"
        assert {str(r["_raw_id"]) for r in final} <= {r[1] for r in raw}
        assert pg.tables("public") == {NAME, "items_raw"}
    else:
        assert pg.tables("public") == {NAME}


def test_killed_during_copy_into_a_resumed_refresh(pg: Any) -> None:
    """Overwrite: an interrupted attempt leaves the temporary table; the next attempt of the same
    generation resumes it and is killed inside its COPY; the third attempt swaps in exactly the
    refreshed rows."""
    old = [item(i, "old", 1) for i in range(1, 4)]
    pg.write(
        catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=1), sync_messages(NAME, old)
    ).raise_on_failure()
    cat = catalog([stream(NAME, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
    rows = [item(i, f"v{i}", 1) for i in range(1, 71)]
    rows[45] = item(46, SLOW, 1)
    broken = pg.write(cat, sync_messages(NAME, rows[:10], complete=False))
    assert broken.exit_code != 0
    (tmp,) = [t for t in pg.tables("public") if t != NAME]
    install_sleep_trigger(pg, tmp, "INSERT")
    rest = rows[10:]
    last = kill_inside(pg, cat, rest, "COPY", boundary=29, refresh=True)
    assert sorted(r["id"] for r in pg.rows(cat, NAME)) == [1, 2, 3], "the old table stays visible"
    assert [r["name"] for r in pg.rows(cat, NAME)] == ["old"] * 3
    pg.execute(f'DROP TRIGGER dbkit_sleep ON "{tmp}"')
    pg.write(cat, sync_messages(NAME, rest[last + 1 :], at=BASE_MS + 2000)).raise_on_failure()
    final = pg.rows(cat, NAME)
    assert [r["id"] for r in final] == list(range(1, 71)), "each refreshed row exactly once"
    assert {r["_generation"] for r in final} == {2}
    assert pg.working_tables() == []
    assert pg.tables("public") == {NAME}
