"""The state ledger: which STATE messages may be echoed, when, and with which record count.

The rule: a STATE is echoed (unchanged, plus ``destinationStats.recordCount``: the records of the
streams it covers that arrived since the previous state of the same kind) only when every record
that arrived before it, in every stream it covers, is committed; states are echoed in the order
they arrived. A STREAM state covers its stream, a GLOBAL state every stream.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dbkit.protocol import MessageWriter, StreamDescriptor
from dbkit.protocol import messages as msg


class StreamProgress(Protocol):
    """What the ledger reads of a stream (the consumer's buffer of it)."""

    @property
    def descriptor(self) -> StreamDescriptor: ...

    @property
    def added(self) -> int:
        """Records of the stream received so far."""
        ...

    @property
    def first_line(self) -> int | None:
        """Input line of the oldest record buffered and not yet handed to a load (None: none)."""
        ...

    @property
    def loading(self) -> deque[tuple[int, int]]:
        """(job, first input line) of the stream's loads not yet committed, oldest first."""
        ...


@dataclass
class PendingState:
    line: int
    payload: dict[str, Any]
    streams: Sequence[StreamProgress]
    count: int
    arrived: float


class StateLedger:
    """States received and not yet echoed. Called by the consumer: :meth:`stream_state` /
    :meth:`global_state` per STATE, :meth:`release` whenever something was loaded, committed
    or flushed (it echoes what became ready, in order)."""

    def __init__(self, writer: MessageWriter, streams: Sequence[StreamProgress]) -> None:
        self.writer = writer
        self.streams = list(streams)
        self.pending: deque[PendingState] = deque()
        self.echoed = 0
        self._counted: dict[StreamDescriptor, int] = {}  # ``added`` at the stream's last STREAM state
        self._counted_global = 0

    def stream_state(self, line: int, payload: dict[str, Any], stream: StreamProgress) -> None:
        """A STREAM state of ``stream`` arrived at input ``line``."""
        count = stream.added - self._counted.get(stream.descriptor, 0)
        self._counted[stream.descriptor] = stream.added
        self.pending.append(PendingState(line, payload, [stream], count, time.monotonic()))

    def global_state(self, line: int, payload: dict[str, Any]) -> None:
        """A GLOBAL state (covering every stream) arrived at input ``line``."""
        total = sum(s.added for s in self.streams)
        count, self._counted_global = total - self._counted_global, total
        self.pending.append(PendingState(line, payload, self.streams, count, time.monotonic()))

    def oldest_arrival(self) -> float | None:
        """``time.monotonic()`` when the oldest unechoed state arrived; None: none waits."""
        return self.pending[0].arrived if self.pending else None

    def release(self) -> int:
        """Echo, in order, every state whose records are all committed; how many were echoed."""
        wrote = 0
        while self.pending:
            head = self.pending[0]
            if any(
                (s.first_line is not None and s.first_line < head.line)
                or (s.loading and s.loading[0][1] < head.line)
                for s in head.streams
            ):
                break
            self.pending.popleft()
            self.writer.write(msg.echo_state(head.payload, head.count))
            wrote += 1
        if wrote:
            self.echoed += wrote
            self.writer.flush()
        return wrote
