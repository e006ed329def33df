"""The read loop: streams, checkpoints, stream status, errors.

For each configured stream: STARTED, an ESTIMATE when the catalog has one and the read starts
from the beginning (the protocol's estimate is of the rows the read emits), RECORD lines in
chunks from the stream's read job (:mod:`dbkit.source.jobs`: the dialect's own, or the generic
:class:`~dbkit.source.plan_job.PlanJob`), a STATE every ``checkpoint_records`` records or
``checkpoint_seconds`` at a chunk that carries a checkpoint, a final STATE, COMPLETE. This loop
is the only place that emits STATE. A stream that fails gets INCOMPLETE and a TRACE error naming
it; the other streams go on unless the failure is a lost connection (transient), which stops the
whole read after the last good STATE. Streams may be read concurrently, each on its own connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from dbkit.config import SourceSettings
from dbkit.db.database import Database
from dbkit.errors import ConfigError, DbkitError, TransientError
from dbkit.protocol import (
    ConfiguredCatalog,
    ConfiguredStream,
    InputState,
    MessageWriter,
    StreamDescriptor,
    SyncMode,
)
from dbkit.protocol import messages as msg
from dbkit.protocol.arrow import arrow_transport
from dbkit.source.dialect import SourceDialect
from dbkit.source.jobs import Cancelled, ReadContext, ReadJob
from dbkit.source.model import ColumnInfo, TableInfo
from dbkit.source.plan_job import PlanJob
from dbkit.source.state import CursorState, FullRefreshState, StreamState, parse_stream_state
from dbkit.threads import ContextThreadPoolExecutor


@dataclass(frozen=True)
class ReadOptions:
    """How a read runs: the config's :class:`~dbkit.config.SourceSettings` fields (their
    defaults are declared there, once)."""

    checkpoint_records: int
    checkpoint_seconds: float
    max_concurrent_streams: int
    incremental_fallback: str = "fail"

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> ReadOptions:
        return cls(
            checkpoint_records=settings.checkpoint_records,
            checkpoint_seconds=settings.checkpoint_seconds,
            max_concurrent_streams=settings.max_concurrent_streams,
            incremental_fallback=settings.incremental_fallback,
        )


class StateSink(Protocol):
    """Where :meth:`SourceReader._run_job` puts a stream's lines and states, in order: a standard
    read writes STREAM states (:class:`StreamStates`); a CDC read folds them into its GLOBAL
    state (:mod:`dbkit.source.cdc.read`). Every call comes after the lines it covers."""

    def lines(self, lines: list[bytes], records: int) -> None:
        """Write a chunk's RECORD lines (``records`` records)."""
        ...

    def checkpoint(self, state: StreamState, records: int) -> None:
        """A mid-read checkpoint, ``records`` records after the previous one."""
        ...

    def final(self, state: StreamState, records: int) -> None:
        """The stream's final state, ``records`` records after the previous checkpoint."""
        ...


class StreamStates:
    """The standard sink: RECORD lines, and a STREAM state per checkpoint."""

    def __init__(self, writer: MessageWriter, descriptor: StreamDescriptor) -> None:
        self.writer = writer
        self.descriptor = descriptor

    def lines(self, lines: list[bytes], records: int) -> None:
        self.writer.write_lines(lines)

    def checkpoint(self, state: StreamState, records: int) -> None:
        self.writer.write(msg.stream_state(self.descriptor, state.to_json(), records))
        self.writer.flush()

    def final(self, state: StreamState, records: int) -> None:
        self.writer.write(msg.stream_state(self.descriptor, state.to_json(), records))


@dataclass
class StreamOutcome:
    descriptor: StreamDescriptor
    records: int = 0
    error: DbkitError | None = None


@dataclass
class Cancellation:
    """Set when a stream fails transiently: the other streams stop at their last checkpoint
    (raising :class:`~dbkit.source.jobs.Cancelled`), and ``reason`` is their error."""

    event: threading.Event = field(default_factory=threading.Event)
    reason: DbkitError | None = None


