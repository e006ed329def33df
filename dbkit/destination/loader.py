"""One stream's tables during a write: setup, batch loads, completion.

- append: each batch goes straight into the final table, in one transaction.
- append_dedup: each batch goes into a session-private staging table, then one transaction
  applies it (``dialect.merger.dedup``) so the final table keeps the newest row per key; in CDC
  hard-delete mode a session-private tombstone table remembers this write's deletions.
- refresh (overwrite / truncate refresh, ``replaces_data``): where the batches go is decided at
  setup by the generation-id rule of :mod:`dbkit.destination.generations`: into
  ``<name>_airbyte_tmp`` (new, or resumed from an interrupted attempt of the generation), which
  replaces the final table in one transaction when the source reports the stream COMPLETE; or,
  when the final table is absent, empty or already at the generation, straight into it. An
  interrupted refresh leaves the final table untouched.
- merge refresh with ``0 < minimum_generation_id < generation_id``: rows of older generations
  are deleted when the stream completes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

import dbkit.destination.merge as merge
from dbkit.db.types import AirbyteType
from dbkit.destination.batch import Batch, BatchBuilder, BatchColumn
from dbkit.destination.bulk_load import ValueRefused
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.executor import Job, Slot, TurnTimeout
from dbkit.destination.generations import Target, choose_target, held, refresh_minimum
from dbkit.destination.naming import short_hash
from dbkit.destination.prefetch import Prefetcher
from dbkit.destination.records import RawRecord
from dbkit.destination.schema import TablePlan, ensure_table, index_name
from dbkit.destination.write import WriteContext
from dbkit.errors import SystemFailure
from dbkit.protocol import ConfiguredStream, DestinationSyncMode

MAX_REFUSED_VALUES = 100
"""Values the database may refuse in one batch (each costs a reload) before the load fails."""
MIN_PATIENCE = 10.0
"""Seconds a load sent beside the one before it waits at least for its turn to commit."""
MAX_PATIENCE = 25.0
"""... and at most: half of InnoDB's default lock wait timeout, so that a load blocked by it
gets free before the database gives up on it."""


def patience(sent: float) -> float:
    """How long a load that took ``sent`` seconds to send its rows waits for the loads before it
    to commit before it rolls back and tries again after them
    (:class:`~dbkit.destination.executor.TurnTimeout`): twice as long, within ``MIN_PATIENCE``
    and ``MAX_PATIENCE``. The load before it started first, so it is rarely still running by
    then unless it is much larger or waiting for a lock this one holds."""
    return min(MAX_PATIENCE, max(MIN_PATIENCE, 2 * sent))


def blocked_by_it(sent: float, waited: float) -> bool:
    """Whether the load before a load that gave way (after sending its rows in ``sent`` seconds)
    was waiting for it: it finished within about as long as a load takes (``waited`` seconds
    after the rollback), not long after, as a large but healthy load would."""
    return waited < max(1.0, 2 * sent)


class ConnectionLanes(Protocol):
    """The connections a write's loads run on, by lane (a list, or the connector's ``Lanes``)."""

    def __getitem__(self, lane: int, /) -> sa.Connection: ...

    def __len__(self) -> int: ...


@dataclass
class LoadStats:
    records: int = 0
    batches: int = 0
    changed_rows: int = 0


class StreamLoader:
    """One stream's tables during one write. Called by the consumer: ``setup`` once, ``load``
    per flush, ``complete`` at most once, ``close`` once at the end. Talks to the dialect's roles
    only; what the write remembers is in ``write`` (a :class:`WriteContext`).

    ``refresh``: the stream asked for a refresh (the consumer then loads only what a STATE
    covers); ``target``: where a refresh loads, set by ``setup``; ``replaces``: the batches go
    into the temporary table, which replaces the final table on COMPLETE."""

    def __init__(
        self,
        dialect: DestinationDialect[Any],
        conn: sa.Connection,
        stream: ConfiguredStream,
        plan: TablePlan,
        write: WriteContext,
    ) -> None:
        self.dialect = dialect
        self.tables = dialect.tables
        self.bulk = dialect.bulk
        self.merger = dialect.merger
        self.conn = conn
        self.stream = stream
        self.plan = plan
        self.write = write
        self.log = write.log
        self.stats = LoadStats()
        self._stats_lock = threading.Lock()
        self.dedup = stream.destination_sync_mode is DestinationSyncMode.APPEND_DEDUP
        self.refresh = stream.replaces_data
        self.target_kind: Target | None = None
        self.replaces = False  # decided by setup
        self.completed = False
        self.target: sa.Table | None = None
        self.final: sa.Table | None = None
        self.staging: sa.Table | None = None
        self.tombstones: sa.Table | None = None
        self.builder: BatchBuilder | None = None
        self.dedup_plan: merge.DedupPlan | None = None
        self._key_types: dict[str, AirbyteType] = {}
        self._exact_key = False  # the database compares the key's values as the connector does
        self._locked = False  # the current transaction holds the stream's table lock
        self._exclusive_target = False  # appends to the target may wait for each other (shared_loads)
        self._one_at_a_time = False  # a shared load of the stream ran out of patience
        self._staged_last = False  # the stream's last dedup load staged some of its rows
        self.lanes: ConnectionLanes = [conn]
        """The write's connections a load may run on (``lanes[0]`` is ``conn``; the connector
        adds the others): see :attr:`shared_loads`."""

    # ------------------------------------------------------------------ writers of one table
    @contextmanager
    def transaction(self, conn: sa.Connection | None = None) -> Iterator[None]:
        """A transaction on the stream's tables (on ``conn``, by default the loader's own); the
        table lock (:meth:`lock`) taken in it is held until it ends, then released where the
        database needs that (``unlock_table``)."""
        try:
            with (conn or self.conn).begin():
                yield
        finally:
            if self._locked:
                self._locked = False
                self.tables.unlock_table(self.conn, self.plan.namespace, self.plan.name)

    def lock(self) -> None:
        """In a :meth:`transaction`, before the stream's tables are created, evolved, merged
        into, swapped or deleted from: take turns with other writers of the same table
        (``dialect.tables.lock_table``, keyed on the final table for its temporary table too).
        Plain appends do not lock: concurrent COPYs into one table do not collide."""
        if not self._locked:
            self.tables.lock_table(self.conn, self.plan.namespace, self.plan.name)
            self._locked = True

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        conn = self.conn
        with self.transaction():
            self.lock()
            name = self.plan.name
            if self.refresh:
                self.target_kind = self._refresh_target()
                self.replaces = self.target_kind is not Target.FINAL
                if self.replaces:
                    name = self.plan.tmp_name
            target, storage, plan = ensure_table(conn, self.dialect, self.plan, name, self.write)
            self.plan = plan
            if not self.dedup:
                self._drop_unique_key_index(target)
                self._exclusive_target = not self.tables.concurrent_appends(conn, target)
                if self._exclusive_target and len(self.lanes) > 1:
                    self.log(
                        "INFO",
                        f"{self.plan.descriptor}: the table has a trigger or a unique index (or the "
                        "database cannot tell): its batches load one at a time, not side by side",
                    )
            columns = [
                BatchColumn(c.field, c.name, storage.get(c.name, c.airbyte_type)) for c in plan.columns
            ]
            self._key_types = {c.name: c.airbyte_type for c in columns if c.name in plan.key}
            self.builder = BatchBuilder(
                columns,
                self.dialect.limits,
                sync_id=self.stream.sync_id,
                generation_id=self.stream.generation_id,
                raw_ids=self.dialect.types.raw_id_default() is None,
                catalog_types=[c.airbyte_type for c in plan.columns],
            )
            self.tables.prepare_table(
                conn, target, self.builder.empty_meta, self.stream.generation_id, self.write
            )
            if self.dedup:
                self.dedup_plan = merge.DedupPlan(
                    key=plan.key,
                    cursor=plan.cursor,
                    deleted_at=plan.deleted_at,
                    hard_delete=self.hard_delete,
                    columns=[c.name for c in target.columns],
                )
                self._key_unique(target, self.dedup_plan)
                self._exact_key = self.merger.exact_key(conn, target, plan.key)
        self.target = target
        if self.dedup:
            assert self.dedup_plan is not None
            with conn.begin():
                tag = short_hash(str(plan.descriptor))
                self.staging = self.tables.create_staging(conn, target, f"_dbkit_stage_{tag}")
                self.tables.prepare_table(
                    conn, self.staging, self.builder.empty_meta, self.stream.generation_id, self.write
                )
                if plan.deleted_at is not None and self.hard_delete:
                    self.tombstones = self.tables.create_tombstones(
                        conn, target, f"_dbkit_tomb_{tag}", merge.tombstone_columns(self.dedup_plan)
                    )
                    self.dedup_plan = replace(self.dedup_plan, tombstones=self.tombstones)
                self.merger.prepare_staging(conn, self.staging, self.tombstones, self.dedup_plan)

    @property
    def hard_delete(self) -> bool:
        return self.write.options.hard_delete

    def _refresh_target(self) -> Target:
        """Where this refresh loads (:mod:`dbkit.destination.generations`); a temporary table of
        an older generation is dropped here."""
        plan, conn, minimum = self.plan, self.conn, refresh_minimum(self.stream)
        generation = self.stream.generation_id
        tmp = held(conn, self.tables, plan.namespace, plan.tmp_name)
        final = None if tmp is not None else held(conn, self.tables, plan.namespace, plan.name)
        target = choose_target(tmp, final, minimum)
        if target is Target.RESUME:
            self.log(
                "INFO",
                f"{plan.descriptor}: resuming the interrupted refresh of generation {generation}",
            )
        elif target is Target.NEW and tmp is not None:
            self.log("INFO", f"{plan.descriptor}: dropping a temporary table left by another generation")
            self.tables.drop_table(conn, sa.Table(plan.tmp_name, sa.MetaData(), schema=plan.namespace))
        elif target is Target.FINAL and final is not None and final.rows:
            self.log(
                "INFO",
                f"{plan.descriptor}: the table already holds generation {final.generation} (the refresh "
                f"keeps generations from {minimum}): loading into it, as a refresh already swapped in",
            )
        return target

    def _key_index_name(self, table: sa.Table) -> str:
        nonce = str(self.stream.generation_id) if self.replaces else ""
        return index_name(table.name, "key", nonce, self.dialect.naming)

    def _key_unique(self, table: sa.Table, plan: merge.DedupPlan) -> None:
        """Make the table of a dedup stream hold one row per key, and index the key.

        A unique index whose columns are all in the key proves it at no cost. Otherwise the
        dialect collapses the table's duplicates (a scan of the whole table) and, when it could,
        the loader's key index is made unique, so later writes skip that scan (an older,
        non-unique one is replaced). A dialect that does not collapse gets a plain key index.
        Either way the key gets an index that starts with it (for the merge to probe), unless
        one exists."""
        key = list(plan.key)
        indexes = self.tables.key_indexes(self.conn, table)
        name = self._key_index_name(table)
        probed = any(list(index.columns[: len(key)]) == key for index in indexes)
        if any(index.unique and set(index.columns) <= set(key) for index in indexes):
            if not probed:  # e.g. a primary key (b, a) for the key (a, b)
                self.tables.create_index(self.conn, table, name, key)
            return
        if self.tables.collapse_duplicates(self.conn, table, plan, self.write):
            existing = any(index.name == name for index in indexes)
            self.tables.create_unique_index(self.conn, table, name, key, replace=existing)
        elif not probed:
            self.tables.create_index(self.conn, table, name, key)

    def _drop_unique_key_index(self, table: sa.Table) -> None:
        """A write that is not a dedup may add a second row for a key: the unique key index a
        dedup write made (never a user's index) goes, and the next dedup write makes it again."""
        name = self._key_index_name(table)
        if any(i.name == name and i.unique for i in self.tables.key_indexes(self.conn, table)):
            self.tables.drop_index(self.conn, table, name)
            self.log("INFO", f"{self.plan.descriptor}: dropped the unique key index {name} of a dedup write")

    # ------------------------------------------------------------------ batches
    @property
    def shared_loads(self) -> bool:
        """This stream's loads may run beside other loads, each on a connection of its own, and
        commit in order (:mod:`dbkit.destination.executor`): plain appends into a target that
        two transactions may append to at once (``tables.concurrent_appends``: no unique index,
        no trigger; a load waiting for its turn to commit would hold what the load before it may
        wait for), until one of them ran out of patience. A dedup load (its staging table is
        private to ``conn``; its merge must see the loads before it) runs alone, in order."""
        return not (self.dedup or self._exclusive_target or self._one_at_a_time)

    def load_job(self, records: Sequence[RawRecord], prefetcher: Prefetcher | None = None) -> Job:
        """Called by the consumer per flush, on its own thread: a job that loads ``records`` in
        one transaction when run (on a loading thread, on the connection of :attr:`lanes` its
        slot names). With a ``prefetcher`` the typed parts start being built now, on the
        builder's thread, ahead of the load (:mod:`dbkit.destination.prefetch`)."""
        assert self.builder is not None
        parts = None if prefetcher is None else prefetcher.start(self._encoded(self.builder.parts(records)))

        def job(slot: Slot) -> None:
            try:
                self.load(records, parts, slot)
            finally:
                if parts is not None:
                    parts.cancel()  # a failed load releases the builder

        return job

    def load(
        self, records: Sequence[RawRecord], parts: Iterator[Batch] | None = None, slot: Slot | None = None
    ) -> None:
        """Load one batch in one transaction, on the connection of ``slot.lane`` (not 0 only for
        :attr:`shared_loads`), committed once ``slot`` has its turn; raises (and rolls back) on
        failure.

        ``parts``: the typed parts of ``records`` built ahead (:meth:`load_job`), else the batch
        is built in parts while the first parts are already being sent. Should the database
        refuse a value the casting rules accepted (:class:`ValueRefused`), the value is stored
        as NULL with a change and the batch is loaded again (at most ``MAX_REFUSED_VALUES``
        times)."""
        if not records:
            return
        assert self.builder is not None
        slot = slot or Slot(None, 0, 0)
        built: list[Batch] = []
        source = self.builder.parts(records) if parts is None else parts
        refused_values = 0
        while True:
            try:
                self._load_parts(self._parts(built, source), slot)
                break
            except TurnTimeout:
                self._gave_way(slot)
            except ValueRefused as refused:
                refused_values += 1
                if refused_values > MAX_REFUSED_VALUES:
                    raise SystemFailure(
                        f"{self.plan.descriptor}: the database refused more than {MAX_REFUSED_VALUES} "
                        "values of one batch that the type rules accepted"
                    ) from None
                built[refused.part] = self.builder.reject(
                    built[refused.part], refused.row, refused.column, refused.reason
                )
                self.log(
                    "WARN",
                    f"{self.plan.descriptor}: the database refused a value of column {refused.column!r} "
                    f"({refused.detail}); it is stored as NULL, with a change in _airbyte_meta",
                )
        changed = sum(p.changed_rows for p in built)
        with self._stats_lock:  # shared loads of the stream finish on several threads
            self.stats.records += len(records)
            self.stats.batches += 1
            self.stats.changed_rows += changed

    def _gave_way(self, slot: Slot) -> None:
        """The load ran out of patience and rolled back: whatever the load before it waited for
        is free. Wait for the turn holding nothing (the caller then loads again). If the load
        before it then finished about at once, it was waiting for this one: the stream's next
        loads run one at a time."""
        rolled_back = time.monotonic()
        slot.wait_turn()
        waited = time.monotonic() - rolled_back
        sent = slot.sent or 0.0
        if blocked_by_it(sent, waited):
            self._one_at_a_time = True
            why = (
                f"it was waiting for this one (it committed {waited:.1f} s after): they lock the same "
                "rows (a trigger?); the stream's next loads run one at a time"
            )
        else:
            why = f"it was still loading ({waited:.1f} s more)"
        self.log(
            "INFO",
            f"{self.plan.descriptor}: a load sent beside the one before it waited "
            f"{patience(sent):.0f} s for it to commit, rolled back and loads again after it: {why}",
        )

    @property
    def _finds_new_keys(self) -> bool:
        """A dedup batch that holds each key once may ask the merger which of its keys the
        target lacks (``merger.absent_keys``) and append those rows directly."""
        plan = self.dedup_plan
        return (
            self.merger.finds_absent_keys
            and self._exact_key
            and plan is not None
            and plan.tombstones is None
            and plan.deleted_at is None
        )

    def _encoded(self, parts: Iterator[Batch]) -> Iterator[Batch]:
        """Parts as built, each with what the bulk loader makes of it ahead (``Batch.encoded``)
        where it will be loaded as it is: into the target, not a staging table (whose rows get
        a sequence column), so appends and the new keys of a dedup that finds them (while the
        stream's last dedup load sent every row straight to the target: a batch of stored keys
        is usually followed by more); and where the stream's loads run one at a time (where
        they run side by side, each lane makes its own parts' in parallel, and the one builder
        thread would do that work in series)."""
        direct = not self.dedup or (self._finds_new_keys and not self._staged_last)
        alone = not self.shared_loads or len(self.lanes) == 1
        for part in parts:
            if direct and alone:
                part.encoded = self.bulk.encode(part)
            yield part

    @staticmethod
    def _parts(built: list[Batch], source: Iterator[Batch]) -> Iterator[Batch]:
        """The parts built so far, then the rest as they are built (kept for a reload)."""
        yield from list(built)
        for part in source:
            built.append(part)
            yield part

    def _load_parts(self, parts: Iterator[Batch], slot: Slot) -> None:
        """The batch's parts in one transaction on the slot's connection, committed in turn."""
        assert self.target is not None
        conn = self.lanes[slot.lane]
        with self.transaction(conn):
            if self.dedup:
                assert conn is self.conn
                self._stage_and_merge(parts)
            else:
                self.bulk.load_batches(conn, self.target, parts, self.write)
            slot.sent = time.monotonic() - slot.started
            slot.wait_turn(patience(slot.sent))

    def _stage_and_merge(self, parts: Iterator[Batch]) -> None:
        """append_dedup, in the caller's transaction: the batch into the staging table, then
        merged into the target (told whether the batch holds each key once).

        A batch that holds each key once, of a stream without tombstones, first asks the
        merger which of its keys the target does not hold (``merger.absent_keys``): those rows
        are appended to the target directly, and only the others are staged and merged."""
        assert self.target is not None
        assert self.staging is not None
        assert self.dedup_plan is not None
        plan = self.dedup_plan
        self.bulk.clear_staging(self.conn, self.staging)
        if self._finds_new_keys:
            whole = list(parts)  # the whole batch: which rows go where depends on all of it
            parts = iter(whole)
            tables = [part.table for part in whole]
            if tables and merge.keys_unique(tables, plan.key, self._key_types):
                self.lock()
                keys = pa.concat_tables([t.select(list(plan.key)) for t in tables])
                absent = self.merger.absent_keys(self.conn, self.target, keys, plan)
                if absent is not None:
                    if len(absent) != keys.num_rows:
                        raise SystemFailure(f"absent_keys answered {len(absent)} rows for {keys.num_rows}")
                    self._split_and_merge(whole, absent)
                    return
        self._staged_last = True
        staged: list[pa.Table] = []
        self.bulk.load_batches(self.conn, self.staging, _with_sequence(parts, staged), self.write)
        unique = self._exact_key and merge.keys_unique(staged, plan.key, self._key_types)
        self.lock()  # only now: staging is private to the session
        self.merger.dedup(
            self.conn, self.target, self.staging, replace(plan, staged_unique=unique), self.write
        )

    def _split_and_merge(self, parts: list[Batch], absent: pa.BooleanArray) -> None:
        """The rows of ``parts`` whose key the target lacks (``absent``) appended to it, the
        others staged and merged (the batch holds each key once)."""
        target, staging, plan = self.target, self.staging, self.dedup_plan
        assert target is not None
        assert staging is not None
        assert plan is not None
        direct: list[_Picked] = []
        rest: list[_Picked] = []
        start = 0
        for k, part in enumerate(parts):
            n = part.table.num_rows
            mask = absent.slice(start, n)
            start += n
            chosen = pc.indices_nonzero(mask)
            if len(chosen):
                direct.append(_Picked.of(k, part, chosen))
            if len(chosen) < n:
                rest.append(_Picked.of(k, part, pc.indices_nonzero(pc.invert(mask))))
        bulk, conn, write = self.bulk, self.conn, self.write
        self._staged_last = bool(rest)
        if direct:
            _mapped(direct, lambda: bulk.load_batches(conn, target, _batches(direct), write))
        if rest:
            staged: list[pa.Table] = []
            _mapped(
                rest, lambda: bulk.load_batches(conn, staging, _with_sequence(_batches(rest), staged), write)
            )
            self.merger.dedup(conn, target, staging, replace(plan, staged_unique=True), write)

    # ------------------------------------------------------------------ completion
    def complete(self) -> None:
        """The source finished the stream: swap in a refreshed table, drop old generations."""
        if self.completed:
            return
        self.completed = True
        assert self.target is not None
        with self.transaction():
            if self.replaces or self.drops_old_generations:
                self.lock()
            if self.replaces:
                final = sa.Table(self.plan.name, sa.MetaData(), schema=self.plan.namespace)
                self.tables.swap(self.conn, self.target, final, self.write)
                self.log("INFO", f"{self.plan.descriptor}: refreshed table swapped in")
            elif self.drops_old_generations:
                assert self.stream.minimum_generation_id is not None
                self.conn.execute(
                    merge.delete_old_generations(self.target, self.stream.minimum_generation_id)
                )

    @property
    def drops_old_generations(self) -> bool:
        """A merge refresh (``0 < minimum_generation_id < generation_id``): on completion the rows
        of older generations go. (A refresh loading into its final table drops nothing: the
        table was found at the generation.)"""
        return not self.refresh and bool(self.stream.minimum_generation_id)

    def close(self) -> None:
        """Drop the session-private tables (they would disappear with the session anyway)."""
        for table in (self.staging, self.tombstones):
            if table is not None:
                try:
                    with self.conn.begin():
                        self.tables.drop_table(self.conn, table)
                except sa.exc.SQLAlchemyError:
                    pass
        self.staging = self.tombstones = None


@dataclass(frozen=True)
class _Picked:
    """Some rows of a part: the part's index in the batch, the rows, and them as a batch."""

    part: int
    rows: pa.Array
    batch: Batch

    @classmethod
    def of(cls, k: int, part: Batch, rows: pa.Array) -> _Picked:
        if len(rows) == part.table.num_rows:
            return cls(k, rows, part)
        picked: list[int] = rows.to_pylist()
        where = {old: new for new, old in enumerate(picked)}
        changes = {where[r]: c for r, c in part.row_changes.items() if r in where}
        changed = sorted(where[r] for r in part.changed if r in where)
        table = part.table.take(rows)
        return cls(k, rows, Batch(table, len(changed), changed, part.empty_meta, changes))


def _batches(picked: list[_Picked]) -> Iterator[Batch]:
    for p in picked:
        yield p.batch


def _mapped(picked: list[_Picked], load: Callable[[], None]) -> None:
    """Run ``load`` of the batches of ``picked``; a refused value is reported at its row of the
    whole batch."""
    try:
        load()
    except ValueRefused as refused:
        p = picked[refused.part]
        raise ValueRefused(
            p.part, p.rows[refused.row].as_py(), refused.column, refused.reason, refused.detail
        ) from refused


def _with_sequence(parts: Iterator[Batch], seen: list[pa.Table]) -> Iterator[Batch]:
    """Parts with the arrival order of their rows (across the parts) as a last column; each part
    sent is added to ``seen``."""
    start = 0
    for part in parts:
        seen.append(part.table)
        n = part.table.num_rows
        table = part.table.append_column(merge.SEQ, pa.array(range(start, start + n), pa.int64()))
        start += n
        yield Batch(table, part.changed_rows, part.changed, part.empty_meta, part.row_changes)
