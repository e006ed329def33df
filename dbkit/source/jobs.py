"""Dialect-owned reads: the extension point for a database's own fast read path.

Most reads are plans (:mod:`dbkit.source.cursor`) that the generic reader turns into queries. A
dialect that can do better for some streams — PostgreSQL reading pages in parallel under one
snapshot through ``COPY`` — returns a :class:`ReadJob` from ``SourceDialect.read_job`` instead.
The job produces chunks of complete RECORD lines, each with the STATE that is valid once those
lines (and all before them) are emitted; the reader keeps doing what it does for every stream:
stream status, estimates, checkpoint cadence, record counts, cancellation, errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from dbkit.db.database import Database
from dbkit.protocol import ConfiguredStream, StreamDescriptor
from dbkit.source.dialect import ColumnInfo, TableInfo


@dataclass(frozen=True)
class ReadContext:
    """What a job may use: the database (to open its own connections), the stream and its state."""

    database: Database
    configured: ConfiguredStream
    table: TableInfo
    table_clause: sa.TableClause
    columns: Sequence[ColumnInfo]
    cursor: ColumnInfo | None
    prior_state: Mapping[str, Any] | None
    checkpoint_records: int
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def descriptor(self) -> StreamDescriptor:
        return self.configured.descriptor


@dataclass
class ReadChunk:
    """RECORD lines (newline-terminated, complete) and the state valid after them (None: not a
    resumable point). ``records`` is the number of records among the lines."""

    lines: list[bytes]
    records: int
    state: Mapping[str, Any] | None = None


class ReadJob(Protocol):
    """Made by ``SourceDialect.read_job`` for one stream; iterated once, then ``final_state``."""

    warnings: list[str]

    def chunks(self) -> Iterator[ReadChunk]:
        """The stream's records in chunks; must stop soon after ``context.cancelled`` is set."""
        ...

    def final_state(self) -> Mapping[str, Any]:
        """The state once every chunk is emitted."""
        ...
