"""Full refresh of a table with a primary key: key ranges read as blocks, in parallel, under
one consistent snapshot.

Each chunk is a key range ``(after, upper]``: a *planner* connection finds ``upper`` (``ORDER BY
key LIMIT 1 OFFSET n-1``, a walk of ``n`` index entries), and a worker reads the range as **one
row**: ``COUNT(*)`` and ``GROUP_CONCAT`` of the rows' rendered ``data`` (:mod:`.encoder`),
newline-separated (a rendered record holds no newline). Python turns the block into RECORD lines
with one ``bytes.replace``, so the client's work no longer grows with the rows, only with the
bytes; the server renders, on ``workers`` connections at once.

**Consistency.** Every worker reads inside ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
(REPEATABLE READ), so all its chunks see one state of the table. MariaDB and MySQL cannot share a
snapshot between connections, so with several workers the planner first takes ``LOCK TABLES t
READ`` (which waits for the transactions writing ``t`` to end and holds off new ones), the
workers start their snapshots, then the planner unlocks: every snapshot sees the same committed
state of the table, as one query would. Without the ``LOCK TABLES`` grant, or when the lock is
not granted within :data:`LOCK_WAIT_SECONDS` (a long transaction writes the table), the read uses
one worker, with a WARN.

**Sizes.** A chunk holds about :data:`CHUNK_BYTES` (from the bytes per row seen so far; the
table's estimate before that), at most ``checkpoint_records`` rows. A block longer than the
server allows (``group_concat_max_len``, set to ``max_allowed_packet``) is noticed (its record
count and its newlines disagree): that range is read again row by row on the same snapshot, and
the chunks shrink. Memory is bounded by ``workers + 1`` chunks.

**STATE** after a chunk is the generic full refresh's (``{"by": [key], "after": [upper]}``, the
key's text as the dialect keeps it), so a read resumes from either kind of checkpoint.
"""

from __future__ import annotations

import contextlib
import queue
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa

from dbkit.protocol import now_ms, record_envelope, record_suffix_with_changes
from dbkit.source import (
    Cancelled,
    ColumnInfo,
    FullRefreshState,
    ReadChunk,
    ReadContext,
    SourceDialect,
    StreamState,
)
from source_mysql.encoder import MARK, data_sql, handler_of, unmark
from source_mysql.types import SESSION_SETTINGS, quote_identifier

CHUNK_BYTES = 4 * 1024 * 1024
"""About how many bytes of records one chunk holds."""
FIRST_ROWS = 1_000
"""Rows of the first chunk when the table has no size estimate."""
LOCK_WAIT_SECONDS = 10
"""How long the planner waits for ``LOCK TABLES ... READ`` before reading on one connection."""
_GROUP_CONCAT_MAX_LEN = dict(SESSION_SETTINGS)["group_concat_max_len"]  # the sessions' own
_NO_LOCK = frozenset({1044, 1142, 1205})  # no LOCK TABLES grant; lock wait timeout


