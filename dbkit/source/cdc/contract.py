"""The change reader contract: what a database's change log (PostgreSQL logical replication,
the MySQL binlog, source-sqlite's trigger log) gives the CDC read (:mod:`dbkit.source.cdc.read`).

A dialect offers one through ``SourceDialect.cdc_reader(database)`` (None: the connection is
configured for standard reads). The framework owns everything else: GLOBAL state, the snapshot
-> log handover, the upper bound, meta columns, records, STATE order and acknowledgement.

Positions (``P``) are the reader's own objects; the framework only stores them (through
:meth:`CdcReader.position_to_state` / :meth:`~CdcReader.position_from_state`) and hands them back.

The rules a reader must keep, which make the read lose nothing (the argument is in
:mod:`dbkit.source.cdc.read`):

- **cursor values** (the value of :attr:`CdcReader.position_column` a change or a snapshot row
  carries) are integers; the changes of one key carry non-decreasing values in commit order, and
  a change that a snapshot does not contain carries a value greater than that snapshot's
  :attr:`SnapshotPoint.meta` value (so a commit position, not the position of a change inside an
  interleaved transaction);
- a :class:`SnapshotPoint`'s ``position`` is at or before the point the snapshot rows are read at
  (every change at or before it is visible to the snapshot), and every change after it is returned
  by a later :meth:`CdcReader.changes` from a start at or before it;
- a batch's ``position`` is a point the read can resume from: every change at or before it has
  been returned (in this batch or an earlier one), none after it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

import sqlalchemy as sa

from dbkit.errors import SystemFailure
from dbkit.protocol import StreamDescriptor
from dbkit.source.model import ColumnInfo, TableInfo
from dbkit.source.records import Changes, PythonRecordEncoder
from dbkit.source.state import GlobalState

if TYPE_CHECKING:
    from dbkit.db.database import Database

P = TypeVar("P")

UPDATED_AT = "_ab_cdc_updated_at"
"""Meta column: when the change was committed (a snapshot row: when the snapshot was taken)."""
DELETED_AT = "_ab_cdc_deleted_at"
"""Meta column: when the row was deleted (set only on delete records, which carry the before image)."""
GENERIC_CURSOR = "_ab_cdc_cursor"
"""The position column's name when a database has no name of its own (PostgreSQL: ``_ab_cdc_lsn``)."""

TIMESTAMP_SCHEMA: Mapping[str, Any] = {
    "type": ["string", "null"],
    "format": "date-time",
    "airbyte_type": "timestamp_with_timezone",
}
INTEGER_SCHEMA: Mapping[str, Any] = {"type": ["integer", "null"]}

InvalidPositionBehavior = Literal["Fail sync", "Re-sync data"]


