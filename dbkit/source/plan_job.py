"""The generic read job: a read plan's queries, run on one connection, batches encoded to lines.

:class:`PlanJob` is what the reader runs for every stream whose dialect has no read job of its
own (``SourceDialect.read_job`` returned None). It picks the plan (full refresh or cursor
incremental, :mod:`dbkit.source.plans`), runs each segment's query streamed, encodes every fetched
batch with the dialect's record encoder and yields it as one :class:`~dbkit.source.jobs.ReadChunk`
whose checkpoint is the plan's position after the batch (None inside a segment that cannot resume).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from dbkit.protocol import StreamDescriptor
from dbkit.protocol import messages as msg
from dbkit.source.dialect import SourceDialect
from dbkit.source.jobs import Cancelled, ReadChunk, ReadContext
from dbkit.source.plans import CursorPlan, FullRefreshPlan, ReadPlan
from dbkit.source.records import AppendingEncoder, Changes, RecordEncoder
from dbkit.source.state import StreamState


def record_lines(
    descriptor: StreamDescriptor,
    datas: Sequence[bytes],
    changes: Mapping[int, Changes],
    keep: Sequence[bool] | None,
) -> list[bytes]:
    """RECORD lines for encoded ``data`` objects, without the rows ``keep`` drops, with the
    ``meta.changes`` of the rows that have any."""
    prefix, suffix = msg.record_envelope(descriptor, msg.now_ms())
    if keep is None and not changes:
        return [prefix + d + suffix for d in datas]
    lines = []
    for i, d in enumerate(datas):
        if keep is not None and not keep[i]:
            continue
        ch = changes.get(i)
        lines.append(prefix + d + (msg.record_suffix_with_changes(ch) if ch else suffix))
    return lines


class PlanJob:
    """The generic read of one stream (see the module doc); made by the reader, iterated once."""

    def __init__(self, dialect: SourceDialect[Any], context: ReadContext, batch_rows: int) -> None:
        self.dialect = dialect
        self.context = context
        self.batch = max(1, batch_rows)
        self.warnings: list[str] = []
        self._plan: ReadPlan | None = None

    def _make_plan(self, conn: sa.Connection) -> ReadPlan:
        context = self.context
        dialect = self.dialect
        t = context.table_clause
        if context.cursor is None:
            return FullRefreshPlan(dialect, context.table, t, context.prior_state)
        cursor = context.cursor
        beyond = dialect.cursor_beyond(cursor, t.c[cursor.name])
        query = dialect.max_value_query(t, cursor)
        if beyond is not None:  # the upper bound is the largest real value
            query = query.where(sa.not_(beyond))
        upper_raw = conn.execute(query).scalar()
        upper = None if upper_raw is None else dialect.key_state_value(cursor, upper_raw)
        plan = CursorPlan(dialect, context.table, t, cursor, context.prior_state, upper, beyond)
        saved = plan.position["cursor"] if plan.position is not None else None
        if saved is not None:
            bound = dialect.cursor_beyond(cursor, dialect.bind_state_value(cursor, saved))
            if bound is not None and conn.execute(sa.select(bound)).scalar():
                plan.drop_position(saved)
        return plan

    def chunks(self) -> Iterator[ReadChunk]:
        context = self.context
        descriptor = context.descriptor
        encoder: RecordEncoder = self.dialect.record_encoder(
            context.table, context.table_clause, context.columns
        )
        if context.record_members:
            encoder = AppendingEncoder(encoder, context.record_members)
        select_list = encoder.select_list()
        n_data = len(select_list)
        with context.database.connect() as conn:
            plan = self._plan = self._make_plan(conn)
            self.warnings.extend(plan.warnings)
            plan.warnings = self.warnings  # what the plan finds while it reads is logged too
            for segment in plan.segments():
                query = sa.select(*select_list, *segment.capture).select_from(plan.t)
                if segment.where:
                    query = query.where(*segment.where)
                if segment.order_by:
                    query = query.order_by(*segment.order_by)
                options = conn.execution_options(stream_results=True, max_row_buffer=self.batch)
                with options.execute(query) as result:
                    for rows in result.partitions(self.batch):
                        if context.cancelled.is_set():
                            raise Cancelled()
                        datas, changes = encoder.encode(rows)
                        captured = [row[n_data:] for row in rows] if segment.capture else []
                        keep = plan.consume(captured, datas) if segment.capture else None
                        lines = record_lines(descriptor, datas, changes, keep)
                        checkpoint = plan.checkpoint() if segment.resumable else None
                        yield ReadChunk(lines, len(lines), checkpoint)
                conn.commit()  # end the segment's snapshot; the next segment may run long

    def final_state(self) -> StreamState:
        assert self._plan is not None, "final_state is called after chunks"
        return self._plan.final()
