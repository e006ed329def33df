"""The partition/checkpoint protocol: how a stream's read hands its output to the read loop.

Every read is a :class:`ReadJob`. The generic plans (:mod:`dbkit.source.plan_job`) are one; a
dialect that can do better for some streams (PostgreSQL reading pages in parallel under one
snapshot through ``COPY``) returns its own from ``SourceDialect.read_job``. A job yields
:class:`ReadChunk` s: complete RECORD lines, how many records they hold, and an opaque checkpoint
(a :class:`~dbkit.source.state.StreamState`) valid once those lines and all before them are
emitted. The job never emits STATE: the reader alone decides the cadence and orders every STATE
after the lines it covers (and does stream status, estimates, record counts, errors).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from dbkit.db.database import Database
from dbkit.protocol import ConfiguredStream, StreamDescriptor
from dbkit.source.model import ColumnInfo, TableInfo
from dbkit.source.state import StreamState


class Cancelled(Exception):
    """Raised inside a read when ``ReadContext.cancelled`` is set (another stream failed
    transiently): the stream stops at its last checkpoint."""


@dataclass(frozen=True)
class ReadContext:
    """What a job may use: the database (to open its own connections), the stream and its state."""

    database: Database
    configured: ConfiguredStream
    table: TableInfo
    table_clause: sa.TableClause
    columns: Sequence[ColumnInfo]
    cursor: ColumnInfo | None
    prior_state: StreamState | None
    checkpoint_records: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    record_members: bytes = b""
    """JSON object members (``"k":v,...``, no braces) every record's ``data`` must end with: the
    CDC meta columns of a snapshot (:func:`dbkit.source.records.append_members`); empty for
    standard reads. A dialect's own job must honour it."""
    snapshot: Any = None
    """The CDC snapshot (a :class:`dbkit.source.cdc.SnapshotPoint`) this read belongs to: a job
    reads inside it when its ``token`` says how (PostgreSQL's exported snapshot); None for
    standard reads."""
    arrow: bool = False
    """The output may carry records in Arrow frames (:mod:`dbkit.protocol.arrow`): the command
    runs with ``--transport arrow``. A job may then yield a chunk whose ``lines`` is one frame
    (:func:`dbkit.protocol.arrow.encode_frame`) instead of RECORD lines; JSON lines stay valid."""

    @property
    def descriptor(self) -> StreamDescriptor:
        return self.configured.descriptor


@dataclass
class ReadChunk:
    """RECORD lines (newline-terminated, complete) and the checkpoint valid after them (None: not
    a resumable point). ``records`` is the number of records among the lines."""

    lines: list[bytes]
    records: int
    checkpoint: StreamState | None = None


class ReadJob(Protocol):
    """One stream's read: iterated once (``chunks``), then ``final_state``."""

    warnings: list[str]
    """Messages for the user; the reader logs the ones added since it last looked, per chunk."""

    def chunks(self) -> Iterator[ReadChunk]:
        """The stream's records in chunks; must stop soon after ``context.cancelled`` is set
        (raising :class:`Cancelled` or returning). The reader closes the iterator when the
        stream ends in any way, so it must release its connections in ``finally``/``with``."""
        ...

    def final_state(self) -> StreamState:
        """The state once every chunk is emitted; called once, after ``chunks`` is exhausted."""
        ...
