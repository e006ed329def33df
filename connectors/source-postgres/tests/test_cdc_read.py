"""source-postgres CDC reads (logical replication on the throwaway wal_level=logical server): the
CDC acceptance suite, the snapshot -> log handover race, a walsender terminated mid-read, a lost
slot, idle syncs that confirm only acknowledged positions, the PostgreSQL rules (publication
membership) as config_errors before anything is read, unchanged TOAST values under the default
replica identity filled in by key."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql

from dbkit.testing.suites import (
    PEOPLE,
    CdcHarness,
    CdcSuite,
    PostgresSourceHarness,
    apply_records,
    people_table,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class PostgresCdc(PostgresSourceHarness, CdcHarness):
    command = "source-postgres"
    server_fixture: ClassVar[str] = "postgres_server_logical"
    position_column: ClassVar[str] = "_ab_cdc_lsn"
    precreate_slot: ClassVar[bool] = True
    """Whether ``capture`` creates the slot (the user's way); False: the first read creates it."""

    def setup(self, **fixtures: Any) -> None:
        super().setup(**fixtures)
        self.slot = f"dbkit_{secrets.token_hex(6)}"
        self.publication = "dbkit_pub"

    def cdc_config(self, **overrides: Any) -> dict[str, Any]:
        method = {
            "method": "CDC",
            "replication_slot": self.slot,
            "publication": self.publication,
            "initial_waiting_seconds": 10,
        }
        return self.config(**{"replication_method": method, **overrides})

    def capture(self, *tables: str) -> None:
        conn = self.connect()
        names = sql.SQL(", ").join(sql.Identifier("public", t) for t in tables)
        for t in tables:
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier("public", t)))
        exists = conn.execute("SELECT FROM pg_publication WHERE pubname = %s", (self.publication,)).fetchone()
        verb = (
            "ALTER PUBLICATION {} ADD TABLE {}"
            if exists is not None
            else "CREATE PUBLICATION {} FOR TABLE {}"
        )
        conn.execute(sql.SQL(verb).format(sql.Identifier(self.publication), names))
        if self.precreate_slot and self.slot_row() is None:
            # as Airbyte's setup guide has users do: the slot exists before the first sync
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))

    def slot_row(self) -> dict[str, Any] | None:
        row = (
            self.connect()
            .execute(
                "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            )
            .fetchone()
        )
        return None if row is None else {"confirmed": row[0], "wal_status": row[1]}

    def acknowledged(self) -> Mapping[str, Any] | None:
        from source_postgres.cdc import format_lsn, parse_lsn

        row = self.slot_row()
        if row is None:
            return None
        lsn = parse_lsn(row["confirmed"])
        return {"lsn": lsn, "lsn_text": format_lsn(lsn), "slot": self.slot}

    def lose_log(self) -> None:
        self.connect().execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))


class TestPostgresCdc(CdcSuite):
    harness = PostgresCdc


class PostgresCdcNewSlot(PostgresCdc):
    """The slot does not exist before the first sync: the read creates it (SNAPSHOT 'export')."""

    precreate_slot: ClassVar[bool] = False


def people_catalog(source: PostgresCdc) -> dict[str, Any]:
    return CdcSuite().catalog(source)


def final_rows(source: PostgresCdc, runs: list[Any]) -> dict[Any, dict[str, Any]]:
    target: dict[Any, Any] = {}
    for run in runs:
        apply_records(target, run.records(PEOPLE), source.position_column)
    return {key: row for key, (_, row) in target.items() if row is not None}


def table_rows(source: PostgresCdc) -> dict[Any, dict[str, Any]]:
    return CdcSuite().source_rows(source)


