"""The destination's echoes: every STATE the destination prints back is acknowledged, saved to
the state file at once (atomically, see :mod:`dbkit.runner.state`) and counted; its LOGs and
TRACE ERRORs go to the observer."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any

from dbkit.runner.output import read_message, report_trace_error, show_log
from dbkit.runner.progress import SyncObserver, SyncProgress
from dbkit.runner.state import SyncState


class Acknowledger:
    """Reads the destination's stdout: saves echoed states, collects errors and logs.

    Call :meth:`run` once (in a thread of its own while the pump runs); a failure to save the
    state is kept in :attr:`failure`, not raised.
    """

    def __init__(
        self, dest_out: IO[bytes], state: SyncState, progress: SyncProgress, observer: SyncObserver
    ) -> None:
        self.dest_out = dest_out
        self.state = state
        self.progress = progress
        self.observer = observer
        self.by_descriptor = {s.descriptor: s for s in progress.streams}
        self.failure: BaseException | None = None

    def run(self) -> None:
        """Read to the end of the destination's output; keeps reading even when saving fails, so
        that the destination never blocks on a full pipe."""
        try:
            for line in self.dest_out:
                try:
                    self._line(line)
                except Exception as exc:
                    if self.failure is None:
                        self.failure = exc
        except (OSError, ValueError):
            pass  # our end was closed by stop()

    def _line(self, line: bytes) -> None:
        message = read_message(self.observer, "destination", line)
        if message is None:
            return
        kind = message.get("type")
        if kind == "STATE" and isinstance(message.get("state"), Mapping):
            self._ack(message["state"])
        elif kind == "LOG" and isinstance(message.get("log"), Mapping):
            show_log(self.observer, "destination", message["log"])
        elif kind == "TRACE" and isinstance(message.get("trace"), Mapping):
            trace = message["trace"]
            if trace.get("type") == "ERROR" and isinstance(trace.get("error"), Mapping):
                report_trace_error(self.progress, self.observer, "destination", trace["error"])

    def _ack(self, payload: Mapping[str, Any]) -> None:
        stats = payload.get("destinationStats")
        count = stats.get("recordCount") if isinstance(stats, Mapping) else None
        # loads_exact gives Decimal for lines with long digit runs (e.g. in a state's hashes)
        records = (
            int(count) if isinstance(count, int | float | Decimal) and not isinstance(count, bool) else 0
        )
        with self.state.lock:
            try:
                covered = self.state.acknowledge(payload, save=False)
            except ValueError as exc:
                self.observer.log("destination", "WARN", f"echoed STATE not understood ({exc}); not saved")
                return
            if payload.get("type") == "GLOBAL":
                self.progress.global_states_acknowledged += 1
                self.progress.global_records_acknowledged += records
                self.state.save()
                return
            for d in covered:
                stream = self.by_descriptor.get(d)
                if stream is not None:
                    stream.states_acknowledged += 1
                    stream.records_acknowledged += records
                    entry = self.state.entry(d)
                    entry.last_sync["records_acknowledged"] = stream.records_acknowledged
            self.state.save()
