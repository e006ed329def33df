"""Reads that are interrupted and resumed, against real PostgreSQL.

- A connection terminated by ``pg_terminate_backend`` in the middle of a read (after several
  checkpoints) ends the output with a ``transient_error`` TRACE after the last good STATE and a
  non-zero exit; resuming from that STATE delivers every row, repeating only rows emitted after
  it. Keyset (primary key) and ctid (no key) reads, full refresh and cursor incremental.
- A ctid read interrupted, then the table rewritten by ``VACUUM FULL``: the resumed read notices
  the new relation identity (a LOG warning) and reads the table whole again, losing nothing.
- Several streams are read at the same time, each on its own connection.

To stop a read at a chosen row, deterministically, the table gets a row-level security policy
whose function waits, at one row, for an advisory lock the test holds (the connector connects as
a role without BYPASSRLS, so the policy applies): the reader is then known to be blocked in the
middle of the table, and the test terminates exactly the backends that wait there.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql

from dbkit.testing import RunResult, configured_catalog
from dbkit.testing.suites import PostgresSourceHarness

ROWS = 3000
GATE_ID = 2000


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    return Source(request, tmp_path)


def create_events(source: Source, name: str, *, keyed: bool, rows: int = ROWS) -> None:
    pk = "PRIMARY KEY" if keyed else ""
    source.execute(
        f"CREATE TABLE {name} (id bigint {pk} NOT NULL, seq bigint NOT NULL, note text)",
        f"INSERT INTO {name} SELECT i, i * 10, repeat('x', 40) || i FROM generate_series(1, {rows}) AS i",
        f"CREATE INDEX ON {name} (seq, id)",
        f"ANALYZE {name}",
    )


class Gate:
    """Rows of ``table`` with ``id = at`` wait, inside the reader's query, for an advisory lock
    this object holds until :meth:`open` (see the module doc)."""

    def __init__(self, source: Source, table: str, at: int) -> None:
        self.source = source
        self.key = secrets.randbelow(2**31)
        self.holder = source.connect()
        self.holder.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        function = f"{table}_gate"
        source.execute(
            f"""
            CREATE FUNCTION {function}(k bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
                IF k = {at} THEN
                    PERFORM pg_advisory_lock_shared({self.key});
                    PERFORM pg_advisory_unlock_shared({self.key});
                END IF;
                RETURN true;
            END $$
            """,
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {table}_gate ON {table} FOR SELECT USING ({function}(id))",
        )

    def waiting(self, conn: psycopg.Connection[Any], application_name: str) -> list[int]:
        """The reader's backends (by application name) that wait for the gate now."""
        rows = conn.execute(
            """
            SELECT pid FROM pg_stat_activity AS a
            WHERE a.application_name = %s AND a.wait_event_type = 'Lock' AND a.wait_event = 'advisory'
              AND EXISTS (SELECT FROM pg_locks AS l WHERE l.pid = a.pid AND NOT l.granted
                          AND l.locktype = 'advisory' AND l.objid = %s)
            """,
            (application_name, self.key % 2**32),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def open(self) -> None:
        self.holder.execute("SELECT pg_advisory_unlock(%s)", (self.key,))


class Terminator(threading.Thread):
    """Waits until the reader is blocked at the gate, then terminates those backends (from its
    own connection, as an administrator would)."""

    def __init__(self, source: Source, gate: Gate, application_name: str, timeout: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.conn = source.connect()
        self.gate = gate
        self.application_name = application_name
        self.timeout = timeout
        self.terminated: list[int] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            pids = self.gate.waiting(self.conn, self.application_name)
            if pids:
                for pid in pids:
                    self.conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                self.terminated = pids
                return
            time.sleep(0.02)


def records_before_each_state(result: RunResult, stream: str) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """(ids emitted so far, STATE) for every STATE of ``stream``, in order."""
    seen: list[Any] = []
    for message in result.messages:
        if message["type"] == "RECORD" and message["record"]["stream"] == stream:
            seen.append(message["record"]["data"]["id"])
        elif message["type"] == "STATE" and message["state"]["stream"]["stream_descriptor"]["name"] == stream:
            yield list(seen), message["state"]


def catalog_for(stream: dict[str, Any], incremental: bool) -> dict[str, Any]:
    if incremental:
        return configured_catalog(
            [stream], sync_mode="incremental", cursor_field=["seq"], destination_sync_mode="append_dedup"
        )
    return configured_catalog([stream])


def assert_ends_with_transient_error(result: RunResult, stream: str) -> None:
    """Non-zero exit; one transient TRACE error, after the last STATE, with nothing but logs and
    the stream's INCOMPLETE status after that STATE except records."""
    assert result.exit_code not in (0, None), result.stderr[-2000:]
    (error,) = result.errors()
    assert error["failure_type"] == "transient_error", error
    assert "lost the connection" in error["message"] or "terminat" in error["message"], error
    kinds = [m["type"] for m in result.messages]
    last_state = max(i for i, k in enumerate(kinds) if k == "STATE")
    error_at = next(
        i for i, m in enumerate(result.messages) if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    )
    assert last_state < error_at
    after = result.messages[error_at + 1 :]
    assert all(m["type"] == "LOG" for m in after), [m["type"] for m in after]
    assert result.statuses(stream) == ["STARTED", "INCOMPLETE"]


@pytest.mark.postgres
@pytest.mark.parametrize("incremental", [False, True], ids=["full_refresh", "incremental"])
@pytest.mark.parametrize("keyed", [True, False], ids=["keyset", "ctid"])
def test_terminated_connection_is_transient_and_resumes_without_loss(
    source: Source, keyed: bool, incremental: bool
) -> None:
    create_events(source, "events", keyed=keyed)
    role = source.role()
    source.execute(f'GRANT SELECT ON events TO "{role}"')
    gate = Gate(source, "events", GATE_ID)
    application_name = f"dbkit_t_{secrets.token_hex(4)}"
    config = source.as_role(
        role, checkpoint_records=100, connection_parameters={"application_name": application_name}
    )
    stream = source.runner().discover(config).raise_on_failure().stream("events", "public")
    catalog = catalog_for(stream, incremental)
    terminator = Terminator(source, gate, application_name)
    terminator.start()
    first = source.runner().read(config, catalog)
    terminator.join()
    assert terminator.terminated, "the read never reached the gate row"
    assert_ends_with_transient_error(first, "events")

    checkpoints = list(records_before_each_state(first, "events"))
    assert len(checkpoints) >= 5, "the read was terminated before enough checkpoints"
    covered, last_state = checkpoints[-1]
    emitted = [r["id"] for r in first.records("events")]
    assert GATE_ID not in emitted
    assert len(emitted) < ROWS
    for _before, state in checkpoints:  # every STATE counts exactly the records before it
        assert state["sourceStats"]["recordCount"] > 0
    assert sum(int(s["sourceStats"]["recordCount"]) for _, s in checkpoints) == len(covered)

    gate.open()
    resumed = source.runner().read(config, catalog, [last_state]).raise_on_failure()
    again = [r["id"] for r in resumed.records("events")]
    assert len(again) == len(set(again)), "the resumed read emitted a row twice"
    assert sorted(set(emitted) | set(again)) == list(range(1, ROWS + 1)), "rows lost across the failure"
    repeated = set(covered) & set(again)
    assert not repeated, f"rows emitted before the last STATE were read again: {sorted(repeated)[:10]}"
    assert resumed.statuses("events") == ["STARTED", "COMPLETE"]


def ctid_of(source: Source, table: str) -> dict[int, tuple[int, int]]:
    conn = source.connect()
    rows = conn.execute(sql.SQL("SELECT id, ctid::text FROM {}").format(sql.Identifier(table))).fetchall()
    out = {}
    for id_, tid in rows:
        page, offset = tid.strip("()").split(",")
        out[int(id_)] = (int(page), int(offset))
    return out


def killed_ctid_read(source: Source) -> tuple[dict[str, Any], dict[str, Any], list[Any], dict[str, Any]]:
    """A 6,000-row table without a key, read by ctid and killed after its sixth STATE: the config,
    the catalog, the ids emitted before the last STATE, and that STATE."""
    create_events(source, "heap", keyed=False, rows=6000)
    config = source.config(checkpoint_records=200)
    stream = source.runner().discover(config).raise_on_failure().stream("heap", "public")
    catalog = configured_catalog([stream])
    killed = source.runner().read(config, catalog, kill_after_states=6)
    assert killed.killed
    covered, state = list(records_before_each_state(killed, "heap"))[-1]
    return config, catalog, covered, state


@pytest.mark.postgres
def test_ctid_resume_after_vacuum_full_reads_the_table_again(source: Source) -> None:
    config, catalog, covered, state = killed_ctid_read(source)
    position = state["stream"]["stream_state"]
    conn = source.connect()
    oid, filenode = conn.execute(
        "SELECT 'heap'::regclass::oid::bigint, pg_relation_filenode('heap')"
    ).fetchone()
    assert position["by"] == ["ctid"]
    assert position["relation"] == {"oid": oid, "filenode": filenode}
    page, offset = (int(p) for p in position["ctid_below"].strip("()").split(","))

    # free the start of the table and rewrite it: rows not read yet move below the saved position
    conn.execute("DELETE FROM heap WHERE id <= 3000")
    conn.execute("VACUUM FULL heap")
    new_oid, new_filenode = conn.execute(
        "SELECT 'heap'::regclass::oid::bigint, pg_relation_filenode('heap')"
    ).fetchone()
    assert new_oid == oid
    assert new_filenode != filenode
    remaining = ctid_of(source, "heap")
    moved = {i for i, tid in remaining.items() if tid < (page, offset)} - set(covered)
    assert moved, "the rewrite moved no unread row below the saved position; the test proves nothing"

    resumed = source.runner().read(config, catalog, [state]).raise_on_failure()
    ids = [r["id"] for r in resumed.records("heap")]
    assert sorted(ids) == sorted(remaining), "the resumed read lost or repeated rows"
    assert any("rewritten" in line and "heap" in line for line in resumed.logs()), resumed.logs()
    assert resumed.statuses("heap") == ["STARTED", "COMPLETE"]


@pytest.mark.postgres
def test_streams_are_read_concurrently_on_separate_connections(source: Source) -> None:
    """With ``max_concurrent_streams: 2`` both streams are blocked at their gates at the same
    time, on two different backends; opened, both complete."""
    create_events(source, "left_t", keyed=True, rows=1000)
    create_events(source, "right_t", keyed=False, rows=1000)
    role = source.role()
    source.execute(f'GRANT SELECT ON left_t, right_t TO "{role}"')
    gates = [Gate(source, "left_t", 700), Gate(source, "right_t", 700)]
    application_name = f"dbkit_t_{secrets.token_hex(4)}"
    config = source.as_role(
        role,
        checkpoint_records=100,
        max_concurrent_streams=2,
        connection_parameters={"application_name": application_name},
    )
    discovered = source.runner().discover(config).raise_on_failure()
    catalog = configured_catalog(
        [discovered.stream("left_t", "public"), discovered.stream("right_t", "public")]
    )
    seen: list[list[int]] = []
    monitor = source.connect()

    def watch() -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                waiting = [g.waiting(monitor, application_name) for g in gates]
                if all(waiting):
                    seen.extend(waiting)
                    return
                time.sleep(0.02)
        finally:
            for g in gates:
                g.open()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = source.runner().read(config, catalog).raise_on_failure()
    watcher.join()
    assert seen, "the two streams were never blocked at the same time: not read concurrently"
    assert not set(seen[0]) & set(seen[1]), "both streams waited on the same backend"
    for name in ("left_t", "right_t"):
        assert sorted(r["id"] for r in result.records(name)) == list(range(1, 1001))
        assert result.statuses(name) == ["STARTED", "COMPLETE"]


@pytest.mark.postgres
def test_ctid_resume_reads_rows_that_moved_below_the_position(source: Source) -> None:
    """Same relation (plain VACUUM keeps the filenode), but rows updated or inserted after the
    interrupted read land in pages it had already passed: the resumed read still delivers them,
    with their new values (rows written since the saved snapshot are read again below it)."""
    config, catalog, covered, state = killed_ctid_read(source)
    position = state["stream"]["stream_state"]
    below = tuple(int(p) for p in position["ctid_below"].strip("()").split(","))
    conn = source.connect()
    filenode = conn.execute("SELECT pg_relation_filenode('heap')").fetchone()
    conn.execute("DELETE FROM heap WHERE id <= 1000")
    conn.execute("VACUUM heap")  # frees the first pages, keeps the relation's identity
    conn.execute("UPDATE heap SET note = 'moved' WHERE id > 5500")
    conn.execute("INSERT INTO heap SELECT i, i * 10, 'new' FROM generate_series(6001, 6100) AS i")
    assert conn.execute("SELECT pg_relation_filenode('heap')").fetchone() == filenode
    now = ctid_of(source, "heap")
    moved = {i for i, tid in now.items() if i > 5500 and tid < below}
    assert moved, "no updated row moved below the saved position; the test proves nothing"

    resumed = source.runner().read(config, catalog, [state]).raise_on_failure()
    assert not any("rewritten" in line for line in resumed.logs())
    records = {r["id"]: r for r in resumed.records("heap")}
    missing = set(now) - set(covered) - set(records)
    assert not missing, f"rows lost: {sorted(missing)[:10]}"
    for i in moved | set(range(6001, 6101)):
        assert i in records, f"row {i}, written after the interrupted read below its position, was lost"
    assert all(records[i]["note"] == "moved" for i in range(5501, 6001))
