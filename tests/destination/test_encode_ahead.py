"""``BulkLoader.encode``: what a loader makes of a part ahead of its load is made on the builder's
thread, reaches the load with the part, and is made only for parts loaded as they are."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa

from dbkit.destination import Batch, WriteContext
from destination_sqlite import SqliteDestination
from destination_sqlite.dialect import SqliteBulkLoader

FIELDS = {"id": "integer", "v": "string"}
DEDUP = {"id": "integer", "c": "integer", "v": "string"}


class Seen:
    def __init__(self) -> None:
        self.encoded_on: list[str] = []
        self.loaded: list[tuple[str, Any, int]] = []  # (table, encoded, rows)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    record = Seen()
    load = SqliteBulkLoader.load_batches

    def encode(self: SqliteBulkLoader, batch: Batch) -> Any:
        record.encoded_on.append(threading.current_thread().name)
        return ("made ahead", batch.table.num_rows, id(batch.table))

    def load_batches(
        self: SqliteBulkLoader,
        conn: sa.Connection,
        table: sa.Table,
        batches: Iterable[Batch],
        write: WriteContext,
    ) -> None:
        def watched() -> Iterable[Batch]:
            for batch in batches:
                record.loaded.append((table.name, batch.encoded, batch.table.num_rows))
                if batch.encoded is not None:  # made from this very table, of this size
                    assert batch.encoded[1:] == (batch.table.num_rows, id(batch.table))
                yield batch

        load(self, conn, table, watched(), write)

    dialect = SqliteDestination.dialect_class
    # loads on a thread of their own, with parts built ahead (SQLite loads inline by default)
    monkeypatch.setattr(
        dialect, "capabilities", dataclasses.replace(dialect.capabilities, background_loading=True)
    )
    monkeypatch.setattr(SqliteBulkLoader, "encode", encode)
    monkeypatch.setattr(SqliteBulkLoader, "load_batches", load_batches)
    return record


def _lines(m: Any, rows: list[dict[str, Any]]) -> list[Any]:
    return [*(m.record("s", row) for row in rows), m.state("s", {"n": len(rows)}), m.status("s")]


def test_append_parts_are_encoded_on_the_builders_thread_and_loaded_with_it(
    dest: Any, msgs: Any, seen: Seen
) -> None:
    m = msgs
    cat = m.catalog(m.stream("s", FIELDS, generation_id=1, minimum_generation_id=0, sync_id=1))
    rows = [{"id": i, "v": f"v{i}"} for i in range(25)]
    dest.ok(cat, _lines(m, rows), batch_records=10)
    assert [tuple(r.values())[:2] for r in dest.rows("s", order_by="id")] == [(i, f"v{i}") for i in range(25)]
    assert seen.encoded_on, "nothing was encoded ahead"
    assert set(seen.encoded_on) == {"dbkit-build"}
    assert sum(n for _, _, n in seen.loaded) == 25
    assert all(encoded is not None for _, encoded, _ in seen.loaded), seen.loaded


def test_parts_bound_for_a_staging_table_are_not_encoded(dest: Any, msgs: Any, seen: Seen) -> None:
    """A dedup whose merger does not find the batch's new keys (destination-sqlite's) stages
    every part (with a sequence column): nothing made ahead would be sent, so nothing is made."""
    m = msgs
    cat = m.catalog(m.stream("s", DEDUP, "append_dedup", pk=["id"], cursor="c"))
    rows = [{"id": i % 7, "c": i, "v": f"v{i}"} for i in range(25)]
    dest.ok(cat, _lines(m, rows), batch_records=10)
    assert len(dest.rows("s", order_by="id")) == 7
    assert seen.encoded_on == []
    assert seen.loaded
    assert all(encoded is None for _, encoded, _ in seen.loaded)
