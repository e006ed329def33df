"""The CDC read: GLOBAL state, the snapshot -> log handover, the upper bound, change records.

One read (``SqlSource.read`` when the dialect offers a :class:`~dbkit.source.cdc.CdcReader`):

1. The saved GLOBAL state gives the shared log position ``S`` and each CDC stream's snapshot
   progress. ``S`` is checked (``CdcReader.position_problem``): a log that can no longer be read
   from ``S`` is a config_error saying what to do, or, with ``invalid_cdc_cursor_position_behavior:
   "Re-sync data"``, a new snapshot of every stream. Then ``S`` is acknowledged: it is the position
   of the state the destination echoed (the state this read starts from), and no other position is
   ever acknowledged.
2. The upper bound ``U`` is the log's position now; changes committed later wait for the next read.
3. Streams in incremental mode are CDC streams. Those without a finished snapshot are snapshotted
   (the resumable full-refresh jobs, checkpoints in the GLOBAL state's stream part) under one
   :class:`~dbkit.source.cdc.SnapshotPoint`; their records carry its meta (``_ab_cdc_lsn``/
   ``_ab_cdc_cursor`` = the point's position). A first read sets ``S`` to the point's position.
   Streams in full-refresh mode are read as standard full refreshes, whole each time: they keep
   no part in the GLOBAL state (a part there always means a CDC snapshot).
4. The changes of every CDC stream after ``S`` up to ``U`` are read and emitted as records with
   the meta columns (deletes carry the before image and ``_ab_cdc_deleted_at``); GLOBAL states with
   the reached position follow them at the checkpoint cadence, and a final one ends the read.

Why no change is lost, also across killed and resumed reads: a snapshot row is labelled with a
position at or before the point it was read at, and every change after the label is emitted (the
label is at or after ``S``, and changes are read from ``S``; the position moves past a change only
in a STATE after its record). In a dedup destination the newest cursor value wins per key, so for
each key the destination ends with the newest of (its snapshot row, the changes after the label):
a change at or before the point is in the snapshot row too and loses or ties with the same
content, a change after it wins, and a delete after it removes the row. A snapshot resumed in a
later read gets a new, later label for the rows it has not read yet, which the same argument
covers; changes of a stream are emitted even while its snapshot is unfinished (they are needed
by the rows already read).

A TRUNCATE cannot be expressed as records (a dedup destination would keep every row it holds).
Each stream's part of the GLOBAL state keeps its snapshot label (``snapshot_at``: the position
column value of the first snapshot its rows came from; a resumed snapshot keeps the first, since
rows read under it are in the destination). A truncate at or before the label is already in the
snapshot and is skipped. A later one stops the read at it: the changes before it are emitted and
a STATE at the last position before it written, then a config_error names the table and the
position and says to refresh the stream (the platform's Refresh, ``dbkit sync --refresh``). A
refresh drops the stream's part, so the next read snapshots it again with a label after the
truncate, and the destination replaces the stream's rows.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from operator import attrgetter
from typing import Any

from dbkit.errors import ConfigError, DbkitError, SystemFailure
from dbkit.protocol import ConfiguredStream, StreamDescriptor, SyncMode
from dbkit.protocol import messages as msg
from dbkit.source.cdc.contract import (
    DELETED_AT,
    UPDATED_AT,
    CdcReader,
    Change,
    ImageEncoder,
    Operation,
    SnapshotPoint,
)
from dbkit.source.jobs import Cancelled
from dbkit.source.model import ColumnInfo, TableInfo
from dbkit.source.reader import SourceReader, StreamOutcome, missing_table
from dbkit.source.records import append_members, json_members
from dbkit.source.state import CDC_MODE, FullRefreshState, GlobalState, StreamState, parse_global_state
from dbkit.threads import ContextThreadPoolExecutor

_GC_YOUNG = 20_000


class GlobalStates:
    """The GLOBAL state of one CDC read and its emission (thread-safe: snapshot jobs of several
    streams write through it). Every STATE is written after the lines it covers, under one lock,
    with ``sourceStats.recordCount`` counting every record written since the previous STATE."""

    def __init__(
        self,
        reader: SourceReader,
        cdc: CdcReader[Any],
        position: Any,
        parts: Mapping[StreamDescriptor, FullRefreshState],
        labels: Mapping[StreamDescriptor, int],
    ) -> None:
        self._writer = reader.writer
        self._cdc = cdc
        self._lock = threading.Lock()
        self.position = position
        self.parts: dict[StreamDescriptor, FullRefreshState] = dict(parts)
        self.labels: dict[StreamDescriptor, int] = dict(labels)
        self._since = 0

    def lines(self, lines: list[bytes], records: int) -> None:
        with self._lock:
            self._writer.write_lines(lines)
            self._since += records

    def progress(self, descriptor: StreamDescriptor, state: StreamState) -> None:
        """A CDC stream's snapshot reached ``state`` (its lines are written)."""
        if not isinstance(state, FullRefreshState):
            raise SystemFailure(f"stream {descriptor}: a snapshot job yielded a {state.mode} state")
        with self._lock:
            self.parts[descriptor] = state
            self._emit()

    def move(self, position: Any) -> None:
        """The change log was read up to ``position`` (the records before it are written)."""
        with self._lock:
            self.position = position
            self._emit()

    def emit(self) -> None:
        with self._lock:
            self._emit()

    def _emit(self) -> None:
        state = GlobalState(
            position=self._cdc.position_to_state(self.position), streams=self.parts, labels=self.labels
        )
        self._writer.write(msg.global_state(state.shared_json(), state.stream_states_json(), self._since))
        self._writer.flush()
        self._since = 0


