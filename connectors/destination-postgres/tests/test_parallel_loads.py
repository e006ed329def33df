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
import sqlalchemy as sa

from dbkit import Database, load_config
from dbkit.testing.suites import BASE_MS, ITEM_SCHEMA, DestinationSuite, item, stream, sync_messages
from destination_postgres import PostgresDestination

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


def test_a_partition_with_a_unique_index_or_a_trigger_of_its_own_makes_the_loads_run_one_at_a_time(
    pg: Any,
) -> None:
    """A partitioned table shows neither its partitions' own indexes nor their triggers: those are
    looked for in the whole partition tree (a load into the parent takes their locks)."""
    dialect = PostgresDestination.dialect_class(load_config(PostgresDestination.config_model, pg.config()))
    appendable = dialect.tables.concurrent_appends
    schema = pg.config().get("schema", "public")
    pg.execute(
        "CREATE TABLE parts (id bigint, k int) PARTITION BY RANGE (k)",
        "CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (10)",
        "CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (10) TO (20) PARTITION BY RANGE (k)",
        "CREATE TABLE parts_high_a PARTITION OF parts_high FOR VALUES FROM (10) TO (15)",
        "CREATE TABLE plain (id bigint)",
        "CREATE VIEW plain_view AS SELECT * FROM plain",
    )
    with pg.engine.connect() as conn:

        def concurrent(name: str) -> bool:
            return bool(appendable(conn, sa.Table(name, sa.MetaData(), schema=schema)))

        assert concurrent("parts")
        assert concurrent("plain")
        assert not concurrent("plain_view"), "a view loads one at a time"
        conn.exec_driver_sql("CREATE UNIQUE INDEX parts_high_a_id ON parts_high_a (id)")
        assert not concurrent("parts"), "a unique index of a partition two levels down"
        assert concurrent("parts_low")
        conn.exec_driver_sql("DROP INDEX parts_high_a_id")
        conn.exec_driver_sql(
            "CREATE FUNCTION dbkit_nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER dbkit_low BEFORE INSERT ON parts_low "
            "FOR EACH ROW EXECUTE FUNCTION dbkit_nothing()"
        )
        assert not concurrent("parts"), "a trigger of a partition"
        conn.commit()


def test_the_sessions_of_a_write_have_no_idle_transaction_timeout(pg: Any) -> None:
    """A load waiting for its turn is idle in its transaction: a server's (or database's)
    ``idle_in_transaction_session_timeout`` would end it."""
    config = pg.config()
    pg.execute(f"ALTER DATABASE \"{config['database']}\" SET idle_in_transaction_session_timeout = '5s'")
    dialect = PostgresDestination.dialect_class(load_config(PostgresDestination.config_model, config))
    database = Database(dialect)
    try:
        with database.connect() as conn:
            timeouts = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
    finally:
        database.engine.dispose()
        dialect.close()
    assert timeouts == "0"
    pg.engine.dispose()  # a new session of the harness: the database's own setting
    assert pg.query("SELECT current_setting('idle_in_transaction_session_timeout')") == [("5s",)]


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