class Operation(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    TRUNCATE = "truncate"


class Change(NamedTuple):
    """One row change from the log (a NamedTuple: a read makes one per change, and a tuple is
    the cheapest immutable object to make).

    ``image``: the row after an insert or update, the row before a delete (column name -> value
    in the form the reader's :meth:`CdcReader.encoder` takes; the default takes the values the
    snapshot's driver returns), None for a truncate; or, from a reader whose own encoder passes it
    through, the record ``data`` JSON already rendered (bytes). ``committed_at``: ISO-8601 UTC time of the
    commit. ``meta``: the reader's meta columns for this change, the position column included
    (``{"_ab_cdc_lsn": 23876432}``; MySQL adds ``_ab_cdc_log_file`` and ``_ab_cdc_log_pos``)."""

    stream: StreamDescriptor
    operation: Operation
    image: Mapping[str, Any] | bytes | None
    committed_at: str
    meta: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeBatch(Generic[P]):
    """Changes in log order, and the position valid once they are emitted (None: no point to
    resume from, e.g. inside a transaction). A batch may be empty: it then only moves the
    position (an idle log, a keepalive, changes of tables the read does not want)."""

    changes: Sequence[Change]
    position: P | None


@dataclass(frozen=True)
class SnapshotPoint(Generic[P]):
    """A snapshot consistent with the log: rows read under it carry ``meta`` and ``taken_at``;
    changes after ``position`` complete them. ``token`` is the reader's own handle that its
    dialect's read jobs use to read inside the snapshot (PostgreSQL: an exported snapshot name;
    None when any read started afterwards will do, as on source-sqlite)."""

    position: P
    meta: Mapping[str, Any]
    taken_at: str
    token: Any = None


@dataclass(frozen=True)
class LogLag:
    """What the log retains for this reader (how far behind its acknowledged position is)."""

    bytes: int | None = None
    changes: int | None = None
    detail: str = ""

    def describe(self) -> str:
        parts = []
        if self.bytes is not None:
            parts.append(f"{self.bytes} bytes")
        if self.changes is not None:
            parts.append(f"{self.changes} changes")
        text = "the change log retains " + (", ".join(parts) or "an unknown amount")
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class CdcOptions:
    """The CDC settings of a connection (:class:`dbkit.source.cdc.config.CdcReplication`)."""

    initial_waiting_seconds: float = 1200.0
    invalid_cdc_cursor_position_behavior: InvalidPositionBehavior = "Fail sync"

    @property
    def resync_on_invalid_position(self) -> bool:
        return self.invalid_cdc_cursor_position_behavior == "Re-sync data"


class ImageEncoder:
    """Change images -> record ``data`` JSON, exactly as the snapshot path renders the same row.

    The default converts the image's values with the columns' type handlers (the
    :class:`~dbkit.source.records.PythonRecordEncoder` of snapshot reads); a reader whose log
    carries values in another form (pgoutput's text) returns its own from ``CdcReader.encoder``."""

    def __init__(self, table: TableInfo, columns: Sequence[ColumnInfo]) -> None:
        self._names = [c.name for c in columns]
        clause = sa.table(table.name, *(sa.column(c.name) for c in columns), schema=table.namespace)
        self._rows = PythonRecordEncoder(clause, columns)

    def encode(self, images: Sequence[Mapping[str, Any] | bytes]) -> tuple[list[bytes], dict[int, Changes]]:
        """One ``data`` object per image (columns the image lacks are NULL, columns the stream
        does not read are dropped), and the ``meta.changes`` of images that have any. The
        default takes mappings only (rendered images are a reader's own encoder's business)."""
        names = self._names
        rows = []
        for image in images:
            if isinstance(image, bytes):
                raise SystemFailure("a change image rendered as bytes needs the reader's own encoder")
            rows.append([image.get(name) for name in names])
        return self._rows.encode(rows)


class CdcReader(Generic[P]):
    """A database's change log, for one read (made by ``SourceDialect.cdc_reader``; constructing
    it does no I/O). ``check`` is called alone, by the connector's ``check``. Otherwise methods
    are called from one thread, in this order: ``migrate_state`` (only for a
    shared state dbkit did not write), ``position_from_state``,
    ``position_problem``, ``acknowledge``, ``current_position``, ``lag``, ``snapshot``,
    ``changes``, ``close`` (always, last).

    Subclasses set ``position_column`` (and ``meta_schema`` for their meta columns, the position
    column included) and implement the methods that raise NotImplementedError."""

    position_column: ClassVar[str] = GENERIC_CURSOR
    meta_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {GENERIC_CURSOR: INTEGER_SCHEMA}

    def __init__(self, database: Database, options: CdcOptions) -> None:
        self.database = database
        self.options = options
        self.log: Callable[[str, str], None] = _no_log
        """Logs ``(level, text)`` to the read's output (the CDC read sets it before any other
        call; ``WARN`` for what a person should know about the records, e.g. a value that could
        not be read exactly)."""

    # ------------------------------------------------------------------ check
    def check(self, tables: Sequence[TableInfo]) -> None:
        """For the connector's ``check`` (no state, no catalog): raise ConfigError, saying what
        to do, when a sync could not read the change log as configured; log (``WARN``) what a
        person should know but a sync may still cope with (e.g. a slot the first sync creates).
        ``tables``: what discovery finds, the tables a connection could read with CDC among
        them. The default: nothing to check."""

    # ------------------------------------------------------------------ positions
    def position_from_state(self, raw: Mapping[str, Any]) -> P:
        """The position a saved state holds (``raw`` is what :meth:`position_to_state` wrote).
        Raises ConfigError, saying to reset the connection, for a shape this reader never writes."""
        raise NotImplementedError

    def position_to_state(self, position: P) -> dict[str, Any]:
        """The JSON object saved in the GLOBAL state's ``shared_state.position``."""
        raise NotImplementedError

    def migrate_state(
        self, shared: Mapping[str, Any], streams: Mapping[StreamDescriptor, Mapping[str, Any] | None]
    ) -> GlobalState | None:
        """A GLOBAL state another connector wrote (its ``shared_state`` is not dbkit's, e.g.
        Airbyte's Debezium offsets) as dbkit's: the position to resume from (as
        :meth:`position_to_state` writes it) and the streams whose snapshot is done
        (``FullRefreshState.done()``; others absent, so snapshotted again). None (the default):
        not a shape this reader knows, and the saved state is refused as before."""
        return None

    def current_position(self) -> P:
        """The log's position now: every change committed before the call is at or before it.
        The read fixes its upper bound with it, once, when it starts."""
        raise NotImplementedError

    def position_problem(self, position: P) -> str | None:
        """None when reading on from ``position`` returns every change after it; otherwise what is
        wrong, for a person (the log was purged past it, the slot is gone or lost, it is ahead of
        the log). The framework makes it a config_error that says what to do, or resyncs when the
        config asks for that."""
        raise NotImplementedError

    def acknowledge(self, position: P) -> None:
        """Tell the database it may discard the log up to ``position``. The framework calls it
        only with the position of the state this read started from (the state the destination
        echoed), before reading; never with a position merely read."""
        raise NotImplementedError

    def lag(self) -> LogLag | None:
        """What the log retains for this reader, logged at the start and end of a read (None:
        unknown)."""
        return None

    # ------------------------------------------------------------------ reading
    def snapshot(self, tables: Sequence[TableInfo]) -> AbstractContextManager[SnapshotPoint[P]]:
        """A snapshot of ``tables`` consistent with the log, held open while the framework reads
        their snapshots (read jobs get the point as ``ReadContext.snapshot``)."""
        raise NotImplementedError

    def changes(
        self, start: P, upper: P, tables: Mapping[StreamDescriptor, TableInfo]
    ) -> Iterator[ChangeBatch[P]]:
        """The changes of ``tables`` after ``start`` up to ``upper``, in commit order, in batches
        of bounded size. It ends once every change up to ``upper`` is returned, or when
        ``options.initial_waiting_seconds`` pass with nothing from the log. The last batch's
        position is where the read got to (at most ``upper``; an idle log may move it there).
        Changes of other tables are skipped; a change that cannot be decoded raises (never a
        silent drop). A truncate (``Operation.TRUNCATE``, image None, meta with its commit's
        position column value) should start a batch, after one whose position is just before it:
        a read that stops at the truncate checkpoints there. The framework closes the iterator
        when the read ends in any way."""
        raise NotImplementedError

    def encoder(self, table: TableInfo, columns: Sequence[ColumnInfo]) -> ImageEncoder:
        """How images of ``table`` become record data (default: :class:`ImageEncoder`)."""
        return ImageEncoder(table, columns)

    def close(self) -> None:
        """Release connections; called once, when the read ends in any way."""


def _no_log(level: str, text: str) -> None:
    """The log of a reader outside a CDC read: nowhere."""
