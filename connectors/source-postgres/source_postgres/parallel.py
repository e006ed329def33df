"""Chunks of a table read in parallel under one snapshot, handed back in order.

A :class:`SnapshotGroup` opens a *coordinator* connection in a ``REPEATABLE READ, READ ONLY``
transaction, exports its snapshot (``pg_export_snapshot()``), and opens ``workers`` connections
that import it (``SET TRANSACTION SNAPSHOT``): every chunk sees the table exactly as it was when
the read began, whatever writers do meanwhile, so no row is read twice or missed between chunks.
The coordinator keeps its transaction (and its lock on the table) open for the whole read; it
also answers the planners' questions (identity, boundaries) inside the same snapshot.

:meth:`SnapshotGroup.read` runs each chunk's query on a worker, at most ``workers + 1`` chunks
ahead of the caller, and yields the chunks' lines in the order they were planned, so a STATE
after a chunk covers exactly the chunks before it. Memory is bounded by that window. Closing the
group (or the generator) cancels running queries and releases everything.

A chunk comes back as one value, not one row per line: the server joins the chunk's lines
(``string_agg(line || E'\n', '')``) and counts them, and ``COPY ... (FORMAT binary)`` sends
that as a single row, which Python takes as one block of bytes. Reading a row costs Python a
fixed amount whatever its size, so this takes most of the client's work (and the worker
threads' contention for the GIL) off a read (figures: ``bench/README.md``). The line count
(``count(*)``) comes from the server too, checked against ``count(line)``: a NULL line would be
a lost record, and raises. While a worker reads a chunk, it holds it twice (libpq's
buffer and the message), so chunks are sized in bytes (see :mod:`.jobs`); a chunk's text must
stay under PostgreSQL's 1 GB limit for one value.

A group given a :class:`~.native.NativeReader` reads the chunks with ADBC instead: its workers
are ADBC connections that import the same snapshot, each chunk's query runs as it is (the
driver's binary ``COPY``), and a chunk comes back as one typed frame's batch. When the driver
cannot connect (while psycopg could), the group says why (``native_failure``) and reads with
psycopg workers, as without one.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbkit import DbkitError
from dbkit.db import Database
from dbkit.source import Cancelled, StreamState
from source_postgres.native import NativeReader

# One row per chunk: (number of lines, number of non-NULL lines, the lines, each ended by a
# newline), in COPY's binary format (the text as it is: nothing escaped or quoted to undo).
# (``OFFSET 0`` keeps the chunk a subquery: pulled up, its line would be computed once per
# aggregate that reads it.)
BLOCK_QUERY = (
    "COPY (SELECT count(*), count(_dbkit_line), string_agg(_dbkit_line || E'\\n', '')"
    " FROM ({} OFFSET 0) AS _dbkit_chunk(_dbkit_line) HAVING count(*) > 0) TO STDOUT (FORMAT binary)"
)
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = struct.Struct("!11sii")  # signature, flags, header extension length
_FIELDS = struct.Struct("!hiqiqi")  # 3 fields: int8 (length 8), int8 (length 8), text (its length)


def parse_blocks(messages: Iterator[Any]) -> tuple[list[Any], int]:
    """The block of newline-terminated lines and the line count of a binary ``COPY`` of
    :data:`BLOCK_QUERY` (its CopyData messages: the header, at most one row, the trailer).

    The block is a view of the message psycopg received (no copy: a chunk can be tens of MB, and
    the connection's own buffer already holds another copy while it is read)."""
    blocks: list[Any] = []
    records = 0
    header = True
    for message in messages:
        view = memoryview(message)
        pos = 0
        if header:
            signature, _flags, extension = _HEADER.unpack_from(view, 0)
            if signature != _SIGNATURE:
                raise ValueError("not a binary COPY stream")
            pos = _HEADER.size + extension
            header = False
        while pos < len(view):
            if view[pos : pos + 2].tobytes() == b"\xff\xff":  # the trailer
                pos += 2
                continue
            count, length_a, lines, length_b, non_null, length = _FIELDS.unpack_from(view, pos)
            if count != 3 or length_a != 8 or length_b != 8:
                raise ValueError("unexpected row in a chunk's COPY")
            if non_null != lines or length < 0:
                raise ValueError(f"{lines - non_null} of a chunk's {lines} record lines are NULL")
            pos += _FIELDS.size
            blocks.append(view[pos : pos + length])
            records += lines
            pos += length
    return blocks, records


@dataclass(frozen=True)
class Chunk:
    """One query of a read (a SELECT of one text column: the RECORD line) and the checkpoint
    that is valid once its lines and all before them are emitted (None: not a resumable point)."""

    query: sql.Composable
    checkpoint: StreamState | None = None
    full: bool = True
    """Whether the chunk reads its range whole (its row count tells the table's density)."""


@dataclass
class ChunkStats:
    """What completed chunks measured, for planners that size the next ones."""

    rows: int = 0
    bytes: int = 0
    chunks: int = 0

    def add(self, rows: int, size: int) -> None:
        self.rows += rows
        self.bytes += size
        self.chunks += 1

    def bytes_per_row(self) -> float | None:
        return self.bytes / self.rows if self.rows >= 100 else None


class SnapshotGroup:
    """See the module doc. Use as a context manager; ``coordinator`` is a psycopg connection.
    With no workers it is just the coordinator (one transaction, nothing exported)."""

    def __init__(
        self,
        database: Database,
        workers: int,
        cancelled: threading.Event,
        lock: sql.Composable | None = None,
        imported: str | None = None,
        native: NativeReader | None = None,
    ) -> None:
        self.database = database
        self.native = native
        """Reads chunks with ADBC (None: with psycopg, or ADBC could not connect)."""
        self.native_failure: str | None = None
        self._adbc: list[Any] = []
        self.imported = imported
        """An exported snapshot (a CDC slot's) every connection reads under, the coordinator
        too; the lock is then taken after it (a snapshot cannot be chosen after a statement)."""
        self.lock = lock
        """A relation (table, partitioned table or view) to lock before the snapshot is taken."""
        self.locked = False
        """Whether ``lock`` was locked before the snapshot (see :meth:`_lock_first`)."""
        self.workers = max(0, workers)
        self.cancelled = cancelled
        self.stats = ChunkStats()
        self._raws: list[Any] = []
        self._free: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
        self._pool: ThreadPoolExecutor | None = None
        self.snapshot = ""
        self.coordinator: psycopg.Connection[Any]

    # ------------------------------------------------------------------ lifecycle
    def _connect(self) -> psycopg.Connection[Any]:
        raw = self.database.engine.raw_connection()
        self._raws.append(raw)
        conn: psycopg.Connection[Any] = raw.dbapi_connection  # type: ignore[assignment]
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    def __enter__(self) -> SnapshotGroup:
        try:
            with self.database.translate_errors():
                self.coordinator = self._connect()
                if self.imported is not None:
                    self._import(self.coordinator, self.imported)
                    self.snapshot = self.imported
                if self.lock is not None:
                    self.locked = self._lock_first(self.lock)
                if self.workers and self.imported is None:
                    row = self.coordinator.execute("SELECT pg_export_snapshot()").fetchone()
                    assert row is not None
                    self.snapshot = str(row[0])
                if self.native is not None and self.workers:
                    self._connect_native()
                if self.native is None:
                    for _ in range(self.workers):
                        conn = self._connect()
                        self._import(conn, self.snapshot)
                        self._free.put(conn)
        except BaseException:
            self.close(failed=True)
            raise
        if self.workers:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dbkit-chunk")
        return self

    def _connect_native(self) -> None:
        """The workers as ADBC connections; when the first cannot connect, none (the reason in
        ``native_failure``): the group reads with psycopg."""
        native = self.native
        assert native is not None
        try:
            first = native.connect(self.snapshot)
        except DbkitError as exc:
            self.native_failure = str(exc)
            self.native = None
            return
        self._adbc.append(first)
        self._free.put(first)
        for _ in range(self.workers - 1):
            conn = native.connect(self.snapshot)
            self._adbc.append(conn)
            self._free.put(conn)

    @staticmethod
    def _import(conn: psycopg.Connection[Any], snapshot: str) -> None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))

    def _lock_first(self, relation: sql.Composable) -> bool:
        """Lock ``relation`` before any snapshot is taken: a TRUNCATE (or other rewrite) still
        running then commits first and the snapshot sees its new rows; locked after the snapshot,
        the read would wait for it and then find the rewritten relation empty. LOCK TABLE needs a
        table-level privilege: a user granted some columns only (or the parent of partitions
        only) cannot, and gets False (the caller then locks by reading, after the snapshot)."""
        try:
            self.coordinator.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(relation))
        except psycopg.errors.InsufficientPrivilege:
            self.coordinator.rollback()  # no snapshot was taken: the transaction starts afresh
            if self.imported is not None:
                self._import(self.coordinator, self.imported)
            return False
        return True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(failed=exc_type is not None)

    def close(self, failed: bool = False) -> None:
        if failed:
            self._cancel_running()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for conn in self._adbc:
            NativeReader.close(conn)  # its transaction ends with it (read only: nothing to keep)
        self._adbc.clear()
        for raw in self._raws:
            conn = raw.dbapi_connection
            try:
                if failed or conn is None or conn.closed:
                    raw.invalidate()
                else:
                    conn.rollback()
                    conn.isolation_level = None
                    conn.read_only = None
                    raw.close()
            except Exception:
                with contextlib.suppress(Exception):
                    raw.invalidate()
        self._raws.clear()

    def _cancel_running(self) -> None:
        for conn in self._adbc:
            with contextlib.suppress(Exception):
                NativeReader.cancel(conn)
        for raw in self._raws:
            conn = raw.dbapi_connection
            if conn is not None and not conn.closed:
                with contextlib.suppress(Exception):
                    conn.cancel_safe(timeout=5.0)

    # ------------------------------------------------------------------ reading
    def _read_chunk(self, chunk: Chunk, text: str | None = None) -> tuple[list[Any], int]:
        conn = self._free.get()
        try:
            if text is not None:  # ADBC: one typed frame's batch
                assert self.native is not None
                batch, rows = self.native.read(conn, text)
                return [batch], rows
            statement = sql.SQL(BLOCK_QUERY).format(chunk.query)
            with conn.cursor() as cur, cur.copy(statement) as copy:
                return parse_blocks(iter(copy))
        finally:
            self._free.put(conn)

    def read(self, chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, list[Any], int]]:
        """Each chunk with its lines (blocks of whole newline-terminated lines) and their number,
        in order; errors of a chunk are raised when its turn comes. Chunks are pulled from
        ``chunks`` (in this thread) as room frees up."""
        assert self._pool is not None, "use the group as a context manager"
        pending: deque[tuple[Chunk, Future[tuple[list[Any], int]]]] = deque()
        source = iter(chunks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.workers + 1:
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                        break
                    # the query's text is made here: psycopg's connection is not the workers'
                    text = chunk.query.as_string(self.coordinator) if self.native is not None else None
                    pending.append((chunk, self._pool.submit(self._read_chunk, chunk, text)))
                if not pending:
                    return
                chunk, future = pending.popleft()
                while True:
                    if self.cancelled.is_set():
                        raise Cancelled()
                    try:
                        blocks, records = future.result(timeout=0.5)
                        break
                    except TimeoutError:
                        continue
                if chunk.full:
                    self.stats.add(records, sum(b.nbytes if self.native else len(b) for b in blocks))
                yield chunk, blocks, records
        except BaseException:
            for _, future in pending:
                future.cancel()
            self._cancel_running()
            raise