def resolve_stream(
    table: TableInfo,
    configured: ConfiguredStream,
    fallback: str = "fail",
    warn: Callable[[str], None] | None = None,
) -> tuple[list[ColumnInfo], ColumnInfo | None]:
    """The columns to read and the cursor column (None: read in full), checked against the live table.

    Raises ConfigError naming what is wrong: a configured column that no longer exists, an
    incremental stream without a cursor field (unless ``fallback`` is ``"full_refresh"``: then
    ``warn(text)`` is called and the stream is read in full), a cursor that is not a column or
    cannot be a cursor.
    """
    wanted = list(configured.stream.properties) or [c.name for c in table.columns]
    missing = [name for name in wanted if table.column(name) is None]
    if missing:
        raise ConfigError(
            f"stream {table.descriptor}: column(s) {', '.join(map(repr, missing))} no longer exist; "
            "refresh the source schema (discover) and update the connection",
            stream=table.descriptor,
        )
    columns = [c for c in table.columns if c.name in set(wanted)]
    if configured.sync_mode is not SyncMode.INCREMENTAL:
        return columns, None
    cursor_field = configured.effective_cursor_field
    candidates = [c.name for c in table.columns if c.handler.can_be_cursor]
    if not cursor_field:
        if fallback == "full_refresh":
            if warn is not None:
                warn(
                    "configured as incremental but has no cursor field: read in full (full refresh), "
                    "as incremental_fallback says; every sync reads the whole table again (choose a "
                    f"cursor among: {', '.join(candidates) or '(no suitable column)'} to read only changes)"
                )
            return columns, None
        first = candidates[0] if candidates else "COLUMN"
        raise ConfigError(
            f"stream {table.descriptor} is configured as incremental but has no cursor field; "
            f"choose one of: {', '.join(candidates) or '(no suitable column)'} "
            f"(PyAirbyte: source.set_cursor_key({table.name!r}, {first!r})), or read it as full_refresh "
            '(PyAirbyte: read(force_full_refresh=True)), or set incremental_fallback: "full_refresh" '
            "in the source config to read such streams in full, with a warning",
            stream=table.descriptor,
        )
    if len(cursor_field) != 1:
        raise ConfigError(
            f"stream {table.descriptor}: cursor field {cursor_field} is nested; use a top-level column",
            stream=table.descriptor,
        )
    cursor = table.column(cursor_field[0])
    if cursor is None:
        raise ConfigError(
            f"stream {table.descriptor}: cursor field {cursor_field[0]!r} is not a column of the table",
            stream=table.descriptor,
        )
    if not cursor.handler.can_be_cursor:
        raise ConfigError(
            f"stream {table.descriptor}: column {cursor.name!r} of type {cursor.type_name} cannot be a "
            f"cursor; choose one of: {', '.join(candidates) or '(no suitable column)'}",
            stream=table.descriptor,
        )
    if cursor not in columns:
        columns.append(cursor)
    return columns, cursor


def missing_table(descriptor: StreamDescriptor) -> ConfigError:
    return ConfigError(
        f"stream {descriptor}: table not found (dropped or renamed since discover, or "
        "no longer readable by this user); refresh the source schema",
        stream=descriptor,
    )


