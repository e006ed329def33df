"""The live table of ``dbkit sync``: one row per stream with a progress bar (rich's progress), the
records read against the source's row estimate, the time left at the recent rate, and a layout
that fits the console's width.

The source's estimate (a TRACE ESTIMATE, from the database's statistics: PostgreSQL's
``reltuples``, MySQL's InnoDB statistics, SQLite's ``sqlite_stat1``) is what the bar and the
time left measure against; a stream without one says ``no estimate`` and its bar pulses. An
estimate is a statistic: when the rows read pass it, the row says so instead of a time left.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from dbkit.runner.progress import StreamProgress, SyncProgress

WIDE = 130
"""At least this many columns: every column (mode, acknowledged, rows/s, time)."""
MEDIUM = 80
"""At least this many columns: stream, status, bar, read, rows/s, time left; fewer: stream, bar,
read (short numbers), time left."""

SPEED_WINDOW_SECONDS = 10.0
"""The time left is the rows still to read at the rate of the last few seconds."""

_STATUS_STYLE = {"complete": "green", "incomplete": "red"}


def short_count(n: int) -> str:
    """12 -> ``12``, 12,345 -> ``12.3k``, 4,500,000 -> ``4.5M``."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _stream(task: Task) -> StreamProgress:
    stream: StreamProgress = task.fields["stream"]
    return stream


class _Column(ProgressColumn):
    """A column rendered from the row's :class:`StreamProgress` (names are data: never markup)."""

    def __init__(
        self,
        header: str,
        render: Callable[[Task], RenderableType],
        justify: str = "left",
        min_width: int | None = None,
    ) -> None:
        super().__init__(
            table_column=Column(
                header=header,
                justify=justify,  # type: ignore[arg-type]
                no_wrap=True,
                overflow="ellipsis",
                min_width=min_width,
            )
        )
        self._render = render

    def render(self, task: Task) -> RenderableType:
        return self._render(task)


def _bar(width: int) -> Callable[[Task], RenderableType]:
    def render(task: Task) -> RenderableType:
        stream = _stream(task)
        if stream.status is None:  # not started: an empty bar
            return ProgressBar(total=1, completed=0, width=width)
        if stream.status in ("COMPLETE", "INCOMPLETE") or stream.row_estimate:
            total = stream.row_estimate or 0
            read = stream.records_read
            if stream.status == "COMPLETE" or read > total:
                total = read = max(read, total, 1)
            return ProgressBar(total=total, completed=read, width=width)
        return ProgressBar(total=None, pulse=True, width=width, animation_time=task.get_time())

    return render


def _read(short: bool) -> Callable[[Task], RenderableType]:
    def render(task: Task) -> RenderableType:
        stream = _stream(task)
        read = short_count(stream.records_read) if short else f"{stream.records_read:,}"
        if stream.row_estimate is None:
            if stream.status is None:
                return Text(read)
            return Text.assemble(read, (" no est." if short else " (no estimate)", "dim"))
        estimate = short_count(stream.row_estimate) if short else f"{stream.row_estimate:,}"
        return Text(f"{read}/~{estimate}" if short else f"{read} / ~{estimate}")

    return render


def _left(task: Task) -> RenderableType:
    """The time left at the recent rate; what is known instead when there is no such time."""
    stream = _stream(task)
    if stream.status is None:
        return Text("")
    if stream.status in ("COMPLETE", "INCOMPLETE") or stream.ended_at is not None:
        return Text("done" if stream.status == "COMPLETE" else "", style="dim")
    if stream.row_estimate is None:
        return Text("?", style="dim")
    remaining = stream.row_estimate - stream.records_read
    if remaining <= 0:
        return Text("> est.", style="dim")
    speed = task.speed
    if not speed:
        return Text("...", style="dim")
    return Text(_clock(remaining / speed + 0.999))


def _status(task: Task) -> RenderableType:
    stream = _stream(task)
    status = "waiting" if stream.status is None else stream.status.lower()
    if status == "started":
        status = "reading"
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _rows_per_second(task: Task) -> RenderableType:
    stream = _stream(task)
    seconds = stream.seconds()
    return Text(f"{stream.records_read / seconds:,.0f}" if seconds > 0.05 and stream.records_read else "-")


def _time(task: Task) -> RenderableType:
    stream = _stream(task)
    return Text(f"{stream.seconds():.1f}s" if stream.started_at is not None else "")


def _columns(width: int) -> tuple[ProgressColumn, ...]:
    name = _Column("stream", lambda t: Text(_stream(t).name), min_width=6)
    if width >= WIDE:
        return (
            name,
            _Column("mode", lambda t: Text(_stream(t).mode)),
            _Column("status", _status),
            _Column("progress", _bar(16)),
            _Column("read", _read(False), justify="right"),
            _Column("acknowledged", lambda t: Text(f"{_stream(t).records_acknowledged:,}"), justify="right"),
            _Column("rows/s", _rows_per_second, justify="right"),
            _Column("time", _time, justify="right"),
            _Column("left", _left, justify="right"),
        )
    if width >= MEDIUM:
        return (
            name,
            _Column("status", _status),
            _Column("progress", _bar(12)),
            _Column("read", _read(False), justify="right"),
            _Column("rows/s", _rows_per_second, justify="right"),
            _Column("left", _left, justify="right"),
        )
    return (
        name,
        _Column("progress", _bar(8)),
        _Column("read", _read(True), justify="right"),
        _Column("left", _left, justify="right"),
    )


class StreamBars:
    """The streams of one sync as tasks of a rich :class:`~rich.progress.Progress` (which keeps
    the recent rate of each); :meth:`table` renders them for a console width. Call it from one
    thread (the display's)."""

    def __init__(self, progress: SyncProgress, console: Console) -> None:
        self.progress = progress
        self.bars = Progress(console=console, auto_refresh=False, speed_estimate_period=SPEED_WINDOW_SECONDS)
        self.tasks: list[tuple[TaskID, StreamProgress]] = [
            (self.bars.add_task(s.name, start=False, total=None, stream=s), s) for s in progress.streams
        ]
        self.console = console
        self._width: int | None = None
        self.columns: tuple[ProgressColumn, ...] = ()

    def table(self, width: int) -> Table:
        """The rows as they are now, in ``width`` columns."""
        bars = self.bars
        for task_id, stream in self.tasks:
            task = bars.tasks[task_id]
            if stream.started_at is not None and not task.started:
                bars.start_task(task_id)
            total = float(stream.row_estimate) if stream.row_estimate else None
            if total is not None and total != task.total:
                bars.update(task_id, total=total)
            bars.update(task_id, completed=stream.records_read)
        if width != self._width:
            self.columns = _columns(width)
            self._width = width
        columns = [column.get_table_column().copy() for column in self.columns]
        rows = [[column(task) for column in self.columns] for task in bars.tasks]
        # the stream names get what the other columns leave (they are cut with an ellipsis)
        options = self.console.options.update_width(width)
        others = sum(
            max(
                [cell_len(str(c.header))]
                + [Measurement.get(self.console, options, r[i]).maximum for r in rows]
            )
            for i, c in enumerate(columns)
            if i > 0
        )
        columns[0].max_width = max(columns[0].min_width or 1, width - others - 2 * (len(columns) - 1))
        table = Table(*columns, box=None, padding=(0, 1), pad_edge=False, header_style="bold")
        for row in rows:
            table.add_row(*row)
        return table
