"""The full-refresh read jobs (``SourceDialect.read_job``): which read a stream gets, and how.

- a table (or partitioned table) with a primary key: key-range chunks (:mod:`.keyset`);
- a table, materialized view or partitioned table without one: tuple-id chunks (:mod:`.ctid`);
- views and foreign tables (and a partitioned table some of whose partitions cannot be read by
  tuple id): one query through a server-side cursor, streamed, resumable only as a whole.

Chunked reads run on ``max_parallel_chunks`` connections under one exported snapshot
(:mod:`.parallel`), through ``COPY``, with every RECORD line rendered by the server
(:mod:`.encoder`); in Arrow frames, as typed frames of native values read with ADBC
(:mod:`.native`) when the driver is installed and connects, else as typed frames of text
(:mod:`.columns`). Cursor-incremental reads stay with the generic plans (``read_job`` returns
None for them) and use the same server-side rendering through the dialect's record encoder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.string import ByteaBinaryLoader

from dbkit.protocol import COLUMNS, NATIVE, batch_from_lines, encode_frame, frame_kind, now_ms
from dbkit.source import ColumnInfo, FullRefreshState, ReadChunk, ReadContext, StreamState
from source_postgres.columns import FrameColumns, frame_columns, parse_rows
from source_postgres.ctid import CtidPlan
from source_postgres.encoder import frame_row_sql, line_sql
from source_postgres.keyset import KeysetPlan
from source_postgres.native import NativeColumns, NativeReader, adbc_available, native_columns
from source_postgres.parallel import SnapshotGroup
from source_postgres.types import Sql, compose

CHUNK_BYTES = 24 * 1024 * 1024
"""About how much data one chunk holds (the read buffers ``workers + 1`` chunks at most)."""
STREAM_BATCH = 2_000


def parallel_workers(requested: int) -> int:
    """The chunk readers one stream uses: ``max_parallel_chunks``, at most the CPU count."""
    return max(1, min(requested, os.cpu_count() or 1))


class _Job:
    """Shared parts: warnings, the line query, chunk sizing, the final state."""

    def __init__(self, context: ReadContext) -> None:
        self.context = context
        self.warnings: list[str] = []
        self.frames = context.arrow  # chunks in Arrow frames (dbkit.protocol.arrow)
        self.columns: FrameColumns | None = None  # chunks in typed frames (source_postgres.columns)
        self.native: NativeColumns | None = None  # chunks in native typed frames (source_postgres.native)
        table = context.table
        self.relation = sql.Identifier(table.namespace or "public", table.name)
        # bytes per row before anything is measured: the heap's, doubled for the JSON around it
        self.initial_row_bytes: float | None = None
        if table.row_estimate and table.byte_estimate:
            self.initial_row_bytes = 2.0 * table.byte_estimate / table.row_estimate

    def line(self) -> Sql:
        context = self.context
        if self.native is not None:
            return self.native.select
        if self.columns is not None:
            return self.columns.select
        if self.frames:
            return frame_row_sql(context.columns, context.record_members)
        return line_sql(context.descriptor, now_ms(), context.columns, context.record_members)

    def chunk(self, blocks: list[Any], records: int, checkpoint: StreamState | None) -> ReadChunk:
        """A chunk of the read: its RECORD lines, or in Arrow frames one frame of them."""
        if not self.frames or records == 0:
            return ReadChunk(blocks if records else [], records, checkpoint)
        descriptor = self.context.descriptor
        if self.native is not None:
            (batch,) = blocks
            frame = encode_frame(descriptor.name, descriptor.namespace, now_ms(), batch, kind=NATIVE)
            return ReadChunk([frame], records, checkpoint)
        if self.columns is not None:
            typed = parse_rows(blocks, self.columns)
            if typed.num_rows != records:
                raise ValueError(f"a chunk of {records} records gave {typed.num_rows} frame rows")
            frame = encode_frame(descriptor.name, descriptor.namespace, now_ms(), typed, kind=COLUMNS)
            return ReadChunk([frame], records, checkpoint)
        batch = batch_from_lines(blocks)
        if batch.num_rows != records:
            raise ValueError(f"a chunk of {records} records gave {batch.num_rows} frame rows")
        frame = encode_frame(descriptor.name, descriptor.namespace, now_ms(), batch)
        return ReadChunk([frame], records, checkpoint)

    @property
    def imported(self) -> str | None:
        """The CDC snapshot to read under (``ReadContext.snapshot``'s exported name), if any."""
        point = self.context.snapshot
        token = getattr(point, "token", None)
        return token if isinstance(token, str) else None

    def final_state(self) -> StreamState:
        return FullRefreshState.done()


class ChunkedJob(_Job):
    """A full refresh in chunks (key ranges or tuple-id ranges), in parallel under one snapshot."""

    def __init__(self, context: ReadContext, key: Sequence[ColumnInfo] | None, workers: int) -> None:
        super().__init__(context)
        self.key = list(key) if key is not None else None
        self.workers = workers
        self.after: list[str] | None = None
        self.prior_ctid: FullRefreshState | None = None
        prior = context.prior_state
        if isinstance(prior, FullRefreshState) and not prior.complete:
            by = prior.by
            if self.key is not None and by == [c.name for c in self.key] and prior.after is not None:
                self.after = [str(v) for v in prior.after]
            elif self.key is None and by == ["ctid"]:
                self.prior_ctid = prior
            else:
                self.warnings.append(
                    "the saved full-refresh position does not match the table's key; reading it all"
                )

    def rows(self, group: SnapshotGroup) -> Callable[[], int]:
        target = max(1, self.context.checkpoint_records)

        def rows() -> int:
            per_row = group.stats.bytes_per_row() or self.initial_row_bytes
            if per_row:
                return max(1, min(target, int(CHUNK_BYTES / per_row)))
            return target

        return rows

    def chunks(self) -> Iterator[ReadChunk]:
        context = self.context
        workers = self.workers
        # tables are locked before the snapshot is taken (see SnapshotGroup._lock_first). A
        # materialized view cannot be: reading it takes the lock; its one rewrite, REFRESH, writes
        # frozen rows, which every snapshot sees, so nothing is missed.
        lock = self.relation if context.table.extra.get("relkind") in ("r", "p") else None
        native = self._native_reader()
        with SnapshotGroup(
            context.database, workers, context.cancelled, lock, self.imported, native
        ) as group:
            if group.native_failure is not None:
                self.warnings.append(
                    f"the ADBC driver could not connect ({group.native_failure}); reading with psycopg"
                )
            self.native = group.native.columns if group.native is not None else None
            if not group.locked:
                group.coordinator.execute(compose("SELECT FROM {} LIMIT 0", self.relation))
            yield from self._read(group)

    def _native_reader(self) -> NativeReader | None:
        """The ADBC reader of a read in ``native`` frames (None: the driver is not installed, the
        read's records carry more than its columns, or the output is not Arrow)."""
        context = self.context
        if not self.frames or frame_kind() != NATIVE or not adbc_available():
            return None
        spec = native_columns(context.columns, context.record_members)
        dialect = context.database.dialect
        params = getattr(dialect, "replication_params", None)
        if spec is None or params is None:
            return None
        return NativeReader(params(), spec, dialect.describe_target())

    def _read(self, group: SnapshotGroup) -> Iterator[ReadChunk]:
        # the table (and its partitions) is held for the read: a rewrite or DROP waits for us
        if self.frames and self.native is None and frame_kind() in (COLUMNS, NATIVE):
            self.columns = frame_columns(self.context.columns, self.context.record_members)
        if self.key is not None:
            plan: KeysetPlan | CtidPlan = KeysetPlan(
                group, self.relation, self.key, self.line, self.rows(group), self.after
            )
        else:
            plan = CtidPlan(
                group,
                int(self.context.table.extra["oid"]),
                self.line,
                self.rows(group),
                self.prior_ctid.position if self.prior_ctid is not None else None,
                self.warnings.append,
            )
            if plan.unreadable():
                self.warnings.append(
                    "some partitions cannot be read by tuple id (foreign, or not readable directly): "
                    "the table is read in one query, resumable only as a whole"
                )
                self.frames = False  # one streamed query: RECORD lines
                self.columns = None
                self.native = None
                yield from stream_whole(group.coordinator, self.relation, self.line())
                return
        for chunk, blocks, records in group.read(plan.chunks()):
            yield self.chunk(blocks, records, chunk.checkpoint)


def stream_whole(conn: Any, relation: Sql, line: Sql) -> Iterator[ReadChunk]:
    """One query through a server-side cursor, in batches of lines (no resumable point)."""
    with conn.cursor(name="dbkit_whole", binary=True) as cur:
        cur.adapters.register_loader("text", ByteaBinaryLoader)
        cur.itersize = STREAM_BATCH
        cur.execute(compose("SELECT {} || E'\\n' FROM {}", line, relation))
        while rows := cur.fetchmany(STREAM_BATCH):
            yield ReadChunk([r[0] for r in rows], len(rows), None)


class WholeJob(_Job):
    """Views and foreign tables: one query, streamed, a STATE only at the end."""

    def chunks(self) -> Iterator[ReadChunk]:
        self.frames = False  # one streamed query: RECORD lines
        # a view is locked (with the tables under it) before the snapshot; a foreign table cannot be
        lock = self.relation if self.context.table.extra.get("relkind") == "v" else None
        with SnapshotGroup(self.context.database, 0, self.context.cancelled, lock, self.imported) as group:
            yield from stream_whole(group.coordinator, self.relation, self.line())


def read_job(context: ReadContext, workers: int) -> ChunkedJob | WholeJob | None:
    """The read of one stream (None: a cursor-incremental read, for the generic tie-safe plan);
    ``workers`` is the number of connections reading chunks at once."""
    if context.cursor is not None:
        return None
    relkind = context.table.extra.get("relkind")
    key = context.table.key_columns()
    if key is not None and relkind in ("r", "p", "m"):
        return ChunkedJob(context, key, workers)
    if relkind in ("r", "p", "m") and context.table.extra.get("table_select", True):
        return ChunkedJob(context, None, workers)
    return WholeJob(context)