class SourceReader:
    """Reads a configured catalog; call :meth:`run` once."""

    def __init__(
        self,
        dialect: SourceDialect[Any],
        database: Database,
        catalog: ConfiguredCatalog,
        state: InputState,
        writer: MessageWriter,
        options: ReadOptions,
        log: Any = None,
    ) -> None:
        self.dialect = dialect
        self.db = database
        self.catalog = catalog
        self.state = state
        self.writer = writer
        self.options = options
        self.cancel = Cancellation()
        self._log = log

    def log(self, level: str, text: str) -> None:
        if self._log is not None:
            self._log(level, text)

    def tables(self) -> dict[StreamDescriptor, TableInfo]:
        """The readable tables, by stream descriptor."""
        with self.db.connect() as conn:
            return {t.descriptor: t for t in self.dialect.list_tables(conn)}

    def run(self) -> list[StreamOutcome]:
        tables = self.tables()
        if self.state.is_global:
            self.log(
                "WARN",
                "the saved state is a GLOBAL (change data capture) state, but this source reads "
                "with standard reads: it is ignored and every stream is read from the start",
            )
            self.state = InputState()
        streams = list(self.catalog)
        workers = max(1, min(self.options.max_concurrent_streams, len(streams)))
        if not self.dialect.capabilities.concurrent_reads:
            workers = 1
        if workers == 1:
            return [self._read_one(s, tables.get(s.descriptor)) for s in streams]
        with ContextThreadPoolExecutor(max_workers=workers, thread_name_prefix="dbkit-read") as pool:
            futures = [pool.submit(self._read_one, s, tables.get(s.descriptor)) for s in streams]
            return [f.result() for f in futures]

    # ------------------------------------------------------------------ one stream
    def _read_one(
        self, configured: ConfiguredStream, table: TableInfo | None, sink: StateSink | None = None
    ) -> StreamOutcome:
        descriptor = configured.descriptor
        outcome = StreamOutcome(descriptor)
        if self.cancel.event.is_set():
            outcome.error = self.cancel.reason
            return outcome
        self.writer.write(msg.stream_status(descriptor, "STARTED"))
        try:
            if table is None:
                raise missing_table(descriptor)
            outcome.records = self._read_stream(configured, table, sink)
        except Exception as exc:
            outcome.error = self.failure(exc, descriptor)
            self.writer.write(msg.stream_status(descriptor, "INCOMPLETE"))
            self.writer.flush()
            return outcome
        self.writer.write(msg.stream_status(descriptor, "COMPLETE"))
        self.writer.flush()
        return outcome

    def failure(self, exc: BaseException, descriptor: StreamDescriptor) -> DbkitError:
        """The error a stream's read ended with; a transient one cancels the other streams."""
        if isinstance(exc, Cancelled):
            error: DbkitError = self.cancel.reason or TransientError("read cancelled")
        elif isinstance(exc, DbkitError):
            error = exc
        else:
            error = self.db.classify(exc)
        if error.stream is None:
            error.stream = descriptor
        if isinstance(error, TransientError) and not self.cancel.event.is_set():
            self.cancel.reason = error
            self.cancel.event.set()
        return error

    def _read_stream(
        self, configured: ConfiguredStream, table: TableInfo, sink: StateSink | None = None
    ) -> int:
        descriptor = configured.descriptor
        columns, cursor = resolve_stream(
            table,
            configured,
            self.options.incremental_fallback,
            lambda text: self.log("WARN", f"stream {descriptor}: {text}"),
        )
        prior = parse_stream_state(self.state.for_stream(descriptor), str(descriptor))
        return self.read_table(configured, table, columns, cursor, prior, sink)

    def read_table(
        self,
        configured: ConfiguredStream,
        table: TableInfo,
        columns: list[ColumnInfo],
        cursor: ColumnInfo | None,
        prior: StreamState | None,
        sink: StateSink | None,
        *,
        record_members: bytes = b"",
        snapshot: Any = None,
    ) -> int:
        """Reads ``table`` as ``configured`` from ``prior`` (its saved state, parsed): the row
        estimate, the state's values checked, then the dialect's job (or the default plan's) run
        to the end. ``record_members`` and ``snapshot``: see :class:`ReadContext` (a CDC
        snapshot). Returns the number of records."""
        descriptor = configured.descriptor
        # the protocol's estimate is of the rows this read emits: the table's size is that for a
        # read from the start (a new full refresh too), not for the changes after a cursor nor
        # for the rest of a resumed snapshot
        from_start = prior is None or (isinstance(prior, FullRefreshState) and prior.complete)
        if from_start and (table.row_estimate is not None or table.byte_estimate is not None):
            self.writer.write(msg.estimate(descriptor, table.row_estimate, table.byte_estimate))
        if prior is not None:
            self._check_state_values(table, prior, cursor)
        context = ReadContext(
            database=self.db,
            configured=configured,
            table=table,
            table_clause=self.dialect.table_clause(table),
            columns=columns,
            cursor=cursor,
            prior_state=prior,
            checkpoint_records=self.options.checkpoint_records,
            cancelled=self.cancel.event,
            record_members=record_members,
            snapshot=snapshot,
            arrow=arrow_transport(),
        )
        job = self.dialect.read_job(context)
        if job is None:
            batch = min(self.dialect.fetch_batch_rows, self.options.checkpoint_records)
            job = PlanJob(self.dialect, context, batch)
        return self._run_job(job, descriptor, sink)

    def _check_state_values(self, table: TableInfo, prior: StreamState, cursor: ColumnInfo | None) -> None:
        """Bind every column value the saved state holds, once, before the read: a value of the
        right JSON shape that the column cannot take (a cursor ``"not-a-date"``, text for a bigint
        key) is a config_error naming it, not a database error in the middle of the read."""
        values = _state_values(table, prior, cursor)
        if not values:
            return
        with self.db.connect() as conn:
            for column, value, where in values:
                try:
                    # cast on the server, nothing fetched: a value the driver cannot load into
                    # Python ('infinity', a year past 9999) is still one the column holds
                    conn.execute(sa.select(self.dialect.bind_state_value(column, value).is_(None))).all()
                except DbkitError:
                    raise
                except Exception as exc:
                    error = self.db.classify(exc)
                    if isinstance(error, TransientError):
                        raise error from exc
                    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                    raise ConfigError(
                        f"state for {table.descriptor}: {where} is {shown}, which column "
                        f"{column.name!r} ({column.type_name}) cannot hold; the state was changed "
                        "or comes from another table: reset the stream",
                        stream=table.descriptor,
                    ) from None

    def _run_job(self, job: ReadJob, descriptor: StreamDescriptor, sink: StateSink | None = None) -> int:
        """Emit a read job's lines, and its checkpoints at the configured cadence, then its final
        state, through ``sink`` (default: STREAM states). A chunk's checkpoint is emitted (after
        the chunk's lines) when ``checkpoint_records`` records or ``checkpoint_seconds`` have
        passed since the last STATE; a chunk without one waits for the next that has one.

        Warnings the job adds while it reads are logged as they appear; the job's chunk iterator
        is closed when the stream ends in any way (so it releases its connections at once)."""
        options = self.options
        if sink is None:
            sink = StreamStates(self.writer, descriptor)
        total = since_checkpoint = 0
        last_checkpoint = time.monotonic()
        logged = 0

        def log_warnings() -> None:
            nonlocal logged
            for warning in job.warnings[logged:]:
                self.log("WARN", f"stream {descriptor}: {warning}")
            logged = len(job.warnings)

        log_warnings()
        chunks = job.chunks()
        try:
            for chunk in chunks:
                log_warnings()
                if self.cancel.event.is_set():
                    raise Cancelled()
                sink.lines(chunk.lines, chunk.records)
                total += chunk.records
                since_checkpoint += chunk.records
                now = time.monotonic()
                due = (
                    since_checkpoint >= options.checkpoint_records
                    or now - last_checkpoint >= options.checkpoint_seconds
                )
                if chunk.checkpoint is not None and due:
                    sink.checkpoint(chunk.checkpoint, since_checkpoint)
                    since_checkpoint = 0
                    last_checkpoint = now
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        log_warnings()
        sink.final(job.final_state(), since_checkpoint)
        return total