@pytest.mark.parametrize("harness", [PostgresCdc, PostgresCdcNewSlot], ids=["user-slot", "new-slot"])
def test_a_transaction_committing_while_the_slot_is_created_is_not_lost(
    harness: type[PostgresCdc], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """CREATE_REPLICATION_SLOT waits for running transactions: one holding an insert is open when
    the read starts and commits while the read waits. The row must be in the snapshot or in the
    changes (a slot made with pg_create_logical_replication_slot and a separate snapshot loses it)."""
    source = harness(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    config = source.cdc_config()
    writer = psycopg.connect(**source.database.connection_params())
    request.addfinalizer(writer.close)
    writer.execute(f"INSERT INTO {source.qualified(PEOPLE)} (id, name, seq) VALUES (9001, 'racing', 0)")
    runs: list[Any] = []
    thread = threading.Thread(target=lambda: runs.append(source.runner().read(config, catalog)))
    thread.start()
    time.sleep(3)  # the read is waiting for the open transaction (new slot) or reading
    writer.commit()
    thread.join(120)
    assert runs, "the read did not end"
    first = runs[0].raise_on_failure()
    second = source.runner().read(config, catalog, [CdcSuite.last_state(first)]).raise_on_failure()
    got = final_rows(source, [first, second])
    assert 9001 in got, "the row committed during the slot's creation was lost"
    assert sorted(got) == sorted(table_rows(source))


def test_new_slot_passes_the_handover_cases(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The exported-snapshot path: snapshot, then changes, then resume, equal to the table."""
    source = PostgresCdcNewSlot(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    assert source.slot_row() is None
    catalog = people_catalog(source)
    config = source.cdc_config(checkpoint_records=3)
    first = source.runner().read(config, catalog).raise_on_failure()
    assert source.slot_row() is not None, "the first read creates the slot"
    CdcSuite().change_everything(source, 1000)
    second = source.runner().read(config, catalog, [CdcSuite.last_state(first)]).raise_on_failure()
    got = final_rows(source, [first, second])
    assert got == table_rows(source)


def test_terminated_walsender_mid_read_is_transient_and_resumes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    config = source.cdc_config()
    first = source.runner().read(config, catalog).raise_on_failure()
    state = CdcSuite.last_state(first)
    CdcSuite().change_everything(source, 1000)
    source.execute(  # enough changes that the read is still streaming when its walsender dies
        f"INSERT INTO {source.qualified(PEOPLE)} (id, name, seq) "
        "SELECT i, 'bulk ' || i, 0 FROM generate_series(10000, 209999) AS i"
    )
    runs: list[Any] = []
    thread = threading.Thread(target=lambda: runs.append(source.runner().read(config, catalog, [state])))
    thread.start()
    killed = False
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
        row = (
            source.connect()
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = %s AND active_pid IS NOT NULL",
                (source.slot,),
            )
            .fetchone()
        )
        killed = row is not None and bool(row[0])
    thread.join(300)
    assert killed, "the walsender was never seen active (the read ended first: use more rows)"
    broken = runs[0]
    assert broken.exit_code != 0, "the walsender was terminated but the read succeeded"
    errors = broken.errors()
    assert errors, "a TRACE error must explain the failure"
    assert errors[0]["failure_type"] == "transient_error", errors
    last = broken.states()[-1] if broken.states() else state
    resumed = source.runner().read(config, catalog, [last])
    resumed.raise_on_failure()
    # exactly from the last good state: nothing it covers comes again (positions are exclusive)
    position = last["global"]["shared_state"]["position"]["lsn"]
    assert min(r["_ab_cdc_lsn"] for r in resumed.records(PEOPLE)) >= position
    ahead = [m for m in broken.messages if m["type"] in ("RECORD", "STATE")]
    after_last = (
        ahead[max(i for i, m in enumerate(ahead) if m["type"] == "STATE") + 1 :] if broken.states() else ahead
    )
    assert all(m["record"]["data"]["_ab_cdc_lsn"] >= position for m in after_last)
    got = final_rows(source, [first, broken, resumed])
    assert got == table_rows(source)


def test_a_dropped_slot_is_a_config_error_then_a_resync(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    state = CdcSuite.last_state(source.runner().read(source.cdc_config(), catalog).raise_on_failure())
    source.lose_log()
    failed = source.runner().read(source.cdc_config(), catalog, [state])
    assert failed.exit_code != 0
    (error, *_) = failed.errors()
    assert error["failure_type"] == "config_error"
    assert "does not exist" in error["message"]
    assert source.slot in error["message"]
    assert failed.records(PEOPLE) == []


def test_idle_syncs_confirm_only_acknowledged_positions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each idle sync moves the position to the WAL end it read up to (so WAL is not held); the
    slot confirms a position only once a later read starts from a state carrying it."""
    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    config = source.cdc_config()
    state = CdcSuite.last_state(source.runner().read(config, catalog).raise_on_failure())
    positions = [state["global"]["shared_state"]["position"]["lsn"]]
    for _ in range(3):
        # WAL written elsewhere (another table, not in the publication) while we are idle
        source.execute(f"CREATE TABLE IF NOT EXISTS {source.qualified('other')} (a int)")
        source.execute(f"INSERT INTO {source.qualified('other')} SELECT generate_series(1, 1000)")
        before = source.acknowledged()
        idle = source.runner().read(config, catalog, [state]).raise_on_failure()
        assert idle.records(PEOPLE) == []
        assert source.acknowledged() == state["global"]["shared_state"]["position"], (
            f"confirmed {source.acknowledged()} (was {before}), expected the start state's position"
        )
        state = CdcSuite.last_state(idle)
        positions.append(state["global"]["shared_state"]["position"]["lsn"])
    assert positions == sorted(positions), f"a position moved backwards: {positions}"
    assert positions[-1] > positions[0], (
        f"an idle read must move the position past WAL it does not need: {positions}"
    )


def test_postgres_rules_are_config_errors_before_reading(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    source.execute(f"ALTER PUBLICATION {source.publication} DROP TABLE {source.qualified(PEOPLE)}")
    source.execute(f"CREATE TABLE {source.qualified('x')} (a int)")
    source.execute(f"ALTER PUBLICATION {source.publication} ADD TABLE {source.qualified('x')}")
    failed = source.runner().read(source.cdc_config(), catalog)
    (error, *_) = failed.errors()
    assert error["failure_type"] == "config_error"
    assert "not in publication" in error["message"]
    assert "ALTER PUBLICATION" in error["message"]
    gone = source.cdc_config(
        replication_method={**source.cdc_config()["replication_method"], "publication": "nope"}
    )
    (error, *_) = source.runner().read(gone, catalog).errors()
    assert error["failure_type"] == "config_error"
    assert "CREATE PUBLICATION" in error["message"]


def test_a_connection_moves_from_airbytes_cdc_state_without_a_resync(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A GLOBAL state as Airbyte's source-postgres writes it (Debezium offset in shared_state,
    finished streams as cursor-shaped states) resumes from the offset's commit LSN: no snapshot
    record, every later change read, the table equal to the source's."""
    import orjson

    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    catalog = people_catalog(source)
    config = source.cdc_config()
    first = source.runner().read(config, catalog).raise_on_failure()
    ours = CdcSuite.last_state(first)["global"]
    position = ours["shared_state"]["position"]["lsn"]
    # Airbyte processed the transaction committed just before our position to its end
    offset = {
        "transaction_id": None,
        "lsn_proc": position - 1,
        "lsn_commit": position - 1,
        "lsn": position - 1,
        "txId": 1234,
        "ts_usec": 1_700_000_000_000_000,
    }
    server = source.database.name
    airbyte = {
        "type": "GLOBAL",
        "global": {
            "shared_state": {
                "state": {orjson.dumps([server, {"server": server}]).decode(): orjson.dumps(offset).decode()}
            },
            "stream_states": [
                {
                    "stream_descriptor": s["stream_descriptor"],
                    "stream_state": {
                        "stream_name": s["stream_descriptor"]["name"],
                        "stream_namespace": s["stream_descriptor"].get("namespace"),
                        "cursor_field": [],
                    },
                }
                for s in ours["stream_states"]
            ],
        },
    }
    CdcSuite().change_everything(source, 1000)
    second = source.runner().read(config, catalog, [airbyte]).raise_on_failure()
    records = second.records(PEOPLE)
    assert records, "the changes after Airbyte's offset were not read"
    changed = {1, 2, 3, 4, 1100, *range(1000, 1005)}
    assert {r["id"] for r in records} <= changed, "the stream was snapshotted again"
    assert CdcSuite.last_state(second)["global"]["shared_state"]["position"]["lsn"] >= position
    assert final_rows(source, [first, second]) == table_rows(source)


def test_unchanged_toast_values_under_the_default_identity_are_filled_in(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """REPLICA IDENTITY DEFAULT: an UPDATE that leaves a large value unchanged sends no copy of it.
    The record carries the stored value: from the batch, from the table when nothing wrote it
    since (exact), else the current value or NULL (row gone) with a WARN. Never a placeholder."""
    source = PostgresCdc(request, tmp_path)
    docs = source.qualified("docs")
    big = "(SELECT string_agg(md5(i::text || {}), '') FROM generate_series(1, 300) AS i)"
    source.execute(f"CREATE TABLE {docs} (id int PRIMARY KEY, doc text, n int)")
    for i in range(1, 7):
        source.execute(f"INSERT INTO {docs} VALUES ({i}, {big.format(i)}, 0)")
    source.capture("docs")
    source.execute(f"ALTER TABLE {docs} REPLICA IDENTITY DEFAULT")
    stored = dict(source.connect().execute(f"SELECT id, doc FROM {docs}").fetchall())
    assert all(len(v) == 9600 for v in stored.values())
    catalog = CdcSuite().catalog(source, "docs")
    config = source.cdc_config()
    first = source.runner().read(config, catalog).raise_on_failure()
    assert {r["id"]: r["doc"] for r in first.records("docs")} == stored
    changed = "(SELECT string_agg(md5(i::text || 'new'), '') FROM generate_series(1, 300) AS i)"
    for statement in (  # a transaction each
        f"UPDATE {docs} SET n = 1 WHERE id = 1",  # nothing since: exact from the table
        f"UPDATE {docs} SET n = 1 WHERE id = 2",
        f"UPDATE {docs} SET n = 2 WHERE id = 2",  # the last change to it: both exact
        f"INSERT INTO {docs} VALUES (7, {big.format(7)}, 0)",
        f"UPDATE {docs} SET n = 1 WHERE id = 7",  # the insert carried it: exact from the batch
        f"UPDATE {docs} SET n = 1 WHERE id = 4",
        f"UPDATE {docs} SET doc = {changed} WHERE id = 4",  # written after: the current value
        f"UPDATE {docs} SET n = 1 WHERE id = 5",
        f"DELETE FROM {docs} WHERE id = 5",  # gone: NULL with a meta change
    ):
        source.execute(statement)
    now = dict(source.connect().execute(f"SELECT id, doc FROM {docs}").fetchall())
    second = source.runner().read(config, catalog, [CdcSuite.last_state(first)]).raise_on_failure()
    records = second.records("docs")
    updates = [(r["id"], r["n"], r["doc"]) for r in records if r["_ab_cdc_deleted_at"] is None]
    assert updates == [
        (1, 1, stored[1]),
        (2, 1, stored[2]),
        (2, 2, stored[2]),
        (7, 0, now[7]),
        (7, 1, now[7]),
        (4, 1, now[4]),
        (4, 1, now[4]),
        (5, 1, None),
    ]
    assert now[4] != stored[4]
    metas = [m.get("meta", {}).get("changes", []) for m in second.record_messages("docs")]
    assert [c for cs in metas for c in cs] == [
        {"field": "doc", "change": "NULLED", "reason": "SOURCE_RETRIEVAL_ERROR"}
    ]
    warnings = [line for line in second.logs() if "TOASTed value unchanged" in line]
    assert len(warnings) == 1, second.logs()
    assert "1 carry the row's current value, 1 NULL" in warnings[0]
    assert "REPLICA IDENTITY FULL" in warnings[0]
    assert not any("unavailable" in str(r) for r in records)
    target: dict[Any, Any] = {}
    apply_records(target, first.records("docs"), source.position_column)
    apply_records(target, records, source.position_column)
    assert {k: row["doc"] for k, (_, row) in target.items() if row is not None} == now
