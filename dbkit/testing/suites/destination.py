"""The destination acceptance suite: one class, every test a SQL destination must pass.

Use it in one line per connector::

    class TestMyDestination(DestinationSuite):
        harness = MyDestinationHarness

Each test feeds Airbyte messages to the connector's ``write`` (a subprocess, as a platform
runs it) over one or more syncs and compares the final tables with exact expected rows. Table
and column names are taken from the connector's own naming rules, so the suite also holds for
databases that fold case or cut long names. Capabilities (``dialect_class.capabilities``) decide
which cases apply — never the database's name.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit.db.types import AirbyteType, json_schema_for
from dbkit.protocol import parse_configured_catalog
from dbkit.protocol.messages import dumps_exact
from dbkit.testing.runner import RunResult, configured_catalog, to_line
from dbkit.testing.suites.harness import DestinationHarness, check_refuses_nul_in_every_string

ITEMS = "dbkit_items"
BASE_MS = 1_700_000_000_000

ITEM_SCHEMA: dict[str, dict[str, Any]] = {
    "id": json_schema_for(AirbyteType.INTEGER),
    "name": json_schema_for(AirbyteType.STRING),
    "amount": json_schema_for(AirbyteType.NUMBER),
    "updated_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
}


# ------------------------------------------------------------------------- message builders


def stream(
    name: str, properties: Mapping[str, Any], namespace: str | None = None, pk: Sequence[str] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "json_schema": {"type": "object", "properties": dict(properties)},
        "supported_sync_modes": ["full_refresh", "incremental"],
    }
    if namespace is not None:
        body["namespace"] = namespace
    if pk:
        body["source_defined_primary_key"] = [[k] for k in pk]
    return body


def record(
    name: str, data: Mapping[str, Any], at: int = BASE_MS, namespace: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"stream": name, "data": dict(data), "emitted_at": at}
    if namespace is not None:
        body["namespace"] = namespace
    return {"type": "RECORD", "record": body}


def state(name: str, blob: Mapping[str, Any], count: int, namespace: str | None = None) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": name}
    if namespace is not None:
        descriptor["namespace"] = namespace
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": descriptor, "stream_state": dict(blob)},
            "sourceStats": {"recordCount": float(count)},
        },
    }


def status(name: str, value: str = "COMPLETE", namespace: str | None = None) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": name}
    if namespace is not None:
        descriptor["namespace"] = namespace
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": float(BASE_MS),
            "stream_status": {"stream_descriptor": descriptor, "status": value},
        },
    }


def sync_messages(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    at: int = BASE_MS,
    complete: bool = True,
    namespace: str | None = None,
) -> list[dict[str, Any]]:
    """Records of one stream, a state after every 2 records and at the end, then COMPLETE."""
    out: list[dict[str, Any]] = []
    pending = 0
    for i, row in enumerate(rows):
        out.append(record(name, row, at + i, namespace))
        pending += 1
        if pending == 2:
            out.append(state(name, {"upto": i}, pending, namespace))
            pending = 0
    out.append(state(name, {"upto": len(rows)}, pending, namespace))
    if complete:
        out.append(status(name, "COMPLETE", namespace))
    return out


def concurrent_writes(
    dest: DestinationHarness,
    catalog: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    inputs: Sequence[Sequence[Mapping[str, Any]]],
    **config: Any,
) -> list[RunResult]:
    """Run one ``write`` process per input at the same time (started together), each with the
    same config and ``catalog`` (or each with its own, when ``catalog`` is a list of them), and
    return their results in the order of ``inputs``."""
    runner = dest.runner()
    settings = dest.config(**config)
    catalogs = [catalog] * len(inputs) if isinstance(catalog, Mapping) else list(catalog)
    start = threading.Barrier(len(inputs))
    results: list[RunResult | BaseException | None] = [None] * len(inputs)

    def run(index: int) -> None:
        try:
            start.wait(timeout=60)
            results[index] = runner.write(settings, catalogs[index], inputs[index])
        except BaseException as exc:  # reported below, on the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out: list[RunResult] = []
    for result in results:
        if not isinstance(result, RunResult):
            raise AssertionError(f"a concurrent write did not run: {result!r}")
        out.append(result)
    return out


def deleted(i: int, day: int) -> dict[str, Any]:
    """A CDC deletion of row ``i`` whose cursor is ``day``."""
    return {**item(i, f"gone{i}", day), "_ab_cdc_deleted_at": ts(day)}


def ts(day: int, hour: int = 0) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:00:00.000000+00:00"


def item(i: int, name: str, day: int, amount: str = "1.50", hour: int = 0) -> dict[str, Any]:
    return {"id": i, "name": name, "amount": Decimal(amount), "updated_at": ts(day, hour)}


# ------------------------------------------------------------------------- value comparison


def normalize(value: Any, airbyte_type: AirbyteType) -> Any:
    """A stored value in a comparable form, whatever the driver returned."""
    if value is None:
        return None
    if airbyte_type is AirbyteType.INTEGER:
        return int(value)
    if airbyte_type is AirbyteType.NUMBER:
        return Decimal(str(value))
    if airbyte_type is AirbyteType.BOOLEAN:
        return bool(value)
    if airbyte_type in (AirbyteType.TIMESTAMP_WITH_TIMEZONE, AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE):
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value
    if airbyte_type is AirbyteType.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if airbyte_type in (AirbyteType.OBJECT, AirbyteType.ARRAY, AirbyteType.UNKNOWN):
        if isinstance(value, str | bytes):
            return json.loads(value, parse_float=Decimal)
        return value
    return value


class DestinationSuite:
    """Subclass as ``Test...`` with ``harness`` set to a :class:`DestinationHarness` subclass."""

    harness: ClassVar[type[DestinationHarness]]

    @pytest.fixture
    def dest(self, request: pytest.FixtureRequest, tmp_path: Path) -> DestinationHarness:
        return self.harness(request, tmp_path)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def catalog(
        streams: Iterable[dict[str, Any]],
        mode: str,
        *,
        generation: int = 1,
        sync_id: int = 1,
        cursor: str | None = "updated_at",
        pk: Sequence[str] | None = ("id",),
        minimum_generation: int | None = None,
    ) -> dict[str, Any]:
        replace = mode == "overwrite"
        return configured_catalog(
            list(streams),
            sync_mode="incremental" if cursor else "full_refresh",
            destination_sync_mode=mode,
            cursor_field=[cursor] if cursor else None,
            primary_key=[[k] for k in pk] if pk else None,
            generation_id=generation,
            minimum_generation_id=minimum_generation
            if minimum_generation is not None
            else (generation if replace else 0),
            sync_id=sync_id,
        )

    @staticmethod
    def write(
        dest: DestinationHarness,
        catalog: Mapping[str, Any],
        messages: Sequence[Mapping[str, Any]],
        **config: Any,
    ) -> RunResult:
        return dest.runner().write(dest.config(**config), catalog, messages)

    @staticmethod
    def plan(dest: DestinationHarness, catalog: Mapping[str, Any]) -> dict[Any, Any]:
        from dbkit.config import load_config
        from dbkit.destination.schema import plan_tables

        connector = dest.connector_class
        dialect = connector.dialect_class(load_config(connector.config_model, dest.config()))
        return plan_tables(dialect, parse_configured_catalog(catalog))

    def table(
        self,
        dest: DestinationHarness,
        catalog: Mapping[str, Any],
        name: str = ITEMS,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """The final table of a stream, data columns keyed by FIELD name, normalized; plus metadata."""
        plans = self.plan(dest, catalog)
        (plan,) = [p for d, p in plans.items() if d.name == name and d.namespace == namespace]
        rows = dest.read_table(plan.name, plan.namespace)
        out = []
        for row in rows:
            data = {c.field: normalize(row.get(c.name), c.airbyte_type) for c in plan.columns}
            meta = row["_airbyte_meta"]
            data["_meta"] = json.loads(meta) if isinstance(meta, str | bytes) else meta
            data["_generation"] = row["_airbyte_generation_id"]
            data["_raw_id"] = row["_airbyte_raw_id"]
            data["_extracted_at"] = normalize(
                row["_airbyte_extracted_at"], AirbyteType.TIMESTAMP_WITH_TIMEZONE
            )
            out.append(data)
        return out

    @staticmethod
    def data_of(
        rows: Sequence[Mapping[str, Any]], fields: Sequence[str] = ("id", "name", "amount", "updated_at")
    ) -> list[tuple[Any, ...]]:
        return sorted((tuple(r[f] for f in fields) for r in rows), key=lambda t: repr(t[0]))

    @staticmethod
    def expected(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        types = [
            AirbyteType.INTEGER,
            AirbyteType.STRING,
            AirbyteType.NUMBER,
            AirbyteType.TIMESTAMP_WITH_TIMEZONE,
        ]
        fields = ["id", "name", "amount", "updated_at"]
        return sorted(
            (tuple(normalize(r.get(f), t) for f, t in zip(fields, types, strict=True)) for r in rows),
            key=lambda t: repr(t[0]),
        )

    @staticmethod
    def echoed(result: RunResult) -> list[dict[str, Any]]:
        return result.states()

    # ------------------------------------------------------------------ spec / check
    def test_spec_and_check(self, dest: DestinationHarness) -> None:
        spec = dest.runner().spec().raise_on_failure().spec
        assert set(spec.get("supported_destination_sync_modes", [])) >= {
            "append",
            "overwrite",
            "append_dedup",
        }
        status_ = dest.runner().check(dest.config()).raise_on_failure().connection_status
        assert status_["status"] == "SUCCEEDED", status_

    def test_a_nul_in_any_config_string_is_refused(self, dest: DestinationHarness) -> None:
        tried = check_refuses_nul_in_every_string(dest.runner(), dest.config())
        assert tried, "the harness config has no string field to try"

    # ------------------------------------------------------------------ modes
    def test_append_over_two_syncs(self, dest: DestinationHarness) -> None:
        first = [item(1, "a", 1), item(2, "b", 1), item(3, "c", 2)]
        second = [item(2, "b2", 3), item(4, "d", 3)]
        cat1 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append", sync_id=1)
        self.write(dest, cat1, sync_messages(ITEMS, first)).raise_on_failure()
        cat2 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append", sync_id=2)
        result = self.write(dest, cat2, sync_messages(ITEMS, second, at=BASE_MS + 1000)).raise_on_failure()
        rows = self.table(dest, cat2)
        assert self.data_of(rows) == self.expected(first + second)
        assert sorted(r["_meta"]["sync_id"] for r in rows) == [1, 1, 1, 2, 2]
        assert all(r["_meta"]["changes"] == [] for r in rows)
        assert len({str(r["_raw_id"]) for r in rows}) == 5, "every row needs its own _airbyte_raw_id"
        uuid.UUID(str(rows[0]["_raw_id"]))
        assert {r["_generation"] for r in rows} == {1}
        counts = [s["destinationStats"]["recordCount"] for s in self.echoed(result)]
        assert counts == [2.0, 0.0], "destinationStats.recordCount: records since the stream's previous state"

    def test_overwrite_over_two_syncs(self, dest: DestinationHarness) -> None:
        first = [item(1, "a", 1), item(2, "b", 1)]
        second = [item(7, "x", 5), item(8, "y", 5), item(9, "z", 6)]
        self.write(
            dest,
            self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=1),
            sync_messages(ITEMS, first),
        ).raise_on_failure()
        cat2 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
        self.write(dest, cat2, sync_messages(ITEMS, second)).raise_on_failure()
        rows = self.table(dest, cat2)
        assert self.data_of(rows) == self.expected(second)
        assert {r["_generation"] for r in rows} == {2}

    def test_interrupted_overwrite_keeps_the_previous_table(self, dest: DestinationHarness) -> None:
        first = [item(1, "a", 1), item(2, "b", 1)]
        second = [item(7, "x", 5), item(8, "y", 5), item(9, "z", 6), item(10, "w", 6)]
        self.write(
            dest,
            self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=1),
            sync_messages(ITEMS, first),
        ).raise_on_failure()
        cat2 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=2, sync_id=2)
        broken = self.write(dest, cat2, sync_messages(ITEMS, second[:2], complete=False))
        assert broken.exit_code != 0, "an input without COMPLETE must not end as a success"
        assert self.data_of(self.table(dest, cat2)) == self.expected(first), "the previous table must stay"
        # the next attempt of the same generation resumes: only the rest is sent
        self.write(dest, cat2, sync_messages(ITEMS, second[2:])).raise_on_failure()
        assert self.data_of(self.table(dest, cat2)) == self.expected(second)
        # a new generation never keeps rows of an abandoned one
        cat3 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=3, sync_id=3)
        self.write(dest, cat3, sync_messages(ITEMS, first[:1], complete=False))
        cat4 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=4, sync_id=4)
        self.write(dest, cat4, sync_messages(ITEMS, first[1:])).raise_on_failure()
        assert self.data_of(self.table(dest, cat4)) == self.expected(first[1:])

    def test_dedup_over_two_syncs(self, dest: DestinationHarness) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], "append_dedup")
        self.write(
            dest, cat, sync_messages(ITEMS, [item(1, "a", 1), item(2, "b", 2), item(3, "c", 3)])
        ).raise_on_failure()
        second = [
            item(2, "b newer", 5),  # newer cursor: wins
            item(3, "c older", 1),  # older cursor: loses
            item(4, "d first", 4),
            item(4, "d second", 4),  # same cursor, later extraction: wins
            item(5, "e", 4, amount="12345678901234567890.123456789"),
        ]
        self.write(dest, cat, sync_messages(ITEMS, second, at=BASE_MS + 1000)).raise_on_failure()
        want = [
            item(1, "a", 1),
            item(2, "b newer", 5),
            item(3, "c", 3),
            item(4, "d second", 4),
            item(5, "e", 4, amount="12345678901234567890.123456789"),
        ]
        rows = self.table(dest, cat)
        assert self.data_of(rows) == self.expected(want)

    def test_dedup_after_an_append_sync_keeps_one_row_per_key(self, dest: DestinationHarness) -> None:
        """An append sync in between leaves a key twice; the next dedup sync that touches the key
        keeps one row, the newest (cursor first), whatever the table held."""
        dedup = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], "append_dedup")
        append = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], "append")
        self.write(dest, dedup, sync_messages(ITEMS, [item(1, "v1", 5)])).raise_on_failure()
        again = sync_messages(ITEMS, [item(1, "older again", 1)], at=BASE_MS + 1000)
        self.write(dest, append, again).raise_on_failure()
        late = sync_messages(ITEMS, [item(1, "late but older", 3)], at=BASE_MS + 2000)
        self.write(dest, dedup, late).raise_on_failure()
        assert self.data_of(self.table(dest, dedup)) == self.expected([item(1, "v1", 5)])

    def test_cdc_deletes_and_out_of_order_changes(self, dest: DestinationHarness) -> None:
        props = {**ITEM_SCHEMA, "_ab_cdc_deleted_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE)}
        changes = [
            deleted(1, 5),  # delete, newer: removes the row
            deleted(2, 1),  # delete older than the stored row: ignored
            deleted(3, 6),
            item(3, "update older than its delete", 4),  # arrives after the delete, older: ignored
            item(4, "update", 7),
            deleted(4, 3),  # delete older than the update just before it: ignored
        ]
        want = [item(2, "v2", 2), item(4, "update", 7), item(5, "v5", 2)]
        # one batch, then one record per batch (a fresh table each): arrival order must not matter
        for batch_records in (1_000, 1):
            name = f"{ITEMS}_{batch_records}"
            cat = self.catalog([stream(name, props, pk=["id"])], "append_dedup")
            first = [item(i, f"v{i}", 2) for i in range(1, 6)]
            self.write(dest, cat, sync_messages(name, first)).raise_on_failure()
            self.write(
                dest, cat, sync_messages(name, changes, at=BASE_MS + 1000), batch_records=batch_records
            ).raise_on_failure()
            assert self.data_of(self.table(dest, cat, name)) == self.expected(want), (
                f"batch_records={batch_records}"
            )

    def test_soft_deletes_hold_against_late_older_updates(self, dest: DestinationHarness) -> None:
        if dest.soft_delete_config is None:
            pytest.skip(f"{type(dest).__name__} has no soft-delete mode")
        props = {**ITEM_SCHEMA, "_ab_cdc_deleted_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE)}
        cat = self.catalog([stream(ITEMS, props, pk=["id"])], "append_dedup")
        soft = dict(dest.soft_delete_config)
        self.write(
            dest, cat, sync_messages(ITEMS, [item(1, "v1", 2), item(2, "v2", 2)]), **soft
        ).raise_on_failure()
        self.write(
            dest, cat, sync_messages(ITEMS, [deleted(1, 5)], at=BASE_MS + 1000), **soft
        ).raise_on_failure()
        late = [item(1, "late update of a deleted row", 4), item(2, "late but newer", 3)]
        self.write(dest, cat, sync_messages(ITEMS, late, at=BASE_MS + 2000), **soft).raise_on_failure()
        rows = {r["id"]: r for r in self.table(dest, cat)}
        assert rows[1]["name"] == "gone1", "a soft-deleted row keeps its newest version: the delete"
        assert rows[1]["_ab_cdc_deleted_at"] is not None
        assert rows[2]["name"] == "late but newer"
        assert rows[2]["_ab_cdc_deleted_at"] is None

    def test_truncate_refresh_and_merge_refresh(self, dest: DestinationHarness) -> None:
        streams = [stream(ITEMS, ITEM_SCHEMA, pk=["id"])]
        self.write(
            dest,
            self.catalog(streams, "append", generation=1, minimum_generation=0),
            sync_messages(ITEMS, [item(1, "a", 1)]),
        ).raise_on_failure()
        merge_cat = self.catalog(streams, "append", generation=2, minimum_generation=0, sync_id=2)
        self.write(dest, merge_cat, sync_messages(ITEMS, [item(2, "b", 2)])).raise_on_failure()
        assert sorted(r["_generation"] for r in self.table(dest, merge_cat)) == [1, 2], "merge refresh keeps"
        truncate_cat = self.catalog(streams, "append", generation=3, minimum_generation=3, sync_id=3)
        self.write(dest, truncate_cat, sync_messages(ITEMS, [item(3, "c", 3)])).raise_on_failure()
        rows = self.table(dest, truncate_cat)
        assert self.data_of(rows) == self.expected([item(3, "c", 3)])
        assert {r["_generation"] for r in rows} == {3}

    # ------------------------------------------------------------------ generation ids
    @pytest.mark.parametrize("mode", ["append", "append_dedup"])
    def test_generation_ids_as_pyairbyte_sends_them(self, dest: DestinationHarness, mode: str) -> None:
        """PyAirbyte sends ``generation_id = minimum_generation_id = sync_id = 1`` on every write
        (incremental reads, append or append_dedup). The first write makes the table at
        generation 1; every later write finds it at that generation, a refresh already done,
        and adds to it: no write loses a row, not even one that brings no record."""
        cat = self.catalog(
            [stream(ITEMS, ITEM_SCHEMA, pk=["id"])], mode, generation=1, minimum_generation=1, sync_id=1
        )
        writes = [
            [item(i, f"v{i}", 1) for i in range(1, 6)],
            [item(2, "v2 newer", 3), item(6, "v6", 3)],
            [],  # nothing new at the source
            [item(7, "v7", 4)],
        ]
        sent: list[dict[str, Any]] = []
        for n, rows in enumerate(writes):
            self.write(dest, cat, sync_messages(ITEMS, rows, at=BASE_MS + 1000 * n)).raise_on_failure()
            sent += rows
            got = self.table(dest, cat)
            if mode == "append":
                want = sent
            else:
                newest: dict[int, dict[str, Any]] = {}
                for row in sent:
                    newest[row["id"]] = row
                want = list(newest.values())
            assert self.data_of(got) == self.expected(want), f"after write {n + 1}"
            assert {r["_generation"] for r in got} == {1}
        assert {t.lower() for t in dest.tables(dest.namespace)} == {ITEMS}, "no working table left behind"

    def test_generation_ids_as_the_platform_sends_them(self, dest: DestinationHarness) -> None:
        """The platform's refreshes: a truncate refresh (a new generation, minimum = generation)
        replaces the table only when the stream is COMPLETE, an interrupted one is resumed by the
        next attempt of its generation, an attempt that finds the refresh already swapped in adds
        to it (here: an attempt that sends nothing, as a source does for a stream it finished
        before), and a merge refresh (0 < minimum < generation) deletes the older generations only
        when the stream completes."""
        streams = [stream(ITEMS, ITEM_SCHEMA, pk=["id"])]

        def cat(generation: int, minimum: int, mode: str = "append") -> dict[str, Any]:
            return self.catalog(
                streams, mode, generation=generation, minimum_generation=minimum, sync_id=generation
            )

        def rows_by_generation() -> dict[int, list[Any]]:
            out: dict[int, list[Any]] = {}
            for row in self.table(dest, cat(1, 0)):
                out.setdefault(row["_generation"], []).append(row["id"])
            return {g: sorted(ids) for g, ids in out.items()}

        first = [item(1, "a", 1), item(2, "b", 1)]
        self.write(dest, cat(1, 0), sync_messages(ITEMS, first)).raise_on_failure()
        refreshed = [item(i, f"r{i}", 2) for i in range(10, 16)]
        broken = self.write(dest, cat(2, 2), sync_messages(ITEMS, refreshed[:4], complete=False))
        assert broken.exit_code != 0
        assert rows_by_generation() == {1: [1, 2]}, "a refresh replaces the table only on COMPLETE"
        self.write(dest, cat(2, 2), sync_messages(ITEMS, refreshed[4:])).raise_on_failure()
        assert rows_by_generation() == {2: list(range(10, 16))}, "the resumed refresh holds both attempts"
        self.write(dest, cat(2, 2), sync_messages(ITEMS, [])).raise_on_failure()
        assert rows_by_generation() == {2: list(range(10, 16))}, "a refresh already swapped in is kept"
        self.write(dest, cat(2, 2), sync_messages(ITEMS, [item(16, "r16", 2)])).raise_on_failure()
        assert rows_by_generation() == {2: list(range(10, 17))}

        self.write(dest, cat(3, 0), sync_messages(ITEMS, [item(20, "m", 3)])).raise_on_failure()
        assert rows_by_generation() == {2: list(range(10, 17)), 3: [20]}, "minimum 0 keeps every generation"
        broken = self.write(dest, cat(4, 3), sync_messages(ITEMS, [item(30, "n", 4)], complete=False))
        assert broken.exit_code != 0
        assert rows_by_generation() == {2: list(range(10, 17)), 3: [20], 4: [30]}, "deleted before COMPLETE"
        self.write(dest, cat(4, 3), sync_messages(ITEMS, [item(31, "n", 4)])).raise_on_failure()
        assert rows_by_generation() == {3: [20], 4: [30, 31]}

        self.write(dest, cat(5, 5, "overwrite"), sync_messages(ITEMS, [item(40, "o", 5)])).raise_on_failure()
        assert rows_by_generation() == {5: [40]}
        self.write(
            dest, cat(6, 6, "append_dedup"), sync_messages(ITEMS, [item(40, "p", 6)])
        ).raise_on_failure()
        assert rows_by_generation() == {6: [40]}
        assert {t.lower() for t in dest.tables(dest.namespace)} == {ITEMS}, "no working table left behind"

    # ------------------------------------------------------------------ concurrent writers
    def test_concurrent_writers(self, dest: DestinationHarness) -> None:
        """Two writes at the same time into the same tables (two connections syncing into one
        schema, or an attempt started while another still runs), each with its own sync and
        generation ids: two append_dedup streams, whose records the writers send in opposite
        orders, and one append stream, all created by the writes themselves. Both writes
        succeed; each dedup table holds every key once, in its newest version, the append table
        every row of both, and every row carries the ids of the write that loaded it."""
        keys = range(1, 121)

        def messages(writer: str, day: int, order: Sequence[str], log: str) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i in keys:
                out += [record(name, item(i, f"{writer}{i}", day)) for name in order]
                out.append(record(log, item(i, f"{writer}{i}", day)))
            out += [state(name, {"done": True}, len(keys)) for name in [*order, log]]
            out += [status(name) for name in [*order, log]]
            return out

        def by_key(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return sorted(rows, key=lambda t: (t[0], t[1]))

        def labels(rows: Iterable[Mapping[str, Any]]) -> set[tuple[str, int, int]]:
            return {(r["name"][0], r["_meta"]["sync_id"], r["_generation"]) for r in rows}

        for n in range(3):  # fresh tables each round: the writers race to create them too
            names = [f"{ITEMS}_c{n}_x", f"{ITEMS}_c{n}_y"]
            log = f"{ITEMS}_c{n}_log"
            catalogs = []
            for ids in (1, 2):  # writer "a" has sync and generation id 1, writer "b" 2
                dedup = self.catalog(
                    [stream(name, ITEM_SCHEMA, pk=["id"]) for name in names],
                    "append_dedup",
                    generation=ids,
                    sync_id=ids,
                )
                append = self.catalog(
                    [stream(log, ITEM_SCHEMA)], "append", pk=None, generation=ids, sync_id=ids
                )
                catalogs.append({"streams": dedup["streams"] + append["streams"]})
            inputs = [messages("a", 1, names, log), messages("b", 2, names[::-1], log)]
            for result in concurrent_writes(dest, catalogs, inputs, batch_records=20):
                assert result.exit_code == 0, f"round {n}: a concurrent writer failed: {result.errors()}"
            cat = catalogs[0]
            newest = [item(i, f"b{i}", 2) for i in keys]  # the higher cursor wins, whatever came first
            for name in names:
                rows = self.table(dest, cat, name)
                assert self.data_of(rows) == self.expected(newest), f"round {n}: {name}"
                assert labels(rows) == {("b", 2, 2)}, f"round {n}: {name} rows carry another write's ids"
            rows = self.table(dest, cat, log)
            both = [item(i, f"{w}{i}", d) for w, d in (("a", 1), ("b", 2)) for i in keys]
            assert by_key(self.data_of(rows)) == by_key(self.expected(both)), f"round {n}: {log}"
            assert len({str(r["_raw_id"]) for r in rows}) == len(both)
            assert labels(rows) == {("a", 1, 1), ("b", 2, 2)}, (
                f"round {n}: {log} rows carry another write's ids"
            )

    # ------------------------------------------------------------------ state
    def test_state_is_echoed_in_order_only_after_its_records_are_committed(
        self, dest: DestinationHarness
    ) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")
        first = [record(ITEMS, item(1, "a", 1)), state(ITEMS, {"n": 1}, 1)]
        first[1]["state"]["id"] = 41  # the platform's state id must come back unchanged
        runner = dest.runner()
        config = runner._file("config", dest.config(batch_records=2, flush_seconds=3600))
        proc = subprocess.Popen(
            [*runner.argv, "write", "--config", config, "--catalog", runner._file("catalog", cat)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None

        def send(messages: Sequence[Mapping[str, Any]]) -> None:
            assert proc.stdin is not None
            proc.stdin.write(b"".join(to_line(m) for m in messages))
            proc.stdin.flush()

        lines = _LineReader(proc)
        try:
            send(first)
            assert lines.state(timeout=1.5) is None, "a STATE was echoed while its record was only buffered"
            send([record(ITEMS, item(2, "b", 1))])  # the buffer is full: it is loaded, then state 1 echoed
            line = lines.state(timeout=60)
            assert line is not None, "no STATE echoed after its records were loaded"
            echoed = json.loads(line)
            assert echoed["state"]["stream"]["stream_state"] == {"n": 1}
            assert echoed["state"]["id"] == 41
            assert echoed["state"]["destinationStats"]["recordCount"] == 1.0
            assert echoed["state"]["sourceStats"]["recordCount"] == 1.0
            committed = {r["id"] for r in self.table(dest, cat)}
            assert 1 in committed, "the STATE was echoed before its record was committed"
            send(
                [
                    record(ITEMS, item(3, "c", 1)),
                    state(ITEMS, {"n": 2}, 2),
                    state(ITEMS, {"n": 3}, 0),
                    status(ITEMS),
                ]
            )
            out, err = proc.communicate(timeout=120)  # closes stdin: the end of the input
            out = lines.buffer + out
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()
        rest = [json.loads(x) for x in out.splitlines() if b'"type":"STATE"' in x]
        assert [e["state"]["stream"]["stream_state"]["n"] for e in rest] == [2, 3], "states out of order"
        assert [e["state"]["destinationStats"]["recordCount"] for e in rest] == [2.0, 0.0]
        assert {r["id"] for r in self.table(dest, cat)} == {1, 2, 3}

    def test_text_no_database_stores_is_repaired_and_late_timestamps_nulled(
        self, dest: DestinationHarness
    ) -> None:
        """A lone surrogate escape is valid JSON but no database stores it: the string is kept with
        U+FFFD in its place and a change, never a failed write. A timestamp past what a batch can
        carry (Arrow's microseconds end in year 294247) is NULL with a change, never a crash."""
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "s": json_schema_for(AirbyteType.STRING),
            "t": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
        }
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)
        lines: list[Any] = [
            b'{"type":"RECORD","record":{"stream":"%s","emitted_at":1,'
            b'"data":{"id":1,"s":"a\\ud800b","t":"2024-01-01T00:00:00Z"}}}' % ITEMS.encode(),
            record(ITEMS, {"id": 2, "s": "ok", "t": "294250-01-01T00:00:00Z"}),
            state(ITEMS, {"n": 2}, 1),
            status(ITEMS),
        ]
        self.write(dest, cat, lines).raise_on_failure()
        rows = {r["id"]: r for r in self.table(dest, cat)}
        assert rows[1]["s"] == "a\ufffdb"
        assert [(c["field"], c["change"]) for c in rows[1]["_meta"]["changes"]] == [("s", "TRUNCATED")]
        assert normalize(rows[1]["t"], AirbyteType.TIMESTAMP_WITH_TIMEZONE) == dt.datetime(
            2024, 1, 1, tzinfo=dt.UTC
        )
        assert rows[2]["t"] is None
        assert rows[2]["_meta"]["changes"] == [
            {"field": "t", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}
        ]

    def test_malformed_input_names_the_line_and_echoes_nothing_after_it(
        self, dest: DestinationHarness
    ) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")
        lines: list[Any] = [
            record(ITEMS, item(1, "a", 1)),
            state(ITEMS, {"n": 1}, 1),
            b"{not json",
            record(ITEMS, item(2, "b", 1)),
            state(ITEMS, {"n": 2}, 1),
            status(ITEMS),
        ]
        result = self.write(dest, cat, lines)
        assert result.exit_code != 0
        (error,) = result.errors()
        assert "line 3" in error["message"]
        assert [s["stream"]["stream_state"]["n"] for s in result.states()] == [1]
        assert self.data_of(self.table(dest, cat)) == self.expected([item(1, "a", 1)])

    def test_a_hostile_input_stores_what_it_can_and_stops_at_the_bad_line(
        self, dest: DestinationHarness
    ) -> None:
        """Everything a broken or hostile source may send, in one input: stray blank lines, a
        5,000-digit number, a lone surrogate, NUL, invalid UTF-8, 100,000 levels of nesting in a
        value, in a STATE and in ``meta.changes``, fields of the wrong type, a 3 MB line; then
        a line cut short. The write stops there with an error naming it; every record before it
        is committed (the last one without a STATE after it), every STATE before it echoed as
        it came, nothing after it."""
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "name": json_schema_for(AirbyteType.STRING),
            "n": json_schema_for(AirbyteType.NUMBER),
            "j": json_schema_for(AirbyteType.UNKNOWN),
        }
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)
        huge = b"9" * 5000
        deep = b"[" * 100_000 + b"]" * 100_000
        change = b'{"field":"x","change":"NULLED","reason":"SOURCE_SERIALIZATION_ERROR"}'
        items = ITEMS.encode()

        def line(data: bytes, extra: bytes = b"") -> bytes:
            return b'{"type":"RECORD","record":{"stream":"%s","emitted_at":1,"data":{%s}%s}}' % (
                items,
                data,
                extra,
            )

        first_state = b'{"n":1,"deep":%s,"huge":%s,"s":"\\ud800 \\u0000"}' % (deep, huge)
        lines: list[Any] = [
            line(b'"id":1,"name":"one"'),
            b"",
            line(
                b'"id":2,"name":"nul\\u0000 \\ud800","n":%s,"j":%s' % (huge, deep),
                b',"meta":{"changes":[%s,%s,{"field":%s}]}' % (change, deep, deep),
            ),
            b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"%s"},'
            b'"stream_state":%s}}}' % (items, first_state),
            b"   ",
            line(b'"id":3,"name":"bad utf-8 \xff\xfe","j":{"a":"\xc3"}'),
            line(b'"id":4,"name":["not","text"],"n":"1.5","j":1e999999,"x":%s' % deep, b',"other":[]'),
            line(b'"id":5,"name":"%s"' % (b"long " * 600_000)),
            b'{"type":"LOG","log":{"level":"INFO","message":"a log line is ignored"}}',
            state(ITEMS, {"n": 2}, 4),
            line(b'"id":6,"name":"after the last state"'),
            line(b'"id":7,"name":"cut sh'),  # line 12: the input is broken here
            line(b'"id":8,"name":"never"'),
            state(ITEMS, {"n": 3}, 1),
            status(ITEMS),
        ]
        result = self.write(dest, cat, lines)
        assert result.exit_code != 0
        (error,) = result.errors()
        assert error["message"].startswith("line 12 of the input: "), error["message"][:300]
        echoed = [s["stream"]["stream_state"] for s in self.echoed(result)]
        assert [s["n"] for s in echoed] == [1, 2]
        assert dumps_exact(echoed[0]) == first_state, "the STATE is echoed as it came"
        rows = self.column_texts(dest, cat, ["name"])
        assert sorted(rows) == [1, 2, 3, 4, 5, 6], "every record before the bad line is committed"
        source_change = {"field": "x", "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}
        assert rows[2]["_meta"]["changes"][0] == source_change, "the source's change comes first"
        assert rows[4]["name"] == '["not","text"]'
        assert len(rows[5]["name"]) == len("long ") * 600_000

    def test_record_of_an_unknown_stream_is_refused(self, dest: DestinationHarness) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")
        lines = [
            record(ITEMS, item(1, "a", 1)),
            state(ITEMS, {"n": 1}, 1),
            record("nope", {"id": 1}),
            state(ITEMS, {"n": 2}, 0),
            status(ITEMS),
        ]
        result = self.write(dest, cat, lines)
        assert result.exit_code != 0
        assert "line 3" in result.errors()[0]["message"]
        assert "nope" in result.errors()[0]["message"]
        assert [s["stream"]["stream_state"]["n"] for s in result.states()] == [1]

    def test_a_minimum_generation_above_the_generation_is_refused_before_any_write(
        self, dest: DestinationHarness
    ) -> None:
        """No platform sends it, and obeying it deletes every row, the new ones included, while
        the STATE echoes count them as committed: a config_error before anything is written."""
        first = [item(1, "a", 1), item(2, "b", 1)]
        cat1 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append", sync_id=1)
        self.write(dest, cat1, sync_messages(ITEMS, first)).raise_on_failure()
        bad = self.catalog(
            [stream(ITEMS, ITEM_SCHEMA)], "append", generation=2, minimum_generation=5, sync_id=2
        )
        result = self.write(dest, bad, sync_messages(ITEMS, [item(3, "c", 2)], at=BASE_MS + 1000))
        assert result.exit_code != 0
        (error,) = result.errors()
        assert error["failure_type"] == "config_error"
        assert "minimum_generation_id" in error["message"]
        assert result.states() == [], "nothing may be acknowledged"
        assert self.data_of(self.table(dest, cat1)) == self.expected(first)

    # ------------------------------------------------------------------ hostile values
    def column_texts(
        self, dest: DestinationHarness, catalog: Mapping[str, Any], fields: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        """Rows by ``id``: each field's column read as text (``CAST(... AS TEXT)``, so no driver
        parses a huge number or a deep JSON value), and ``_meta``, the parsed ``_airbyte_meta``."""
        (plan,) = self.plan(dest, catalog).values()
        names = {f: plan.column_for(f).name for f in ["id", *fields]}
        table = sa.table(
            plan.name,
            *(sa.column(n) for n in names.values()),
            sa.column("_airbyte_meta"),
            schema=plan.namespace,
        )
        query = sa.select(
            table.c[names["id"]],
            *(sa.cast(table.c[names[f]], sa.Text()).label(f) for f in fields),
            table.c["_airbyte_meta"],
        )
        with dest.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = {}
        for row in rows:
            values = {f: getattr(row, f) for f in fields}
            out[int(row[0])] = {**values, "_meta": _meta(dict(row._mapping))}
        return out

    @pytest.mark.parametrize("depth", [100, 600, 1000, 100_000])
    def test_values_and_states_nested_at_any_depth(self, dest: DestinationHarness, depth: int) -> None:
        """Python's parsers recurse once per level and stop near 1,000 levels (orjson writes 255):
        a RECORD value or a STATE nested deeper is still valid JSON. The value is stored exactly
        where the column holds it (a JSON column down to ``Capabilities.json_depth``, a string
        column at any depth, as JSON text), else NULL with a change; the STATE is echoed as it
        came; the records around it are committed."""
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "j": json_schema_for(AirbyteType.UNKNOWN),
            "s": json_schema_for(AirbyteType.STRING),
        }
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)
        deep = "[" * (depth - 1) + '{"v":2}' + "]" * (depth - 1)
        lines: list[Any] = [
            record(ITEMS, {"id": 1, "j": [1]}),
            state(ITEMS, {"n": 1}, 1),
            b'{"type":"RECORD","record":{"stream":"%s","emitted_at":1,"data":{"id":2,"j":%s,"s":%s}}}'
            % (ITEMS.encode(), deep.encode(), deep.encode()),
            b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"%s"},'
            b'"stream_state":{"deep":%s}}}}' % (ITEMS.encode(), deep.encode()),
            record(ITEMS, {"id": 3, "s": "after"}),
            state(ITEMS, {"n": 3}, 1),
            status(ITEMS),
        ]
        result = self.write(dest, cat, lines).raise_on_failure()
        echoed = [s["stream"]["stream_state"] for s in self.echoed(result)]
        assert len(echoed) == 3
        assert (echoed[0], echoed[2]) == ({"n": 1}, {"n": 3})
        assert dumps_exact(echoed[1]["deep"]).decode() == deep, "the STATE is echoed as it came"
        assert [s["destinationStats"]["recordCount"] for s in self.echoed(result)] == [1.0, 1.0, 1.0]
        rows = self.column_texts(dest, cat, ["j", "s"])
        assert sorted(rows) == [1, 2, 3]
        limit = dest.connector_class.dialect_class.capabilities.json_depth
        stored = rows[2]["j"]
        if limit is None or depth <= limit:
            assert (stored or "").replace(" ", "") == deep
            assert rows[2]["_meta"]["changes"] == []
        else:
            assert stored is None
            assert rows[2]["_meta"]["changes"] == [
                {"field": "j", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}
            ]
        assert rows[2]["s"] == deep, "a string column holds any value as its JSON text"
        assert (rows[1]["j"] or "").replace(" ", "") == "[1]"
        assert rows[3]["s"] == "after"

    def test_integers_past_4300_digits_are_stored_exactly_where_the_column_holds_them(
        self, dest: DestinationHarness
    ) -> None:
        """Python refuses to convert a decimal text of more than 4,300 digits to an int: such an
        integer (source-postgres writes a numeric(5000) so) is stored exactly in a number, string
        or JSON column that holds it, else NULL with a change; it never fails the write."""
        huge = "9" * 4999 + "7"
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "n": json_schema_for(AirbyteType.NUMBER),
            "i": json_schema_for(AirbyteType.INTEGER),
            "s": json_schema_for(AirbyteType.STRING),
            "u": json_schema_for(AirbyteType.UNKNOWN),
        }
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)

        def line(data: str) -> bytes:
            return b'{"type":"RECORD","record":{"stream":"%s","emitted_at":1,"data":{%s}}}' % (
                ITEMS.encode(),
                data.encode(),
            )

        lines: list[Any] = [
            line(f'"id":1,"n":{huge}'),
            line(f'"id":2,"i":{huge}'),
            line(f'"id":3,"s":{huge}'),
            line(f'"id":4,"u":{huge}'),
            line(f'"id":5,"n":-{huge},"u":[{huge}]'),
            b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"%s"},'
            b'"stream_state":{"cursor":%s}}}}' % (ITEMS.encode(), huge.encode()),
            status(ITEMS),
        ]
        result = self.write(dest, cat, lines).raise_on_failure()
        (echoed,) = self.echoed(result)
        assert str(echoed["stream"]["stream_state"]["cursor"]) == huge, "the STATE keeps every digit"
        assert echoed["destinationStats"]["recordCount"] == 5.0
        rows = self.column_texts(dest, cat, ["n", "i", "s", "u"])
        capabilities = dest.connector_class.dialect_class.capabilities
        (plan,) = self.plan(dest, cat).values()

        def refused(field: str) -> list[dict[str, str]]:
            return [{"field": field, "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"}]

        digits = capabilities.number_digits
        if digits is None or len(huge) <= digits[0]:
            assert (rows[1]["n"], rows[5]["n"]) == (huge, "-" + huge)
            assert rows[1]["_meta"]["changes"] == []
        else:
            assert (rows[1]["n"], rows[5]["n"]) == (None, None)
            assert rows[1]["_meta"]["changes"] == refused("n")
        if plan.column_for("i").airbyte_type is AirbyteType.NUMBER:
            assert rows[2]["i"] == huge, "an integer column as wide as numbers holds it"
        else:
            assert rows[2]["i"] is None
            assert rows[2]["_meta"]["changes"] == refused("i")
        assert rows[3]["s"] == huge, "a string column holds it as its text"
        assert rows[3]["_meta"]["changes"] == []
        if capabilities.float_json_numbers:  # a bare number there is a double: none is near
            assert rows[4]["u"] is None
            assert rows[4]["_meta"]["changes"] == refused("u")
        else:
            assert rows[4]["u"] == huge
            assert rows[4]["_meta"]["changes"] == []
        assert (rows[5]["u"] or "").replace(" ", "") == f"[{huge}]"

    # ------------------------------------------------------------------ values and names
    def test_values_that_cannot_be_stored_become_null_with_a_change(self, dest: DestinationHarness) -> None:
        props = {
            "id": json_schema_for(AirbyteType.INTEGER),
            "n": json_schema_for(AirbyteType.INTEGER),
            "x": json_schema_for(AirbyteType.NUMBER),
            "b": json_schema_for(AirbyteType.BOOLEAN),
            "d": json_schema_for(AirbyteType.DATE),
            "t": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
            "s": json_schema_for(AirbyteType.STRING),
        }
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)
        rows = [
            {"id": 1, "n": "twelve", "x": "1.5", "b": "yes", "d": "2024-02-30", "t": "yesterday", "s": "ok"},
            {
                "id": 2,
                "n": 2**70,
                "x": Decimal("123456789012345678901234567890.000000001"),
                "b": True,
                "d": "2024-02-29",
                "t": "2024-01-01T00:00:00Z",
                "s": "with\u0000nul",
            },
        ]
        meta_source = {
            "changes": [{"field": "s", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}]
        }
        messages = sync_messages(ITEMS, rows)
        messages[1]["record"]["meta"] = meta_source
        self.write(dest, cat, messages).raise_on_failure()
        plans = self.plan(dest, cat)
        (plan,) = plans.values()

        def col(field: str) -> str:
            column = plan.column_for(field)
            assert column is not None
            name: str = column.name
            return name

        by_id = {int(r[col("id")]): r for r in dest.read_table(plan.name, plan.namespace)}

        bad = by_id[1]
        for field in ("n", "x", "b", "d", "t"):
            assert bad[col(field)] is None, f"{field} must be NULL"
        changes = _meta(bad)["changes"]
        assert {(c["field"], c["change"]) for c in changes} == {
            (f, "NULLED") for f in ("n", "x", "b", "d", "t")
        }
        good = by_id[2]
        assert normalize(good[col("x")], AirbyteType.NUMBER) == Decimal(
            "123456789012345678901234567890.000000001"
        )
        assert normalize(good[col("d")], AirbyteType.DATE) == dt.date(2024, 2, 29)
        changes2 = _meta(good)["changes"]
        assert changes2[0] == meta_source["changes"][0], "source changes come first, unchanged"
        assert {"field": "n", "change": "NULLED", "reason": "DESTINATION_FIELD_SIZE_LIMITATION"} in changes2
        assert good[col("n")] is None
        if dest.connector_class.dialect_class.capabilities.text_nul_bytes:
            assert good[col("s")] == "with\u0000nul"
        else:
            assert good[col("s")] == "withnul"
            assert any(c["field"] == "s" and c["change"] == "TRUNCATED" for c in changes2)

    def test_odd_names(self, dest: DestinationHarness) -> None:
        long_a = "a" * 120 + "_first"
        long_b = "a" * 120 + "_second"
        props = {
            name: json_schema_for(AirbyteType.STRING)
            for name in [
                "id",
                'quote"d',
                "with space",
                "select",
                "Ünïcødé",
                "Mixed Case",
                long_a,
                long_b,
                "_airbyte_raw_id",
            ]
        }
        names = [f"odd {long_a}", f"odd {long_b}", 'stream "q"', "order"]
        catalog = self.catalog([stream(n, props) for n in names], "append", cursor=None, pk=None)
        messages: list[dict[str, Any]] = []
        for n in names:
            messages += sync_messages(n, [{k: f"{n}|{k}" for k in props}])
        self.write(dest, catalog, messages).raise_on_failure()
        plans = self.plan(dest, catalog)
        assert len({(p.namespace, p.name) for p in plans.values()}) == len(names), "tables must not collide"
        for descriptor, plan in plans.items():
            assert len({c.name for c in plan.columns}) == len(props), "columns must not collide"
            (row,) = dest.read_table(plan.name, plan.namespace)
            for column in plan.columns:
                assert row[column.name] == f"{descriptor.name}|{column.field}"
            uuid.UUID(str(row["_airbyte_raw_id"]))  # the metadata column kept its meaning

    def test_same_stream_in_two_namespaces(self, dest: DestinationHarness) -> None:
        namespaces = ["dbkit_ns_a", "dbkit_ns_b"]
        catalog = self.catalog([stream(ITEMS, ITEM_SCHEMA, namespace=ns) for ns in namespaces], "append")
        messages: list[dict[str, Any]] = []
        for i, ns in enumerate(namespaces):
            messages += sync_messages(ITEMS, [item(i, ns, 1)], namespace=ns)
        self.write(dest, catalog, messages).raise_on_failure()
        for i, ns in enumerate(namespaces):
            rows = self.table(dest, catalog, ITEMS, ns)
            assert self.data_of(rows) == self.expected([item(i, ns, 1)])

    def test_messages_without_a_namespace_go_to_the_only_stream_of_that_name(
        self, dest: DestinationHarness
    ) -> None:
        """PyAirbyte's cache -> destination path sends ``"namespace": null`` for catalog streams
        that have one: the one stream of that name takes them (with a warning); a name two
        namespaces share is refused as ambiguous."""
        ns = "dbkit_ns_a"
        catalog = self.catalog([stream(ITEMS, ITEM_SCHEMA, namespace=ns)], "append")
        rows = [item(1, "a", 1), item(2, "b", 1), item(3, "c", 2)]
        messages: list[dict[str, Any]] = []
        for message in sync_messages(ITEMS, rows):
            body = message.get("record") or message.get("state", {}).get("stream", {}).get(
                "stream_descriptor"
            )
            if body is None:
                body = message["trace"]["stream_status"]["stream_descriptor"]
            body["namespace"] = None
            messages.append(message)
        # the STATEs are echoed as they came (without a namespace): not checked against the catalog
        result = dest.runner(strict=False).write(dest.config(), catalog, messages).raise_on_failure()
        assert self.data_of(self.table(dest, catalog, ITEMS, ns)) == self.expected(rows)
        echoed = [s["stream"]["stream_descriptor"] for s in self.echoed(result)]
        assert echoed == [{"name": ITEMS, "namespace": None}] * 2
        warnings = [m for m in result.logs() if "no namespace" in m]
        assert len(warnings) == 1, result.logs()

        both = self.catalog([stream(ITEMS, ITEM_SCHEMA, namespace=n) for n in (ns, "dbkit_ns_b")], "append")
        ambiguous = self.write(dest, both, [record(ITEMS, item(4, "d", 3)), status(ITEMS)])
        assert ambiguous.exit_code != 0
        assert "not in the configured catalog" in ambiguous.errors()[0]["message"]

    def test_column_added_between_syncs(self, dest: DestinationHarness) -> None:
        cat1 = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")
        self.write(dest, cat1, sync_messages(ITEMS, [item(1, "a", 1)])).raise_on_failure()
        props = {**ITEM_SCHEMA, "color": json_schema_for(AirbyteType.STRING)}
        cat2 = self.catalog([stream(ITEMS, props)], "append", sync_id=2)
        self.write(dest, cat2, sync_messages(ITEMS, [{**item(2, "b", 2), "color": "red"}])).raise_on_failure()
        rows = sorted(self.table(dest, cat2), key=lambda r: r["id"])
        assert [r["color"] for r in rows] == [None, "red"]

    def test_no_working_tables_are_left_behind(self, dest: DestinationHarness) -> None:
        for mode in ("append", "overwrite", "append_dedup"):
            name = f"{ITEMS}_{mode}"
            cat = self.catalog([stream(name, ITEM_SCHEMA, pk=["id"])], mode)
            self.write(dest, cat, sync_messages(name, [item(1, "a", 1), item(1, "b", 2)])).raise_on_failure()
        tables = {t.lower() for t in dest.tables(dest.namespace)}
        assert tables == {f"{ITEMS}_{m}".lower() for m in ("append", "overwrite", "append_dedup")}, tables

    # ------------------------------------------------------------------ more of the contract
    def test_a_users_unique_index_survives_every_dedup_sync(self, dest: DestinationHarness) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], "append_dedup")
        self.write(
            dest, cat, sync_messages(ITEMS, [item(i, f"v{i}", 1) for i in (1, 2, 3)])
        ).raise_on_failure()
        (plan,) = self.plan(dest, cat).values()
        key = plan.column_for("id")
        assert key is not None
        table = sa.Table(plan.name, sa.MetaData(), sa.Column(key.name), schema=plan.namespace)
        sa.Index("dbkit_users_own_unique_key", table.c[key.name], unique=True).create(dest.engine)
        for sync, day in ((2, 2), (3, 3)):
            rows = [
                item(2, f"v2 day {day}", day),
                item(3, "older: loses", 0),
                item(3 + sync, "new", day),
                item(3 + sync, "new, later", day),
            ]
            self.write(dest, cat, sync_messages(ITEMS, rows, at=BASE_MS + 1000 * sync)).raise_on_failure()
        want = [
            item(1, "v1", 1),
            item(2, "v2 day 3", 3),
            item(3, "v3", 1),
            item(5, "new, later", 2),
            item(6, "new, later", 3),
        ]
        assert self.data_of(self.table(dest, cat)) == self.expected(want)
        indexes = sa.inspect(dest.engine).get_indexes(plan.name, schema=plan.namespace)
        assert any(i["name"] == "dbkit_users_own_unique_key" and i["unique"] for i in indexes)

    def test_a_resumed_refresh_holds_each_row_once(self, dest: DestinationHarness) -> None:
        """Records after the last STATE of an interrupted refresh come again from the source: the
        swapped-in table holds each row once."""
        rows = [item(i, "new", 1) for i in range(1, 7)]
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "overwrite", generation=5)
        cut = [
            record(ITEMS, rows[0]),
            record(ITEMS, rows[1]),
            state(ITEMS, {"after": 2}, 2),
            record(ITEMS, rows[2]),
            record(ITEMS, rows[3]),
        ]  # the input ends here
        broken = self.write(dest, cat, cut)
        assert broken.exit_code != 0
        assert [s["stream"]["stream_state"] for s in broken.states()] == [{"after": 2}]
        self.write(dest, cat, sync_messages(ITEMS, rows[2:])).raise_on_failure()  # resumed after "after": 2
        assert self.data_of(self.table(dest, cat)) == self.expected(rows)

    def test_rows_with_a_null_key_are_appended(self, dest: DestinationHarness) -> None:
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], "append_dedup")
        rows = [{**item(0, "a", 1), "id": None}, {**item(0, "b", 2), "id": None}, item(1, "c", 1)]
        self.write(dest, cat, sync_messages(ITEMS, rows)).raise_on_failure()
        self.write(dest, cat, sync_messages(ITEMS, rows[:1], at=BASE_MS + 1000)).raise_on_failure()
        names = sorted(r["name"] for r in self.table(dest, cat))
        assert names == ["a", "a", "b", "c"], "NULL is not a key value: such rows are never merged"

    def test_types_widen_without_losing_values(self, dest: DestinationHarness) -> None:
        def cat(airbyte_type: AirbyteType, sync: int) -> dict[str, Any]:
            props = {"id": json_schema_for(AirbyteType.INTEGER), "v": json_schema_for(airbyte_type)}
            return self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None, sync_id=sync)

        self.write(
            dest, cat(AirbyteType.INTEGER, 1), sync_messages(ITEMS, [{"id": 1, "v": 7}])
        ).raise_on_failure()
        self.write(
            dest, cat(AirbyteType.NUMBER, 2), sync_messages(ITEMS, [{"id": 2, "v": Decimal("1.25")}])
        ).raise_on_failure()
        final = cat(AirbyteType.STRING, 3)
        self.write(dest, final, sync_messages(ITEMS, [{"id": 3, "v": "text"}])).raise_on_failure()
        (plan,) = self.plan(dest, final).values()
        column = plan.column_for("v")
        assert column is not None
        stored = {
            int(r[plan.column_for("id").name]): r[column.name]
            for r in dest.read_table(plan.name, plan.namespace)
        }
        assert {k: str(v) for k, v in stored.items()} == {1: "7", 2: "1.25", 3: "text"}

    def test_non_string_values_in_a_string_column_are_kept_as_json_text(
        self, dest: DestinationHarness
    ) -> None:
        props = {"id": json_schema_for(AirbyteType.INTEGER), "s": json_schema_for(AirbyteType.STRING)}
        cat = self.catalog([stream(ITEMS, props)], "append", cursor=None, pk=None)
        values = [5, True, {"a": 1}, [1, "x"], Decimal("1.50")]
        self.write(
            dest, cat, sync_messages(ITEMS, [{"id": i, "s": v} for i, v in enumerate(values)])
        ).raise_on_failure()
        rows = sorted(self.table(dest, cat), key=lambda r: r["id"])
        assert [r["s"] for r in rows] == ["5", "true", '{"a":1}', '[1,"x"]', "1.50"]
        assert all(r["_meta"]["changes"] == [] for r in rows)

    @pytest.mark.parametrize("mode", ["append_dedup", "overwrite"])
    def test_a_killed_write_rerun_from_its_last_echoed_state_loses_nothing(
        self, dest: DestinationHarness, mode: str
    ) -> None:
        """Delivery is at least once: the killed write may have committed a batch whose STATE it
        had no time to echo, and the rerun brings those records again. append_dedup absorbs them
        (exact table); overwrite keeps them, and only them, twice: no row lost, no other repeat."""
        rows = [item(i, f"v{i}", 1 + i % 3) for i in range(1, 41)]
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA, pk=["id"])], mode, generation=2)
        messages = sync_messages(ITEMS, rows)
        killed = dest.runner().write(dest.config(batch_records=4), cat, messages, kill_after_states=3)
        assert killed.killed, "the write ended before its third echo"
        last = killed.states()[-1]["stream"]["stream_state"]["upto"]  # the source resumes after it
        rest = sync_messages(ITEMS, rows[last + 1 :], at=BASE_MS + last + 1)
        self.write(dest, cat, rest).raise_on_failure()
        got, expected = self.data_of(self.table(dest, cat)), self.expected(rows)
        if mode == "append_dedup":
            assert got == expected
        else:
            assert sorted(set(got), key=lambda t: repr(t[0])) == expected, "a row was lost or changed"
            repeats = {row[0]: n for row, n in Counter(got).items() if n > 1}
            # the rerun starts at rows[last + 1], whose id is last + 2
            assert all(key >= last + 2 and n == 2 for key, n in repeats.items()), (
                f"repeats outside the unacknowledged window after id {last}: {repeats}"
            )
        assert {t.lower() for t in dest.tables(dest.namespace)} == {ITEMS}, "no working table left behind"

    def test_parallel_loads_commit_every_batch_once_and_echo_states_in_order(
        self, dest: DestinationHarness
    ) -> None:
        """``parallel_loads``: an append and an overwrite stream, interleaved, in batches of 3
        loaded side by side (where the destination loads in the background): every row once,
        every STATE echoed in its stream's order with its count."""
        other = f"{ITEMS}_other"
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append") | {
            "streams": [
                *self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")["streams"],
                *self.catalog([stream(other, ITEM_SCHEMA)], "overwrite", generation=3)["streams"],
            ]
        }
        rows = {
            ITEMS: [item(i, f"a{i}", 1) for i in range(40)],
            other: [item(i, f"o{i}", 2) for i in range(31)],
        }
        streams = [sync_messages(name, data) for name, data in rows.items()]
        messages = [m for pair in itertools.zip_longest(*streams) for m in pair if m is not None]
        result = self.write(dest, cat, messages, batch_records=3, parallel_loads=3).raise_on_failure()
        for name, data in rows.items():
            assert self.data_of(self.table(dest, cat, name)) == self.expected(data)
            echoed = [s for s in self.echoed(result) if s["stream"]["stream_descriptor"]["name"] == name]
            sent = [
                m["state"]
                for m in messages
                if m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == name
            ]
            assert [s["stream"]["stream_state"] for s in echoed] == [
                s["stream"]["stream_state"] for s in sent
            ]
            assert sum(s["destinationStats"]["recordCount"] for s in echoed) == len(data)

    def test_parallel_loads_into_a_table_with_a_unique_index_load_one_at_a_time(
        self, dest: DestinationHarness
    ) -> None:
        """Appends into a table with a user's unique index are not loaded side by side (a load
        waiting for its turn to commit would hold keys the load before it waits for): a
        duplicate key fails the write instead of hanging it."""
        cat = self.catalog([stream(ITEMS, ITEM_SCHEMA)], "append")
        self.write(dest, cat, sync_messages(ITEMS, [item(0, "first", 1)])).raise_on_failure()
        (plan,) = self.plan(dest, cat).values()
        key = plan.column_for("id")
        assert key is not None
        table = sa.Table(plan.name, sa.MetaData(), sa.Column(key.name), schema=plan.namespace)
        sa.Index("dbkit_users_unique_id", table.c[key.name], unique=True).create(dest.engine)
        rows = [item(i, f"v{i}", 1) for i in range(1, 13)]
        self.write(
            dest, cat, sync_messages(ITEMS, rows), batch_records=2, parallel_loads=2
        ).raise_on_failure()
        assert self.data_of(self.table(dest, cat)) == self.expected([item(0, "first", 1), *rows])
        again = [item(100 + i, "new", 1) for i in range(6)] + [item(5, "a duplicate", 1)]
        failed = self.write(dest, cat, sync_messages(ITEMS, again), batch_records=2, parallel_loads=2)
        assert failed.exit_code != 0
        assert failed.errors(), "the duplicate key is reported"

    def test_column_names_do_not_depend_on_field_order(self, dest: DestinationHarness) -> None:
        """Fields whose names normalize alike keep their columns when the schema lists them in
        another order (the allocation depends on the names only)."""
        fields = ["a-b", "a_b", "a b", "id"]
        schema = json_schema_for(AirbyteType.STRING)

        def cat(order: Sequence[str], sync: int) -> dict[str, Any]:
            return self.catalog(
                [stream(ITEMS, dict.fromkeys(order, schema))], "append", cursor=None, pk=None, sync_id=sync
            )

        first, second = cat(fields, 1), cat(list(reversed(fields)), 2)
        self.write(dest, first, sync_messages(ITEMS, [{f: f"{f}|1" for f in fields}])).raise_on_failure()
        self.write(dest, second, sync_messages(ITEMS, [{f: f"{f}|2" for f in fields}])).raise_on_failure()
        assert {c.field: c.name for c in next(iter(self.plan(dest, first).values())).columns} == {
            c.field: c.name for c in next(iter(self.plan(dest, second).values())).columns
        }
        for row in self.table(dest, second):
            assert {row[f].split("|")[0] for f in fields} == set(fields)
            assert row["a-b"] == f"a-b|{row['a-b'].split('|')[1]}"


class _LineReader:
    """Lines of a process's stdout with a timeout: raw reads into our own buffer, so no line can
    hide in a file object's buffer where ``select`` does not see it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def state(self, timeout: float) -> bytes | None:
        """The next STATE line within ``timeout`` seconds (other lines skipped), or None."""
        import os
        import select

        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if b'"type":"STATE"' in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk


def _meta(row: Mapping[str, Any]) -> dict[str, Any]:
    meta = row["_airbyte_meta"]
    return json.loads(meta) if isinstance(meta, str | bytes) else dict(meta)