def _state_values(
    table: TableInfo, prior: StreamState, cursor: ColumnInfo | None
) -> list[tuple[ColumnInfo, Any, str]]:
    """(column, saved value, where in the state) for each column value a state holds that the
    read will bind: a full refresh's ``after`` key, a cursor position and its key, the position
    among NULL-cursor rows. Values of a row locator (no column) and states the read will not use
    (another cursor, another key) are left to the plans, which start over with a warning."""
    out: list[tuple[ColumnInfo, Any, str]] = []

    def keyed(by: Any, after: Any, where: str) -> None:
        if isinstance(by, list) and isinstance(after, list) and len(by) == len(after):
            for name, value in zip(by, after, strict=True):
                column = table.column(name) if isinstance(name, str) else None
                if column is not None and value is not None:
                    out.append((column, value, f"{where} ({name})"))

    if isinstance(prior, FullRefreshState) and not prior.complete:
        keyed(prior.by, prior.after, "'after'")
    elif isinstance(prior, CursorState) and cursor is not None and prior.cursor_field == [cursor.name]:
        position = prior.position
        if isinstance(position, dict):
            if position.get("cursor") is not None:
                out.append((cursor, position["cursor"], "'position.cursor'"))
            keyed(position.get("by"), position.get("after_key"), "'position.after_key'")
            keyed(position.get("by"), position.get("split_key"), "'position.split_key'")
        if isinstance(prior.nulls, dict):
            keyed(prior.nulls.get("by"), prior.nulls.get("after"), "'nulls.after'")
    return out
