"""The CDC acceptance suite: what every change data capture source must pass.

Use it like the source suite, with a harness that also knows how to capture a table's changes::

    class TestMyCdc(CdcSuite):
        harness = MyCdcHarness   # a CdcHarness

Every scenario ends by applying all records the reads emitted as a dedup destination would
(per key the record with the highest position column wins, ties to the later one; a record with
``_ab_cdc_deleted_at`` removes the row) and comparing the result with the source table, row for
row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit.entrypoint import launch
from dbkit.protocol.jsonio import loads_exact
from dbkit.protocol.messages import dumps_exact
from dbkit.source.cdc.read import CdcRead
from dbkit.testing.runner import RunResult, configured_catalog
from dbkit.testing.suites.harness import SourceHarness
from dbkit.testing.suites.harnesses import installed_connector
from dbkit.testing.suites.source import PEOPLE, json_equal, people_rows, people_table

DELETED_AT = "_ab_cdc_deleted_at"
UPDATED_AT = "_ab_cdc_updated_at"


class CdcHarness(SourceHarness):
    """What the CDC suite needs beyond a source harness."""

    position_column: ClassVar[str] = "_ab_cdc_cursor"
    """The connector's position column (``_ab_cdc_lsn`` for PostgreSQL)."""

    def cdc_config(self, **overrides: Any) -> dict[str, Any]:
        """The connector's config reading with CDC (``replication_method: {method: CDC, ...}``)."""
        raise NotImplementedError

    def capture(self, *tables: str) -> None:
        """Make the changes of ``tables`` reach the connector's change log (a publication, triggers)."""
        raise NotImplementedError

    def acknowledged(self) -> Mapping[str, Any] | None:
        """The position the database was last told it may discard the log up to, in the form
        the GLOBAL state's ``shared_state.position`` holds it (None: never acknowledged)."""
        raise NotImplementedError

    def lose_log(self) -> None:
        """Make every saved position unreadable (purge the log, drop the slot)."""
        raise NotImplementedError

    def truncate(self, table: str) -> list[str]:
        """SQL emptying ``table`` row by row (each delete logged as a change)."""
        return [f"DELETE FROM {self.qualified(table)}"]

    def truncate_table(self, table: str) -> None:
        """Empty ``table`` with a real TRUNCATE, logged as one truncate event (not row deletes)."""
        self.execute(f"TRUNCATE TABLE {self.qualified(table)}")

    def qualified(self, table: str) -> str:
        q = self.engine.dialect.identifier_preparer
        return q.quote(table) if self.namespace is None else f"{q.quote(self.namespace)}.{q.quote(table)}"


def apply_records(
    target: dict[Any, tuple[Any, dict[str, Any] | None]], records: Iterable[Mapping[str, Any]], position: str
) -> None:
    """Apply records to ``target`` (key -> (position value, row or None when deleted)) as a dedup
    destination does: a record wins over what is stored when its position is at least as high."""
    for record in records:
        key = record["id"]
        value = record[position]
        assert isinstance(value, int), f"{position} is not an integer"
        assert not isinstance(value, bool), f"{position} is not an integer"
        stored = target.get(key)
        if stored is not None and value < stored[0]:
            continue
        row = (
            None
            if record.get(DELETED_AT)
            else {k: v for k, v in record.items() if not k.startswith("_ab_cdc_")}
        )
        target[key] = (value, row)


def rows_of(target: Mapping[Any, tuple[Any, dict[str, Any] | None]]) -> dict[Any, dict[str, Any]]:
    return {k: row for k, (_, row) in target.items() if row is not None}


