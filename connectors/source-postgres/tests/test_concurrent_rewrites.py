"""A full refresh that starts while another session rewrites the relation (TRUNCATE and reload,
REFRESH MATERIALIZED VIEW) reads the new contents, never an empty relation.

TRUNCATE is not MVCC-safe: a snapshot taken before it commits sees the new, still empty storage.
The read therefore locks tables and views (and the tables under them) before it takes its
snapshot. A materialized view cannot be locked that way; its REFRESH writes frozen rows, which
any snapshot sees."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest

from dbkit.testing import RunResult, configured_catalog
from dbkit.testing.suites import PostgresSourceHarness

pytestmark = pytest.mark.postgres

OLD = range(1, 1001)
NEW = range(5001, 6501)


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    return Source(request, tmp_path)


def _read_while(source: Source, name: str, rewrite: list[str]) -> RunResult:
    """Open a transaction that runs ``rewrite`` (and holds its locks), start a read of ``name``,
    wait until the read waits for a lock, commit, and return the read."""
    app = f"dbkit_rw_{secrets.token_hex(4)}"
    config = source.config(checkpoint_records=200, connection_parameters={"application_name": app})
    stream = source.runner().discover(config).raise_on_failure().stream(name, "public")
    writer = psycopg.connect(**source.database.connection_params())
    try:
        for statement in rewrite:
            writer.execute(statement)
        result: list[RunResult] = []
        reader = threading.Thread(
            target=lambda: result.append(source.runner().read(config, configured_catalog([stream])))
        )
        reader.start()
        watcher = source.connect()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event_type = 'Lock'",
                (app,),
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the read never waited for the rewriting transaction's lock")
        time.sleep(0.2)  # let every connection of the read reach its wait
        writer.commit()
        reader.join(60)
        assert result, "the read did not finish"
        return result[0]
    finally:
        writer.close()


def _ids(result: RunResult, name: str) -> list[int]:
    result.raise_on_failure()
    assert result.statuses(name) == ["STARTED", "COMPLETE"]
    return sorted(int(r["id"]) for r in result.records(name))


@pytest.mark.parametrize("key", ["primary key", "no key"])
def test_a_read_waiting_for_a_truncate_and_reload_reads_the_new_rows(source: Source, key: str) -> None:
    pk = "PRIMARY KEY" if key == "primary key" else ""
    source.execute(
        f"CREATE TABLE t (id integer {pk}, note text)",
        f"INSERT INTO t SELECT i, 'old' FROM generate_series({OLD.start}, {OLD.stop - 1}) AS i",
        "ANALYZE t",
    )
    got = _read_while(
        source,
        "t",
        [
            "TRUNCATE t",
            f"INSERT INTO t SELECT i, 'new' FROM generate_series({NEW.start}, {NEW.stop - 1}) AS i",
        ],
    )
    assert _ids(got, "t") == list(NEW)


def test_a_view_over_a_reloaded_table_reads_the_new_rows(source: Source) -> None:
    source.execute(
        "CREATE TABLE base (id integer PRIMARY KEY)",
        f"INSERT INTO base SELECT generate_series({OLD.start}, {OLD.stop - 1})",
        "CREATE VIEW v AS SELECT id FROM base",
    )
    got = _read_while(
        source,
        "v",
        ["TRUNCATE base", f"INSERT INTO base SELECT generate_series({NEW.start}, {NEW.stop - 1})"],
    )
    assert _ids(got, "v") == list(NEW)


def test_a_materialized_view_refreshed_as_the_read_starts_is_read_after_the_refresh(
    source: Source,
) -> None:
    source.execute(
        "CREATE TABLE base (id integer PRIMARY KEY)",
        f"INSERT INTO base SELECT generate_series({OLD.start}, {OLD.stop - 1})",
        "CREATE MATERIALIZED VIEW mv AS SELECT id FROM base",
        "ANALYZE mv",
    )
    got = _read_while(
        source,
        "mv",
        [
            "TRUNCATE base",
            f"INSERT INTO base SELECT generate_series({NEW.start}, {NEW.stop - 1})",
            "REFRESH MATERIALIZED VIEW mv",
        ],
    )
    assert _ids(got, "mv") == list(NEW)
