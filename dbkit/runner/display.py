"""How ``dbkit sync`` shows a sync to a person, on a ``rich`` console: a live table refreshed a
few times a second (never per record) or one line per stream status change; connector logs and
errors as they come; a summary table at the end. Everything printed is masked.
"""

from __future__ import annotations

import threading
import time

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dbkit.config import MASKER
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
_STATUS_STYLE = {"complete": "green", "incomplete": "red", "not acknowledged": "red", "interrupted": "red"}


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
        self.console.print(text)

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
        self._live.start()
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
        live.update(self.render_live(), refresh=True)
        self.display_seconds += time.perf_counter() - started
        self.renders += 1

    def render_live(self) -> Group:
        progress = self.progress
        assert progress is not None
        now = time.monotonic()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name, justify in (
            ("stream", "left"),
            ("mode", "left"),
            ("status", "left"),
            ("read", "right"),
            ("acknowledged", "right"),
            ("rows/s", "right"),
            ("time", "right"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for s in progress.streams:
            status = (s.status or "waiting").lower()
            read = f"{s.records_read:,}"
            if s.row_estimate:
                read += f" / ~{s.row_estimate:,}"
            seconds = s.seconds(now)
            table.add_row(
                Text(s.name),  # names are data, never rich markup
                s.mode,
                status,
                read,
                f"{s.records_acknowledged:,}",
                _rate(s.records_read, seconds),
                f"{seconds:.1f}s" if s.started_at is not None else "",
            )
        total = progress.seconds()
        caption = Text(
            f"sync {progress.sync_id}: {progress.records_read:,} read, {progress.records_acknowledged:,} "
            f"acknowledged, {total:.1f} s ({_rate(progress.records_read, total)} rows/s)",
            style="dim",
        )
        return Group(table, caption)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._live is not None:
            self._live.stop()
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
        table.add_column("stream", no_wrap=True)
        table.add_column("sync mode", no_wrap=True)
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
            "ok" if progress.ok else "FAILED",
            f"{seconds:.2f}",
        )
        self.console.print(table)
        rate = _rate(progress.records_read, seconds)
        if progress.ok:
            self._print(
                f"Sync {progress.sync_id} done in {seconds:.2f} s: {progress.records_read:,} records read, "
                f"{progress.records_acknowledged:,} acknowledged ({rate} rows/s). "
                f"State: {request.state_path}",
                "green",
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