class CdcSuite:
    """Subclass as ``Test...`` with ``harness`` set to a :class:`CdcHarness` subclass."""

    harness: ClassVar[type[CdcHarness]]

    @pytest.fixture
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> CdcHarness:
        return self.harness(request, tmp_path)

    @pytest.fixture
    def people(self, source: CdcHarness) -> list[dict[str, Any]]:
        table = people_table()
        table.create(source)
        source.capture(PEOPLE)
        return table.rows

    # ------------------------------------------------------------------ helpers
    def catalog(self, source: CdcHarness, name: str = PEOPLE) -> dict[str, Any]:
        stream = (
            source.runner().discover(source.cdc_config()).raise_on_failure().stream(name, source.namespace)
        )
        return configured_catalog([stream], sync_mode="incremental", destination_sync_mode="append_dedup")

    def table(self, source: CdcHarness) -> sa.TableClause:
        return sa.table(
            PEOPLE,
            sa.column("id"),
            sa.column("name"),
            sa.column("seq"),
            sa.column("note"),
            schema=source.namespace,
        )

    def source_rows(self, source: CdcHarness) -> dict[Any, dict[str, Any]]:
        with source.engine.connect() as conn:
            return {row.id: dict(row._mapping) for row in conn.execute(sa.select(self.table(source)))}

    def assert_equal(
        self, source: CdcHarness, target: Mapping[Any, tuple[Any, dict[str, Any] | None]]
    ) -> None:
        got = rows_of(target)
        want = self.source_rows(source)
        assert sorted(got) == sorted(want), (
            f"missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}"
        )
        for key, row in want.items():
            assert json_equal(got[key], row), f"row {key}: got {got[key]!r}, expected {row!r}"

    @staticmethod
    def last_state(result: RunResult) -> dict[str, Any]:
        states = result.states()
        assert states, "a read must end with a STATE"
        assert all(s["type"] == "GLOBAL" for s in states), "a CDC read emits GLOBAL states only"
        return states[-1]

    def change_everything(self, source: CdcHarness, base: int) -> None:
        """Inserts, updates (one of them of the key), deletes and an update back and forth."""
        t = self.table(source)
        source.execute(
            sa.insert(t).values([{**r, "seq": 0} for r in people_rows(base, 5)]),
            sa.update(t).where(t.c.id == 1).values(name=f"changed {base}"),
            sa.update(t).where(t.c.id == 2).values(id=base + 100),
            sa.delete(t).where(t.c.id.in_([3, base + 1])),
            sa.update(t).where(t.c.id == 4).values(note="first"),
            sa.update(t).where(t.c.id == 4).values(note=None),
        )

    # ------------------------------------------------------------------ discover
    def test_discover_declares_cdc_streams(self, source: CdcHarness, people: list[dict[str, Any]]) -> None:
        source.execute(f"CREATE TABLE {source.qualified('dbkit_keyless')} (a INTEGER)")
        result = source.runner().discover(source.cdc_config()).raise_on_failure()
        stream = result.stream(PEOPLE, source.namespace)
        assert stream["source_defined_cursor"] is True
        assert stream["default_cursor_field"] == [source.position_column]
        assert stream["source_defined_primary_key"] == [["id"]]
        assert sorted(stream["supported_sync_modes"]) == ["full_refresh", "incremental"]
        props = stream["json_schema"]["properties"]
        for column in (source.position_column, UPDATED_AT, DELETED_AT):
            assert column in props, f"meta column {column} missing from the schema"
        keyless = result.stream("dbkit_keyless", source.namespace)
        assert keyless["supported_sync_modes"] == ["full_refresh"]

    # ------------------------------------------------------------------ reads
    def test_snapshot_then_changes_equal_the_table(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=7)
        target: dict[Any, Any] = {}
        first = source.runner().read(config, catalog).raise_on_failure()
        records = first.records(PEOPLE)
        assert len(records) == len(people)
        assert all(r[DELETED_AT] is None and r[UPDATED_AT] for r in records)
        apply_records(target, records, source.position_column)
        self.assert_equal(source, target)
        state = self.last_state(first)
        for round_ in range(2):
            self.change_everything(source, 1000 * (round_ + 1))
            later = source.runner().read(config, catalog, [state]).raise_on_failure()
            changed = later.records(PEOPLE)
            assert changed, "the changes were not read"
            assert len(changed) < len(people), "a change read must not read the table again"
            assert any(r[DELETED_AT] for r in changed), "deletes must be records with _ab_cdc_deleted_at"
            apply_records(target, changed, source.position_column)
            self.assert_equal(source, target)
            state = self.last_state(later)
            assert later.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
        source.execute(*source.truncate(PEOPLE))
        emptied = source.runner().read(config, catalog, [state]).raise_on_failure()
        apply_records(target, emptied.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)

    def test_truncate_stops_the_read_until_the_stream_is_refreshed(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=3)
        target: dict[Any, Any] = {}
        first = source.runner().read(config, catalog).raise_on_failure()
        apply_records(target, first.records(PEOPLE), source.position_column)
        t = self.table(source)
        source.execute(sa.update(t).where(t.c.id == 1).values(name="before the truncate"))
        source.truncate_table(PEOPLE)
        source.execute(sa.insert(t).values([{**r, "seq": 1} for r in people_rows(5000, 3)]))

        stopped = source.runner().read(config, catalog, [self.last_state(first)])
        assert stopped.exit_code != 0, "a truncate must not end in a successful read"
        errors = stopped.errors()
        assert errors, "a TRACE error must explain the stop"
        assert errors[0]["failure_type"] == "config_error", errors
        message = errors[0]["message"].lower()
        for part in (PEOPLE, "truncat", "refresh"):
            assert part in message, f"the error must name {part!r}: {message}"
        names = [r["name"] for r in stopped.records(PEOPLE)]
        assert "before the truncate" in names, "the changes before the truncate must be emitted"
        assert not any(r["id"] >= 5000 for r in stopped.records(PEOPLE)), "read past the truncate"
        saved = self.last_state(stopped)
        assert saved["global"]["shared_state"] != self.last_state(first)["global"]["shared_state"], (
            "the changes before the truncate must be checkpointed"
        )
        again = source.runner().read(config, catalog, [saved])
        assert again.exit_code != 0, "the truncate must stop every read until the stream is refreshed"
        assert again.errors()[0]["failure_type"] == "config_error"

        # the refresh: the stream's part of the GLOBAL state is dropped, the shared part kept;
        # the destination replaces the stream's rows (a new generation)
        refreshed = {
            "type": "GLOBAL",
            "global": {**saved["global"], "stream_states": []},
        }
        snapshot = source.runner().read(config, catalog, [refreshed]).raise_on_failure()
        target = {}
        apply_records(target, snapshot.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)
        # every STATE of that read (during its snapshot, before its changes passed the truncate)
        # resumes past the truncate: the stream's snapshot label is after it
        for state in snapshot.states():
            resumed = source.runner().read(config, catalog, [state]).raise_on_failure()
            again_target = dict(target)
            apply_records(again_target, resumed.records(PEOPLE), source.position_column)
            self.assert_equal(source, again_target)
        source.execute(sa.update(t).where(t.c.id == 5001).values(name="after the refresh"))
        later = source.runner().read(config, catalog, [self.last_state(snapshot)]).raise_on_failure()
        apply_records(target, later.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)

    def read_in_process(
        self,
        source: CdcHarness,
        config: Mapping[str, Any],
        catalog: Mapping[str, Any],
        state: Sequence[Mapping[str, Any]],
        during: Callable[[], None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> list[dict[str, Any]]:
        """A read run in this process, calling ``during`` once its upper bound is fixed, just
        before it reads the change log; its messages."""
        original = CdcRead._changes

        def changes(read: CdcRead, states: Any, upper: Any, tables: Any) -> None:
            during()
            original(read, states, upper, tables)

        monkeypatch.setattr(CdcRead, "_changes", changes)
        connector = installed_connector(str(source.command))()
        files = source.tmp_path / f"in-process-{len(list(source.tmp_path.glob('in-process-*')))}"
        files.mkdir()
        paths = {}
        for name, doc in (("config", config), ("catalog", catalog), ("state", list(state))):
            paths[name] = files / f"{name}.json"
            paths[name].write_bytes(dumps_exact(doc))
        out = files / "out.jsonl"
        argv = ["read", *(x for name, path in paths.items() for x in (f"--{name}", str(path)))]
        with out.open("wb") as stdout, open(os.devnull, "rb") as stdin:
            code = launch(connector, argv, stdin=stdin, stdout=stdout)
        monkeypatch.setattr(CdcRead, "_changes", original)
        messages = [loads_exact(line) for line in out.read_bytes().splitlines() if line.strip()]
        assert code == 0, [m for m in messages if m["type"] == "TRACE"]
        return messages

    def test_changes_during_a_read_wait_for_the_next(
        self, source: CdcHarness, people: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config()
        target: dict[Any, Any] = {}
        first = source.runner().read(config, catalog).raise_on_failure()
        apply_records(target, first.records(PEOPLE), source.position_column)
        self.change_everything(source, 1000)
        t = self.table(source)

        def write() -> None:
            source.execute(
                sa.insert(t).values({"id": 7777, "name": "during", "seq": 0, "note": None}),
                sa.update(t).where(t.c.id == 1).values(name="during the read"),
            )

        messages = self.read_in_process(source, config, catalog, [self.last_state(first)], write, monkeypatch)
        records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
        assert records, "the changes before the read must be read"
        assert not any(r["id"] == 7777 for r in records), "a change after the upper bound was read"
        assert not any(r["name"] == "during the read" for r in records), "read past the upper bound"
        apply_records(target, records, source.position_column)
        state = [m["state"] for m in messages if m["type"] == "STATE"][-1]
        later = source.runner().read(config, catalog, [state]).raise_on_failure()
        names = {r["id"]: r["name"] for r in later.records(PEOPLE)}
        assert names.get(7777) == "during", "the next read must read what the bound left out"
        assert names.get(1) == "during the read"
        apply_records(target, later.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)

    @pytest.mark.parametrize("phase", ["snapshot", "changes"])
    def test_a_read_killed_mid_way_resumes_from_its_last_state(
        self, source: CdcHarness, people: list[dict[str, Any]], phase: str
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=3)
        target: dict[Any, Any] = {}
        start: list[dict[str, Any]] = []
        if phase == "changes":
            first = source.runner().read(config, catalog).raise_on_failure()
            apply_records(target, first.records(PEOPLE), source.position_column)
            start = [self.last_state(first)]
            for round_ in range(3):
                self.change_everything(source, 1000 * (round_ + 1))
        killed = source.runner().read(config, catalog, start or None, kill_after_records=7)
        assert killed.killed, f"the {phase} ended before its 7th record; use a larger table"
        # a destination keeps the records up to the last STATE it echoed, and that state (the
        # one the read started from when it echoed none) is what the next read gets
        positions = [i for i, m in enumerate(killed.messages) if m["type"] == "STATE"]
        last = positions[-1] if positions else 0
        kept = [m["record"]["data"] for m in killed.messages[:last] if m["type"] == "RECORD"]
        apply_records(target, kept, source.position_column)
        echoed = killed.states()[-1:] or start
        self.change_everything(source, 9000)
        resumed = source.runner().read(config, catalog, echoed or None).raise_on_failure()
        apply_records(target, resumed.records(PEOPLE), source.position_column)
        final = source.runner().read(config, catalog, [self.last_state(resumed)]).raise_on_failure()
        apply_records(target, final.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)

    def test_resume_from_every_state_loses_nothing(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        """A read resumed from any state it emitted (the snapshot's, then the log's) loses nothing.

        The resumes run in the order a destination could ask for them: every state of a read
        before the next read starts from its last one. Resuming from a state older than one a
        later read acknowledged is the "changes are gone" case (see
        ``test_a_lost_position_is_a_config_error_or_a_resync``), not a resume."""
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=3)

        def resume_from_each_state(
            start: dict[str, Any] | None, run: RunResult, base: RunResult | None
        ) -> None:
            emitted: list[dict[str, Any]] = []
            states = 0
            for message in run.messages:
                if message["type"] == "RECORD":
                    emitted.append(message["record"]["data"])
                elif message["type"] == "STATE":
                    states += 1
                    target: dict[Any, Any] = {}
                    if base is not None:
                        apply_records(target, base.records(PEOPLE), source.position_column)
                    apply_records(target, emitted, source.position_column)
                    resumed = source.runner().read(config, catalog, [message["state"]]).raise_on_failure()
                    apply_records(target, resumed.records(PEOPLE), source.position_column)
                    self.assert_equal(source, target)
            assert states >= 2, f"expected several checkpoints in the read from {start}"

        t = self.table(source)
        # changes logged before the first read (after a slot made in advance): its snapshot's
        # states are then older than its last one
        source.execute(
            sa.update(t).where(t.c.id == 0).values(seq=7), sa.update(t).where(t.c.id == 0).values(seq=0)
        )
        first = source.runner().read(config, catalog).raise_on_failure()
        resume_from_each_state(None, first, None)
        self.change_everything(source, 1000)
        second = source.runner().read(config, catalog, [self.last_state(first)]).raise_on_failure()
        resume_from_each_state(self.last_state(first), second, first)

    def test_changes_during_a_killed_snapshot_are_not_lost(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=2)
        killed = source.runner().read(config, catalog, kill_after_states=3)
        assert killed.killed, "the snapshot ended before its third state; use a larger table"
        target: dict[Any, Any] = {}
        apply_records(target, killed.records(PEOPLE), source.position_column)
        self.change_everything(source, 1000)
        t = self.table(source)
        source.execute(sa.update(t).where(t.c.id == len(people) - 1).values(name="not yet snapshotted"))
        resumed = source.runner().read(config, catalog, [killed.states()[-1]]).raise_on_failure()
        apply_records(target, resumed.records(PEOPLE), source.position_column)
        final = source.runner().read(config, catalog, [self.last_state(resumed)]).raise_on_failure()
        apply_records(target, final.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)

    def test_idle_source_over_several_syncs(self, source: CdcHarness, people: list[dict[str, Any]]) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config()
        state = self.last_state(source.runner().read(config, catalog).raise_on_failure())
        for _ in range(3):
            idle = source.runner().read(config, catalog, [state]).raise_on_failure()
            assert idle.records(PEOPLE) == []
            assert idle.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
            state = self.last_state(idle)
            assert state["global"]["stream_states"], "the snapshot progress must be kept"

    def test_acknowledges_only_the_state_it_started_from(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source)
        config = source.cdc_config(checkpoint_records=2)
        self.change_everything(source, 500)  # the log has entries: the first position is not its start
        before = source.acknowledged()
        first = source.runner().read(config, catalog).raise_on_failure()
        assert source.acknowledged() == before, "a read without state must acknowledge nothing"
        self.change_everything(source, 1000)
        start = self.last_state(first)
        second = source.runner().read(config, catalog, [start]).raise_on_failure()
        assert source.acknowledged() == start["global"]["shared_state"]["position"]
        assert self.last_state(second) != start, "the read must move the position"
        assert source.acknowledged() == start["global"]["shared_state"]["position"], (
            "a position merely read was acknowledged"
        )

    def test_a_lost_position_is_a_config_error_or_a_resync(
        self, source: CdcHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source)
        state = self.last_state(source.runner().read(source.cdc_config(), catalog).raise_on_failure())
        self.change_everything(source, 1000)
        source.lose_log()
        failed = source.runner().read(source.cdc_config(), catalog, [state])
        assert failed.exit_code != 0
        errors = failed.errors()
        assert errors, "a TRACE error must explain the failure"
        assert errors[0]["failure_type"] == "config_error", errors
        assert "reset" in errors[0]["message"].lower() or "re-sync" in errors[0]["message"].lower()
        assert failed.records(PEOPLE) == [], "no record may come from a position that cannot be read"
        resync = source.cdc_config(
            replication_method={
                **source.cdc_config()["replication_method"],
                "invalid_cdc_cursor_position_behavior": "Re-sync data",
            }
        )
        again = source.runner().read(resync, catalog, [state]).raise_on_failure()
        target: dict[Any, Any] = {}
        apply_records(target, again.records(PEOPLE), source.position_column)
        self.assert_equal(source, target)