class BlockJob:
    """A full refresh in key-range blocks (see the module doc); made by the dialect, iterated once."""

    def __init__(
        self,
        dialect: SourceDialect[Any],
        context: ReadContext,
        key: Sequence[ColumnInfo],
        workers: int,
        block_limit: int | None = None,
    ) -> None:
        self.dialect = dialect
        self.context = context
        self.key = list(key)
        self.workers = max(1, workers)
        self.block_limit = block_limit
        """The longest block (``group_concat_max_len``); None: the server's ``max_allowed_packet``."""
        self.row_by_row = 0
        """Chunks read again row by row because their block was longer than allowed."""
        self.warnings: list[str] = []
        self.after: list[Any] | None = None
        prior = context.prior_state
        if isinstance(prior, FullRefreshState) and not prior.complete:
            if prior.by == [c.name for c in self.key] and prior.after is not None:
                self.after = list(prior.after)
            else:
                self.warnings.append(
                    "the saved full-refresh position does not match the table's key; reading it all"
                )
        t = context.table_clause
        self._order = [t.c[c.name] for c in self.key]
        self._capture = [dialect.key_expression(t, c) for c in self.key]
        self._data = data_sql(context.columns)
        self._names = [c.name for c in context.columns]
        self._marks = any(handler_of(c).problem is not None for c in context.columns)
        table = context.table
        self._row_bytes: float | None = None
        if table.row_estimate and table.byte_estimate:
            self._row_bytes = 2.0 * table.byte_estimate / table.row_estimate
        self._rows_seen = 0
        self._bytes_seen = 0
        self._chunk_bytes = CHUNK_BYTES

    # ------------------------------------------------------------------ queries
    def _bound(self, values: Sequence[Any]) -> list[sa.ColumnElement[Any]]:
        return [self.dialect.bind_state_value(c, v) for c, v in zip(self.key, values, strict=True)]

    def _compare(self, op: str, values: Sequence[Any]) -> sa.ColumnElement[bool]:
        left: sa.ColumnElement[Any] = self._order[0] if len(self.key) == 1 else sa.tuple_(*self._order)
        bound = self._bound(values)
        right: sa.ColumnElement[Any] = bound[0] if len(bound) == 1 else sa.tuple_(*bound)
        return left > right if op == ">" else left <= right

    def _where(
        self, after: Sequence[Any] | None, upper: Sequence[Any] | None
    ) -> list[sa.ColumnElement[bool]]:
        where = []
        if after is not None:
            where.append(self._compare(">", after))
        if upper is not None:
            where.append(self._compare("<=", upper))
        return where

    def _upper(self, planner: sa.Connection, after: Sequence[Any] | None, rows: int) -> list[Any] | None:
        """The key of the ``rows``-th row after ``after`` (state form), None when fewer are left."""
        query = (
            sa.select(*self._capture)
            .select_from(self.context.table_clause)
            .where(*self._where(after, None))
            .order_by(*self._order)
            .offset(rows - 1)
            .limit(1)
        )
        row = planner.execute(query).first()
        if row is None:
            return None
        return [self.dialect.key_state_value(c, v) for c, v in zip(self.key, row, strict=True)]

    def _rows(self) -> int:
        per_row = self._bytes_seen / self._rows_seen if self._rows_seen else self._row_bytes
        target = max(1, self.context.checkpoint_records)
        if not per_row:
            return min(target, FIRST_ROWS)
        return max(1, min(target, int(self._chunk_bytes / per_row)))

    # ------------------------------------------------------------------ one chunk, on a worker
    def _read_range(
        self, conn: sa.Connection, after: Sequence[Any] | None, upper: Sequence[Any] | None
    ) -> tuple[list[bytes], int, int, bool]:
        """(lines, records, bytes of data, whether the block fit) of one key range."""
        t = self.context.table_clause
        block_sql = f"GROUP_CONCAT({self._data} SEPARATOR '\\n')"
        query: Any = (
            sa.select(sa.literal_column("COUNT(*)"), sa.literal_column(block_sql))
            .select_from(t)
            .where(*self._where(after, upper))
        )
        count, block = conn.execute(query).one()
        count = int(count)
        if count == 0:
            return [], 0, 0, True
        if block is not None:
            block = bytes(block) if not isinstance(block, str) else block.encode()
            if block.count(b"\n") == count - 1:
                return self._lines(block), count, len(block), True
        # the block did not fit: the range row by row (same snapshot)
        rows: sa.CursorResult[Any] = conn.execute(
            sa.select(sa.literal_column(self._data))
            .select_from(t)
            .where(*self._where(after, upper))
            .order_by(*self._order)
        )
        datas = [bytes(r[0]) if not isinstance(r[0], str) else r[0].encode() for r in rows]
        return self._lines(b"\n".join(datas)), len(datas), sum(map(len, datas)), False

    def _lines(self, block: bytes) -> list[bytes]:
        prefix, suffix = record_envelope(self.context.descriptor, now_ms())
        if not self._marks or MARK not in block:
            return [prefix + block.replace(b"\n", suffix + prefix) + suffix]
        lines = []
        for data in block.split(b"\n"):
            if MARK in data:
                data, changes = unmark(data, self._names)
                lines.append(prefix + data + record_suffix_with_changes(changes))
            else:
                lines.append(prefix + data + suffix)
        return lines

    # ------------------------------------------------------------------ the read
    def _lock(self, planner: sa.Connection) -> bool:
        """``LOCK TABLES t READ`` on the planner; False (with a warning) when it cannot."""
        table = self.context.table
        name = quote_identifier(table.name)
        if table.namespace:
            name = quote_identifier(table.namespace) + "." + name
        previous = planner.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar()
        planner.exec_driver_sql(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        try:
            planner.exec_driver_sql(f"LOCK TABLES {name} READ")
            return True
        except sa.exc.DBAPIError as exc:
            code = exc.orig.args[0] if isinstance(exc.orig, pymysql.MySQLError) and exc.orig.args else None
            if code not in _NO_LOCK:
                raise
            planner.rollback()
            self.warnings.append(
                f"reading {table.name} on one connection: LOCK TABLES ... READ, which lets several "
                f"connections share one snapshot, was refused or timed out ({exc.orig}); "
                "GRANT LOCK TABLES to the user to read in parallel"
            )
            return False
        finally:
            planner.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(previous or 0)}")

    @staticmethod
    def _begin(conn: sa.Connection, packet: int) -> None:
        conn.exec_driver_sql(f"SET SESSION group_concat_max_len = {packet}")
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")

    def chunks(self) -> Iterator[ReadChunk]:
        context = self.context
        with contextlib.ExitStack() as stack:
            planner = stack.enter_context(context.database.connect())
            packet = self.block_limit or int(
                planner.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 0
            )
            self._chunk_bytes = max(64 * 1024, min(CHUNK_BYTES, packet // 4))
            workers = self.workers
            locked = workers > 1 and self._lock(planner)
            if not locked:
                workers = 1
            free: queue.Queue[sa.Connection] = queue.Queue()
            try:
                for _ in range(workers):
                    conn = stack.enter_context(context.database.connect())
                    self._begin(conn, packet)
                    free.put(conn)
            finally:
                if locked:
                    planner.exec_driver_sql("UNLOCK TABLES")
            planner.rollback()
            stack.callback(self._restore, list(free.queue))

            def read(after: list[Any] | None, upper: list[Any] | None) -> tuple[list[bytes], int, int, bool]:
                conn = free.get()
                try:
                    return self._read_range(conn, after, upper)
                finally:
                    free.put(conn)

            pending: deque[tuple[Future[tuple[list[bytes], int, int, bool]], list[Any] | None]] = deque()
            pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="dbkit-mysql-chunk"))
            stack.callback(lambda: [f.cancel() for f, _ in pending])
            after = self.after
            planned_all = False
            while pending or not planned_all:
                while not planned_all and len(pending) <= workers:
                    upper = self._upper(planner, after, self._rows())
                    pending.append((pool.submit(read, after, upper), upper))
                    after = upper
                    planned_all = upper is None
                if context.cancelled.is_set():
                    raise Cancelled()
                future, upper = pending.popleft()
                lines, records, size, fit = future.result()
                self._rows_seen += records
                self._bytes_seen += size
                if not fit:
                    self.row_by_row += 1
                    self._chunk_bytes = max(64 * 1024, self._chunk_bytes // 4)
                checkpoint: StreamState | None = None
                if upper is not None:
                    checkpoint = FullRefreshState(by=[c.name for c in self.key], after=upper)
                yield ReadChunk(lines, records, checkpoint)

    @staticmethod
    def _restore(conns: list[sa.Connection]) -> None:
        for conn in conns:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.rollback()
                conn.exec_driver_sql(f"SET SESSION group_concat_max_len = {_GROUP_CONCAT_MAX_LEN}")

    def final_state(self) -> StreamState:
        return FullRefreshState.done()


def block_job(dialect: SourceDialect[Any], context: ReadContext, workers: int) -> BlockJob | None:
    """The block read for a standard full refresh of a table with a primary key (None: the
    generic plans, for cursor reads, CDC snapshots and tables without a key)."""
    if context.cursor is not None or context.snapshot is not None or context.record_members:
        return None
    key = context.table.key_columns()
    if key is None or context.table.kind != "table":
        return None
    return BlockJob(dialect, context, key, workers)
