"""The live table of ``dbkit sync`` (:mod:`dbkit.runner.bars`): bars against the source's row
estimate, the time left, ``no estimate`` where there is none, and a layout that fits the width."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from dbkit.protocol import DestinationSyncMode, StreamDescriptor, SyncMode
from dbkit.runner import Endpoint, StreamProgress, SyncProgress, SyncRequest
from dbkit.runner.bars import short_count
from dbkit.runner.display import Reporter
from dbkit.runner.registry import lookup

LONG_NAME = "customers_with_a_rather_long_table_name_" * 2


def a_sync() -> SyncProgress:
    """Four streams: reading with an estimate, complete (past its stale estimate), reading
    without an estimate, and waiting."""
    streams = [
        StreamProgress(StreamDescriptor(name, ns), SyncMode.INCREMENTAL, DestinationSyncMode.APPEND_DEDUP, 0)
        for name, ns in (("orders", "shop"), (LONG_NAME, "shop"), ("events", None), ("later", None))
    ]
    now = time.monotonic()
    orders, customers, events, _ = streams
    orders.started_at, orders.status, orders.row_estimate = now - 10, "STARTED", 1_000_000
    orders.records_read, orders.records_acknowledged = 250_000, 200_000
    customers.started_at, customers.ended_at, customers.status = now - 20, now - 5, "COMPLETE"
    customers.row_estimate, customers.records_read, customers.records_acknowledged = 5_000, 5_100, 5_100
    events.started_at, events.status, events.records_read = now - 3, "STARTED", 12_345
    return SyncProgress(sync_id=3, streams=streams, started_at=now - 20)


def rendered(width: int) -> list[str]:
    """The live table after two refreshes (the rate needs two samples), line by line."""
    screen = io.StringIO()
    console = Console(file=screen, width=width, force_terminal=True, color_system=None)
    reporter = Reporter(console, live=False, verbose=False)
    reporter.progress = progress = a_sync()
    reporter.render_live()
    time.sleep(0.05)
    progress.streams[0].records_read += 5_000
    console.print(reporter.render_live())
    return screen.getvalue().splitlines()


@pytest.mark.parametrize("width", [40, 60, 79, 80, 129, 130, 200])
def test_the_live_table_fits_the_width(width: int) -> None:
    lines = rendered(width)
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    assert len(lines) == 6, "\n".join(lines)  # header, four streams, totals: nothing wraps
    assert lines[1].startswith("shop.o")  # a name is cut (with an ellipsis), never dropped
    assert lines[3].startswith("events")


def test_a_wide_table_shows_every_column_the_estimate_and_the_time_left() -> None:
    lines = rendered(140)
    header, orders, customers, events, later, totals = lines
    for column in ("stream", "mode", "status", "progress", "read", "acknowledged", "rows/s", "time", "left"):
        assert column in header
    assert "255,000 / ~1,000,000" in orders
    assert "200,000" in orders
    left = orders.split()[-1]
    assert left.count(":") == 1, orders  # m:ss at the recent rate
    assert "5,100 / ~5,000" in customers  # past a stale estimate: no time left, done
    assert customers.rstrip().endswith("done")
    assert "12,345 (no estimate)" in events
    assert events.rstrip().endswith("?")
    assert "waiting" in later
    assert "sync 3: 272,445 read, 205,100 acknowledged" in totals


def test_a_narrow_table_keeps_the_bar_the_counts_and_the_time_left() -> None:
    header, orders, customers, events, later, totals = rendered(60)
    assert header.split() == ["stream", "progress", "read", "left"]
    assert later.split() == ["later", "0"]  # waiting: an empty bar, no estimate yet
    assert "255.0k/~1.0M" in orders
    assert orders.split()[-1].count(":") == 1
    assert "shop.customers_with_a" in customers
    assert "…" in customers  # the long name is cut, the numbers are not
    assert "5.1k/~5.0k" in customers
    assert "12.3k no est." in events
    assert "272.4k read, 205.1k acked" in totals


def test_short_counts() -> None:
    assert [short_count(n) for n in (0, 999, 1_000, 12_345, 4_500_000, 7_200_000_000)] == [
        "0",
        "999",
        "1.0k",
        "12.3k",
        "4.5M",
        "7.2G",
    ]


def test_the_summary_of_a_stop_fits_a_narrow_console_and_is_not_an_error(tmp_path: Path) -> None:
    progress = a_sync()
    progress.ended_at = time.monotonic()
    progress.interrupted_by = "SIGINT"
    source, destination = lookup("source-sqlite"), lookup("destination-sqlite")
    assert source is not None
    assert destination is not None
    request = SyncRequest(
        Endpoint(source, {"path": "s.db"}), Endpoint(destination, {"path": "w.db"}), tmp_path
    )
    screen = io.StringIO()
    console = Console(file=screen, width=60, force_terminal=True, color_system=None)
    Reporter(console, live=False, verbose=False).summary(progress, request)
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60, "\n".join(lines)
    text = screen.getvalue()
    for count in ("250,000", "200,000", "5,100", "12,345"):
        assert count in text  # numbers are never cut
    assert "Sync 3 interrupted by SIGINT" in text
    assert "run again to resume" in text
    assert "FAILED" not in text
    assert "ERROR" not in text


class Terminal(io.StringIO):
    """A terminal that hangs up (SIGHUP): from then on every write fails with EIO."""

    hung_up = False

    def write(self, text: str) -> int:
        if self.hung_up:
            raise OSError(5, "Input/output error")
        return super().write(text)


def test_a_terminal_gone_after_sighup_silences_the_display_instead_of_failing(tmp_path: Path) -> None:
    progress = a_sync()
    progress.ended_at = time.monotonic()
    progress.interrupted_by = "SIGHUP"
    source, destination = lookup("source-sqlite"), lookup("destination-sqlite")
    assert source is not None
    assert destination is not None
    request = SyncRequest(
        Endpoint(source, {"path": "s.db"}), Endpoint(destination, {"path": "w.db"}), tmp_path
    )
    terminal = Terminal()
    console = Console(file=terminal, width=100, force_terminal=True)
    reporter = Reporter(console, live=True, verbose=False, refresh_seconds=0.01)
    reporter.started(progress)
    wait = time.monotonic() + 5
    while reporter.renders == 0 and time.monotonic() < wait:
        time.sleep(0.01)
    assert "orders" in terminal.getvalue()
    terminal.hung_up = True
    wait = time.monotonic() + 5
    while not console.quiet and time.monotonic() < wait:  # the next refresh fails: no more drawing
        time.sleep(0.01)
    assert console.quiet
    reporter.stopped("a stop")
    reporter.close()
    reporter.summary(progress, request)  # no exception, nothing printed

    console = Console(file=Terminal(), width=100, force_terminal=True)
    console.file.hung_up = True  # type: ignore[attr-defined]
    reporter = Reporter(console, live=True, verbose=False)
    reporter.started(progress)  # gone from the start
    reporter.close()
    reporter.summary(progress, request)
    assert console.quiet