class SnapshotSink:
    """A CDC stream's snapshot: its checkpoints become its part of the GLOBAL state."""

    def __init__(self, states: GlobalStates, descriptor: StreamDescriptor) -> None:
        self.states = states
        self.descriptor = descriptor

    def lines(self, lines: list[bytes], records: int) -> None:
        self.states.lines(lines, records)

    def checkpoint(self, state: StreamState, records: int) -> None:
        self.states.progress(self.descriptor, state)

    def final(self, state: StreamState, records: int) -> None:
        self.states.progress(self.descriptor, FullRefreshState.done())


class UnsavedSink:
    """A full-refresh stream in a CDC read: its records count in the next GLOBAL state; it keeps
    no position (the next read reads it whole again)."""

    def __init__(self, states: GlobalStates) -> None:
        self.states = states

    def lines(self, lines: list[bytes], records: int) -> None:
        self.states.lines(lines, records)

    def checkpoint(self, state: StreamState, records: int) -> None:
        pass

    def final(self, state: StreamState, records: int) -> None:
        pass


def cdc_columns(table: TableInfo, configured: ConfiguredStream, meta: Sequence[str]) -> list[ColumnInfo]:
    """The table columns a CDC stream reads: the configured properties but the meta columns."""
    wanted = [name for name in configured.stream.properties if name not in meta] or [
        c.name for c in table.columns
    ]
    missing = [name for name in wanted if table.column(name) is None]
    if missing:
        raise ConfigError(
            f"stream {table.descriptor}: column(s) {', '.join(map(repr, missing))} no longer exist; "
            "refresh the source schema (discover) and update the connection",
            stream=table.descriptor,
        )
    chosen = set(wanted)
    return [c for c in table.columns if c.name in chosen]


def check_cdc_table(table: TableInfo) -> None:
    """A CDC stream needs a table with a primary key (deletes and updates are applied by key)."""
    if table.kind != "table" or not table.primary_key:
        what = "a view" if table.kind != "table" else "a table without a primary key"
        raise ConfigError(
            f"stream {table.descriptor} is {what}: change data capture cannot apply its changes "
            "by key; configure it as full_refresh",
            stream=table.descriptor,
        )


