"""How ``dbkit sync`` shows a sync to a person, on a ``rich`` console: a live table refreshed a
few times a second (never per record) or one line per stream status change; connector logs and
errors as they come; a summary table at the end. Everything printed is masked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dbkit.config import MASKER
from dbkit.runner.bars import StreamBars, short_count
from dbkit.runner.errors import SyncAborted, SyncError
from dbkit.runner.progress import StreamProgress, SyncProgress
from dbkit.runner.request import SyncRequest

REFRESH_SECONDS = 0.25

_LEVEL_STYLE = {
    "FATAL": "bold red",
    "ERROR": "red",
    "WARN": "yellow",
    "INFO": "",
    "DEBUG": "dim",
    "TRACE": "dim",
}
_STATUS_STYLE = {
    "complete": "green",
    "incomplete": "red",
    "not acknowledged": "red",
    "interrupted": "yellow",
}


def _records(n: int) -> str:
    return f"{n:,} record{'' if n == 1 else 's'}"


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}" if seconds > 0.05 and records else "-"


class Reporter:
    """Shows a sync: live table (refreshed a few times a second, never per record) or lines.

    ``display_seconds`` and ``renders`` measure what the live display cost.
    """

    def __init__(self, console: Console, live: bool, verbose: bool, refresh_seconds: float = REFRESH_SECONDS):
        self.console = console
        self.live_enabled = live
        self.verbose = verbose
        self.refresh_seconds = refresh_seconds
        self.progress: SyncProgress | None = None
        self._live: Live | None = None
        self._bars: StreamBars | None = None
        self._bars_of: SyncProgress | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.display_seconds = 0.0
        self.renders = 0

    # ------------------------------------------------------------------ plain output
    def _print(self, text: str | Text, style: str = "") -> None:
        if isinstance(text, str):
            text = Text(MASKER.mask(text), style=style)
        else:
            text = Text(MASKER.mask(text.plain), style=style or text.style)
        self._out(text)

    def _out(self, renderable: Any) -> None:
        """Print, unless the terminal is gone (after SIGHUP a write fails): then print nothing more."""
        try:
            self.console.print(renderable)
        except OSError:
            self._mute()

    def _mute(self) -> None:
        self.console.quiet = True
        self.live_enabled = False

    def stopped(self, text: str) -> None:
        """A stop requested by the user (not an error)."""
        self._print(f"dbkit sync: {text}", "yellow")

    def say(self, text: str) -> None:
        self._print(text)

    def fail(self, text: str) -> None:
        self._print(f"dbkit sync: {text}", "bold red")

    # ------------------------------------------------------------------ observer
    def phase(self, text: str) -> None:
        self._print(f"... {text}", "dim")

    def log(self, origin: str, level: str, text: str, stack_trace: str | None = None) -> None:
        if level in ("DEBUG", "TRACE") and not self.verbose:
            return
        self._print(f"{origin:<11} {level:<5} {text}", _LEVEL_STYLE.get(level, ""))
        if stack_trace and self.verbose:
            self._print(stack_trace, "dim")

    def started(self, progress: SyncProgress) -> None:
        self.progress = progress
        if not self.live_enabled:
            return
        self._live = Live(console=self.console, auto_refresh=False, transient=True, redirect_stderr=False)
        try:
            self._live.start()
        except OSError:  # the terminal is already gone
            self._live = None
            self._mute()
            return
        self._thread = threading.Thread(target=self._refresh_loop, name="dbkit-sync-progress", daemon=True)
        self._thread.start()

    def stream_status(self, stream: StreamProgress, status: str) -> None:
        if self._live is not None:
            return
        if status == "STARTED":
            self._print(f"{stream.name:<24} STARTED   {stream.mode}")
        else:
            style = "green" if status == "COMPLETE" else "red"
            self._print(
                f"{stream.name:<24} {status:<9} {_records(stream.records_read)} read "
                f"in {stream.seconds():.2f} s",
                style,
            )

    def error(self, error: SyncError) -> None:
        self._print(f"ERROR {error}", "bold red")
        if self.verbose:
            for extra in (error.internal_message, error.stack_trace):
                if extra:
                    self._print(extra, "dim")

    def finished(self, progress: SyncProgress) -> None:
        self.close()

    def aborted(self, exc: SyncAborted) -> None:
        self.close()
        if not exc.errors:
            self.fail(exc.message)
            return
        for error in exc.errors:
            self.error(error)
        self.fail("the sync did not start")

    # ------------------------------------------------------------------ live display
    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self._refresh()

    def _refresh(self) -> None:
        live = self._live
        if live is None:
            return
        started = time.perf_counter()
        try:
            live.update(self.render_live(), refresh=True)
        except OSError:  # the terminal is gone (SIGHUP): stop drawing
            self._mute()
        self.display_seconds += time.perf_counter() - started
        self.renders += 1

    def render_live(self) -> Group:
        """One bar per stream (rich's progress: a bar, the share read and the time left where the
        source estimated the stream's rows; ``no estimate`` where it did not) in a table that
        fits the console's width, and a line of totals."""
        progress = self.progress
        assert progress is not None
        bars = self._bars
        if bars is None or self._bars_of is not progress:
            bars = self._bars = StreamBars(progress, self.console)
            self._bars_of = progress
        width = self.console.width
        table = bars.table(width)
        total = progress.seconds()
        rate = _rate(progress.records_read, total)
        if width >= 80:
            text = (
                f"sync {progress.sync_id}: {progress.records_read:,} read, "
                f"{progress.records_acknowledged:,} acknowledged, {total:.1f} s ({rate} rows/s)"
            )
        else:
            text = (
                f"{short_count(progress.records_read)} read, "
                f"{short_count(progress.records_acknowledged)} acked, {total:.0f} s"
            )
        return Group(table, Text(text, style="dim", no_wrap=True, overflow="ellipsis"))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._live is not None:
            try:
                self._live.stop()
            except OSError:  # the terminal is gone (SIGHUP)
                self._mute()
            self._live = None

    # ------------------------------------------------------------------ summary
    def summary(self, progress: SyncProgress, request: SyncRequest) -> None:
        table = Table(
            title=Text(f"sync {progress.sync_id}: {request.source.label} -> {request.destination.label}"),
            box=box.SIMPLE_HEAD,
            title_justify="left",
            pad_edge=False,
            show_edge=False,
        )
        # on a narrow terminal the names and modes wrap, the numbers never do
        table.add_column("stream", overflow="fold")
        table.add_column("sync mode")
        table.add_column("read", justify="right", no_wrap=True)
        table.add_column("acked", justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("seconds", justify="right", no_wrap=True)
        for s in progress.streams:
            table.add_row(
                Text(s.name),
                s.mode,
                f"{s.records_read:,}",
                f"{s.records_acknowledged:,}",
                Text(s.outcome, style=_STATUS_STYLE.get(s.outcome, "")),
                f"{s.seconds(progress.ended_at):.2f}",
            )
        seconds = progress.seconds()
        table.add_section()
        table.add_row(
            "total",
            "",
            f"{progress.records_read:,}",
            f"{progress.records_acknowledged:,}",
            "interrupted" if progress.interrupted_by else "ok" if progress.ok else "FAILED",
            f"{seconds:.2f}",
        )
        self._out(table)
        rate = _rate(progress.records_read, seconds)
        if progress.ok:
            self._print(
                f"Sync {progress.sync_id} done in {seconds:.2f} s: {progress.records_read:,} records read, "
                f"{progress.records_acknowledged:,} acknowledged ({rate} rows/s). "
                f"State: {request.state_path}",
                "green",
            )
        elif progress.interrupted_by is not None:
            unfinished = [s.name for s in progress.streams if not s.finished]
            detail = f"; not finished: {', '.join(unfinished)}" if unfinished else ""
            problems = len(progress.errors)
            if problems:
                detail += f"; {problems} error{'s' if problems != 1 else ''}"
            self._print(
                f"Sync {progress.sync_id} interrupted by {progress.interrupted_by} after {seconds:.2f} s: "
                f"{progress.records_acknowledged:,} records acknowledged{detail}. Everything acknowledged "
                f"is saved in {request.state_path}: run again to resume.",
                "yellow",
            )
        else:
            problems = len(progress.errors)
            unfinished = [s.name for s in progress.streams if not s.finished]
            detail = f"{problems} error{'s' if problems != 1 else ''}"
            if unfinished:
                detail += f"; not finished: {', '.join(unfinished)}"
            self._print(
                f"Sync {progress.sync_id} FAILED ({detail}). Everything acknowledged is saved in "
                f"{request.state_path}: run again to resume.",
                "bold red",
            )