class CdcRead:
    """One CDC read (see the module doc); made by ``SqlSource.read``, :meth:`run` once."""

    def __init__(self, reader: SourceReader, cdc: CdcReader[Any]) -> None:
        self.reader = reader
        self.cdc = cdc
        cdc.log = self.log
        self.meta_names = [cdc.position_column, *cdc.meta_schema, UPDATED_AT, DELETED_AT]
        self.outcomes: dict[StreamDescriptor, StreamOutcome] = {}

    def log(self, level: str, text: str) -> None:
        self.reader.log(level, text)

    def run(self) -> list[StreamOutcome]:
        try:
            return self._run()
        finally:
            self.cdc.close()

    # ------------------------------------------------------------------ the read
    def _run(self) -> list[StreamOutcome]:
        r = self.reader
        cdc = self.cdc
        tables = r.tables()
        streams = list(r.catalog)
        cdc_streams = [s for s in streams if s.sync_mode is SyncMode.INCREMENTAL]
        cdc_names = {s.descriptor for s in cdc_streams}
        for s in streams:
            self.outcomes[s.descriptor] = StreamOutcome(s.descriptor)

        position, parts, labels = self._start(cdc_names)
        upper = cdc.current_position()
        lag = cdc.lag()
        if lag is not None:
            self.log("INFO", f"CDC: {lag.describe()}")
        states = GlobalStates(r, cdc, position, parts, labels)

        # streams that can be read at all (the others fail now, with their own error)
        readable: dict[StreamDescriptor, TableInfo] = {}
        for s in cdc_streams:
            table = tables.get(s.descriptor)
            r.writer.write(msg.stream_status(s.descriptor, "STARTED"))
            try:
                if table is None:
                    raise missing_table(s.descriptor)
                check_cdc_table(table)
            except DbkitError as exc:
                self.outcomes[s.descriptor].error = r.failure(exc, s.descriptor)
                continue
            readable[s.descriptor] = table
        pending = [
            s
            for s in cdc_streams
            if s.descriptor in readable
            and not (s.descriptor in states.parts and states.parts[s.descriptor].complete)
        ]

        full_refreshes: list[Callable[[], None]] = [
            partial(self._full_refresh, s, tables.get(s.descriptor), states)
            for s in streams
            if s.descriptor not in cdc_names
        ]
        if pending or position is None:
            with cdc.snapshot([readable[s.descriptor] for s in pending]) as point:
                if states.position is None:
                    states.position = point.position
                label = point.meta.get(cdc.position_column)
                for s in pending:
                    if s.descriptor not in states.parts and isinstance(label, int):
                        states.labels[s.descriptor] = label  # a new snapshot (not a resumed one)
                snapshots: list[Callable[[], None]] = [
                    partial(self._snapshot, s, readable[s.descriptor], point, states) for s in pending
                ]
                self._parallel(snapshots + full_refreshes)
        else:
            self._parallel(full_refreshes)

        if readable and not r.cancel.event.is_set():
            try:
                self._changes(states, upper, readable)
            except Exception as exc:
                error = r.failure(exc, next(iter(readable)))
                error.stream = None
                for d in readable:
                    if self.outcomes[d].error is None:
                        self.outcomes[d].error = error
        elif not r.cancel.event.is_set():
            states.emit()
        lag = cdc.lag()
        if lag is not None:
            self.log("INFO", f"CDC: {lag.describe()}")
        for s in cdc_streams:
            status = "INCOMPLETE" if self.outcomes[s.descriptor].error is not None else "COMPLETE"
            r.writer.write(msg.stream_status(s.descriptor, status))
        r.writer.flush()
        return [self.outcomes[s.descriptor] for s in streams]

    def _start(
        self, cdc_names: set[StreamDescriptor]
    ) -> tuple[Any, dict[StreamDescriptor, FullRefreshState], dict[StreamDescriptor, int]]:
        """The saved position (checked, then acknowledged), snapshot parts and snapshot labels of
        the CDC streams."""
        r = self.reader
        cdc = self.cdc
        if r.state.empty:
            return None, {}, {}
        if not r.state.is_global:
            self.log(
                "WARN",
                "the saved state holds per-stream states of standard reads: change data capture "
                "starts with a new snapshot of every stream",
            )
            return None, {}, {}
        saved = self._migrated() or parse_global_state(r.state.shared, r.state.streams)
        if saved is None:
            return None, {}, {}
        position = cdc.position_from_state(saved.position)
        problem = cdc.position_problem(position)
        if problem is not None:
            if cdc.options.resync_on_invalid_position:
                self.log(
                    "WARN", f"CDC: {problem}; reading every stream again from a new snapshot, as configured"
                )
                return None, {}, {}
            raise ConfigError(
                f"the saved CDC position cannot be read from: {problem}. Reset the connection's "
                "data (every stream is read again from a new snapshot), or set "
                "invalid_cdc_cursor_position_behavior to 'Re-sync data' to do that automatically"
            )
        cdc.acknowledge(position)
        parts = {d: s for d, s in saved.streams.items() if d in cdc_names}
        labels = {d: v for d, v in saved.labels.items() if d in parts}
        dropped = sorted(str(d) for d in saved.streams if d not in cdc_names)
        if dropped:
            self.log(
                "INFO",
                f"CDC: stream(s) {', '.join(dropped)} are no longer read with CDC; their snapshot "
                "progress is dropped (they are snapshotted again if they come back)",
            )
        return position, parts, labels

    def _migrated(self) -> GlobalState | None:
        """The reader's reading of a shared state dbkit did not write (``CdcReader.migrate_state``)."""
        shared = self.reader.state.shared
        if not shared or shared.get("mode") == CDC_MODE:
            return None
        migrated = self.cdc.migrate_state(shared, self.reader.state.streams)
        if migrated is not None:
            done = sorted(str(d) for d, s in migrated.streams.items() if s.complete)
            self.log(
                "INFO",
                "CDC: the saved state was written by another connector; resuming from its log "
                f"position, snapshots done: {', '.join(done) or 'none'}",
            )
        return migrated

    def _parallel(self, reads: Sequence[Callable[[], None]]) -> None:
        r = self.reader
        workers = max(1, min(r.options.max_concurrent_streams, len(reads)))
        if not r.dialect.capabilities.concurrent_reads:
            workers = 1
        if workers == 1:
            for read in reads:
                read()
            return
        with ContextThreadPoolExecutor(max_workers=workers, thread_name_prefix="dbkit-cdc") as pool:
            for future in [pool.submit(read) for read in reads]:
                future.result()

    # ------------------------------------------------------------------ snapshots
    def _snapshot(
        self, configured: ConfiguredStream, table: TableInfo, point: SnapshotPoint[Any], states: GlobalStates
    ) -> None:
        r = self.reader
        descriptor = configured.descriptor
        outcome = self.outcomes[descriptor]
        if r.cancel.event.is_set():
            outcome.error = r.cancel.reason
            return
        try:
            columns = cdc_columns(table, configured, self.meta_names)
            members = json_members({**point.meta, UPDATED_AT: point.taken_at, DELETED_AT: None})
            outcome.records += r.read_table(
                configured,
                table,
                columns,
                None,
                states.parts.get(descriptor),
                SnapshotSink(states, descriptor),
                record_members=members,
                snapshot=point,
            )
        except Exception as exc:
            outcome.error = r.failure(exc, descriptor)

    def _full_refresh(
        self, configured: ConfiguredStream, table: TableInfo | None, states: GlobalStates
    ) -> None:
        outcome = self.reader._read_one(configured, table, UnsavedSink(states))
        self.outcomes[configured.descriptor] = outcome

    # ------------------------------------------------------------------ changes
    def _changes(
        self, states: GlobalStates, upper: Any, tables: Mapping[StreamDescriptor, TableInfo]
    ) -> None:
        r = self.reader
        cdc = self.cdc
        configured = {d: r.catalog.get(d) for d in tables}
        encoders: dict[StreamDescriptor, ImageEncoder] = {}
        for d, table in tables.items():
            stream = configured[d]
            assert stream is not None
            encoders[d] = cdc.encoder(table, cdc_columns(table, stream, self.meta_names))
        options = r.options
        since = 0
        last = time.monotonic()
        reached: Any = None
        batches = cdc.changes(states.position, upper, tables)
        # every change makes a few container objects that reference counting frees: the cyclic
        # collector's young-generation passes (every 700 allocations by default) cost about a
        # fifth of the loop's CPU; passes every 20,000 keep the garbage it could find small
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], _GC_YOUNG), *thresholds[1:])
        try:
            for batch in batches:
                if r.cancel.event.is_set():
                    raise Cancelled()
                stop = self._truncate_stop(batch.changes, states.labels)
                if stop is not None:
                    before = batch.changes[:stop]
                    lines = self._lines(before, encoders)
                    states.lines(lines, len(lines))
                    for d, count in _counts(before).items():
                        self.outcomes[d].records += count
                    if reached is not None:
                        states.move(reached)
                    else:
                        states.emit()
                    raise self._truncated(batch.changes[stop])
                if batch.changes:
                    lines = self._lines(batch.changes, encoders)
                    states.lines(lines, len(lines))
                    since += len(lines)
                    for d, count in _counts(batch.changes).items():
                        self.outcomes[d].records += count
                if batch.position is None:
                    continue
                reached = batch.position
                now = time.monotonic()
                if since >= options.checkpoint_records or now - last >= options.checkpoint_seconds:
                    states.move(reached)
                    since = 0
                    last = now
        finally:
            gc.set_threshold(*thresholds)
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        if reached is not None:
            states.move(reached)
        else:
            states.emit()

    def _truncate_stop(self, changes: Sequence[Change], labels: Mapping[StreamDescriptor, int]) -> int | None:
        """The index of the first truncate the read must stop at: one after its stream's snapshot
        label (or of a stream without a label). Truncates at or before it are in the snapshot."""
        if Operation.TRUNCATE not in map(_OPERATION, changes):
            return None
        column = self.cdc.position_column
        for i, change in enumerate(changes):
            if change.operation is not Operation.TRUNCATE:
                continue
            label = labels.get(change.stream)
            value = change.meta.get(column)
            if label is not None and isinstance(value, int) and value <= label:
                self.log(
                    "INFO",
                    f"stream {change.stream}: the truncate at {column} {value} is before its snapshot "
                    f"({column} {label}), which already reflects it",
                )
                continue
            return i
        return None

    def _truncated(self, change: Change) -> ConfigError:
        column = self.cdc.position_column
        at = change.meta.get(column)
        return ConfigError(
            f"stream {change.stream}: the table was truncated (at {column} {at}, committed "
            f"{change.committed_at}). A truncate cannot be sent as records, so the read stopped "
            "before it: every change before it was read and checkpointed. Refresh the stream "
            f"(the platform's Refresh of {change.stream.name}, or `dbkit sync --refresh "
            f"{change.stream.name}`): it is snapshotted again after the truncate and its rows "
            "replaced in the destination",
            stream=change.stream,
        )

    def _lines(
        self, changes: Sequence[Change], encoders: Mapping[StreamDescriptor, ImageEncoder]
    ) -> list[bytes]:
        """RECORD lines for changes, encoded a run of one stream's changes at a time."""
        out: list[bytes] = []
        now = msg.now_ms()
        for run in _runs(changes):
            first = run[0]
            if first.operation is Operation.TRUNCATE:
                continue  # before the stream's snapshot (see _truncate_stop): nothing to send
            encoder = encoders.get(first.stream)
            if encoder is None:
                continue  # a table this read does not want: the reader should have skipped it
            prefix, suffix = msg.record_envelope(first.stream, now)
            datas, problems = encoder.encode([c.image or {} for c in run])
            # the meta members are the same for every change of a transaction (and kind): rendered
            # once for a run of equal ones (readers pass one meta object per transaction)
            delete = Operation.DELETE
            last_meta: Mapping[str, Any] | None = None
            last_at: str | None = None
            last_delete = False
            members = b""
            closed = opened = suffix  # with the members: after data[:-1], and for data {}
            for i, (change, data) in enumerate(zip(run, datas, strict=True)):
                meta = change.meta
                at = change.committed_at
                is_delete = change.operation is delete
                if meta is not last_meta or at is not last_at or is_delete is not last_delete:
                    if (
                        last_meta is None
                        or is_delete is not last_delete
                        or at != last_at
                        or not _same_values(last_meta, meta)
                    ):
                        values = {**meta, UPDATED_AT: at, DELETED_AT: at if is_delete else None}
                        members = json_members(values)
                        closed = (b"," + members + b"}" if members else b"}") + suffix
                        opened = b"{" + members + b"}" + suffix
                    last_meta, last_at, last_delete = meta, at, is_delete
                if problems and i in problems:
                    tail = msg.record_suffix_with_changes(problems[i])
                    out.append(prefix + append_members(data, members) + tail)
                elif data == b"{}":
                    out.append(prefix + opened)
                else:
                    out.append(prefix + data[:-1] + closed)
        return out


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two meta mappings surely render the same JSON: equal, with values of the same
    scalar types (1 equals 1.0 and True but is written otherwise; other values are not compared)."""
    if a is b:
        return True
    return a == b and all(type(v) is type(b[k]) and type(v) in _SCALARS for k, v in a.items())


_SCALARS = frozenset({str, int, bool, type(None)})


_STREAM = attrgetter("stream")
_OPERATION = attrgetter("operation")


def _uniform(changes: Sequence[Change]) -> bool:
    """Whether every change is a row change of the first one's stream (nearly every batch; found
    by C-level passes, the streams compared by identity first)."""
    if not changes:
        return False
    streams = list(map(_STREAM, changes))
    return streams.count(streams[0]) == len(streams) and Operation.TRUNCATE not in map(_OPERATION, changes)


def _runs(changes: Sequence[Change]) -> Iterator[Sequence[Change]]:
    """Consecutive changes of one stream and kind (truncate or row change)."""
    if _uniform(changes):
        yield changes
        return
    run: list[Change] = []
    for change in changes:
        if run and (
            change.stream != run[0].stream
            or (change.operation is Operation.TRUNCATE) != (run[0].operation is Operation.TRUNCATE)
        ):
            yield run
            run = []
        run.append(change)
    if run:
        yield run


def _counts(changes: Sequence[Change]) -> dict[StreamDescriptor, int]:
    if _uniform(changes):
        return {changes[0].stream: len(changes)}
    counts: dict[StreamDescriptor, int] = {}
    for change in changes:
        if change.operation is not Operation.TRUNCATE:
            counts[change.stream] = counts.get(change.stream, 0) + 1
    return counts
