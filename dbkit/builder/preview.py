"""``dbkit preview``: the Connector Builder's test read, for any source on the command line.

:func:`run_preview` runs ``check`` and ``discover`` (at once), then reads each selected stream on
its own (a ``read`` with a one-stream catalog and no state) and stops the source as soon as it
has sent ``limit`` records of it, plus the STATE that covers exactly those records when one
follows at once. A 1,000,000-row table thus previews in about the time of ten rows.

Nothing is saved anywhere: the config and catalogs go to a private temporary directory (deleted
afterwards) and no state file is read or written. A dbkit source (its config model has
``checkpoint_records``) is asked to checkpoint every ``limit`` records, so the state shown is the
one a sync that stopped after the records shown would have saved; any other source's state is
shown only when it sent one within the records shown.

The connector runs as a subprocess (its console script, found like ``dbkit sync`` finds it) or,
with ``in_process``, in a thread of this process; any command speaking the protocol can be
previewed. Every text kept here passes through the secret masker.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dbkit.config import MASKER
from dbkit.protocol import AirbyteStream, ConfiguredCatalog, ConfiguredStream
from dbkit.protocol.messages import dumps_exact
from dbkit.runner.errors import SyncAborted, SyncError, command_errors, trace_error
from dbkit.runner.launch import Launcher, write_private
from dbkit.runner.output import parse_line
from dbkit.runner.plan import configure_stream, select_streams
from dbkit.runner.prepare import _check, _discover
from dbkit.runner.request import Endpoint
from dbkit.threads import ContextThreadPoolExecutor

DEFAULT_LIMIT = 10
STATE_GRACE_SECONDS = 2.0
"""How long to wait, after the last record shown, for the STATE that covers it."""
DEFAULT_TIMEOUT = 300.0
"""How long one stream's read may take to send its records before the preview gives up."""
READERS = 3
"""Streams read at once (each its own ``read``: mostly the source's start-up time)."""
WARN_LEVELS = frozenset({"WARN", "ERROR", "FATAL"})


@dataclass
class PreviewedRecord:
    data: Mapping[str, Any]
    changes: list[Mapping[str, Any]] = field(default_factory=list)
    """The record's ``meta.changes``: values the source nulled or truncated, and why."""


@dataclass
class StreamPreview:
    """The test read of one stream."""

    configured: ConfiguredStream
    records: list[PreviewedRecord] = field(default_factory=list)
    state: Any = None
    """The last STATE message (its ``state`` object) covering only the records shown, if any."""
    status: str | None = None
    """The stream's last status (STARTED, COMPLETE, INCOMPLETE) before the read stopped."""
    more: bool = False
    """True when the source sent more records than shown."""
    stopped: bool = False
    """True when the preview stopped the source before it finished (``more``, or it went quiet
    after the records shown, or the timeout)."""
    seconds: float = 0.0
    errors: list[SyncError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def stream(self) -> AirbyteStream:
        return self.configured.stream


@dataclass
class PreviewResult:
    """What ``dbkit preview`` found: the check, the streams read, and what stopped it."""

    connector: str
    limit: int
    check_ok: bool = False
    discovered: list[AirbyteStream] = field(default_factory=list)
    streams: list[StreamPreview] = field(default_factory=list)
    errors: list[SyncError] = field(default_factory=list)
    """Errors of check and discover, and unknown stream names (origin ``preview``)."""

    @property
    def ok(self) -> bool:
        return self.check_ok and not self.errors and not any(s.errors for s in self.streams)


def preview_config(endpoint: Endpoint, limit: int) -> dict[str, Any]:
    """The endpoint's config, asking a dbkit source to checkpoint after every ``limit`` records
    (when its config model has ``checkpoint_records``; a smaller value given is kept)."""
    config = dict(endpoint.config)
    model = endpoint.info.config_model()
    if model is not None and "checkpoint_records" in model.model_fields:
        given = config.get("checkpoint_records")
        keep = isinstance(given, int) and not isinstance(given, bool) and 1 <= given < limit
        config["checkpoint_records"] = given if keep else limit
    return config


def run_preview(
    endpoint: Endpoint,
    *,
    streams: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    full_refresh: bool = False,
    in_process: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> PreviewResult:
    """Check, discover and test-read ``limit`` records of each stream (of ``streams``, names or
    namespace.name; all when None). Never raises for what the connector reports: errors are in
    the result. Streams are configured as a first sync would configure them (incremental with
    the default cursor where there is one; ``full_refresh`` makes every stream full refresh)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    result = PreviewResult(endpoint.label, limit)
    preview = Endpoint(endpoint.info, preview_config(endpoint, limit), endpoint.label)
    with tempfile.TemporaryDirectory(prefix="dbkit-preview-") as tmp:
        workdir = Path(tmp)
        launcher = Launcher(preview, workdir, in_process)
        with ContextThreadPoolExecutor(max_workers=2, thread_name_prefix="dbkit-preview") as pool:
            checked = pool.submit(_check, launcher, "source")
            discovered = pool.submit(_discover, launcher)
            check_errors = checked.result()
            found, discover_errors = discovered.result()
        result.check_ok = not check_errors
        result.errors.extend(check_errors)
        result.errors.extend(_new_errors(check_errors, discover_errors))
        result.discovered = found
        if result.errors:
            return result
        try:
            selected = select_streams(found, streams)
        except SyncAborted as exc:  # unknown names, with the streams there are
            result.errors.append(SyncError("preview", MASKER.mask(str(exc)), "config_error"))
            return result
        if not selected:
            result.errors.append(SyncError("preview", "the source has no streams", "config_error"))
            return result
        reads = []
        with ContextThreadPoolExecutor(READERS, thread_name_prefix="dbkit-preview") as pool:
            for i, stream in enumerate(selected):
                configured, _ = configure_stream(stream, None, 1, full_refresh)
                catalog = workdir / f"catalog-{i}.json"
                write_private(catalog, dumps_exact(ConfiguredCatalog((configured,)).to_json()))
                reads.append(pool.submit(read_stream, launcher, configured, catalog, limit, timeout))
            result.streams.extend(read.result() for read in reads)
    return result


def _new_errors(check: list[SyncError], discover: list[SyncError]) -> list[SyncError]:
    """Discover's errors that check did not already report (a failed check says why in its
    CONNECTION_STATUS, and discover then fails for the same reason with a TRACE error, whose
    failure_type the check's error takes)."""
    new = []
    for error in discover:
        same = next((c for c in check if error.message and error.message in c.message), None)
        if same is None:
            new.append(error)
        elif same.failure_type is None:
            same.failure_type = error.failure_type
    return new


def _pump(stdout: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    with contextlib.suppress(OSError, ValueError):  # our end closed by stop()
        for line in stdout:
            lines.put(line)
    lines.put(None)


def read_stream(
    launcher: Launcher, configured: ConfiguredStream, catalog: Path, limit: int, timeout: float
) -> StreamPreview:
    """``read`` one stream until ``limit`` records (and the STATE right after them) came, or the
    source finished, then stop it (see the module doc)."""
    preview = StreamPreview(configured)
    started = time.monotonic()
    running = launcher.start("read", "--catalog", str(catalog))
    lines: queue.Queue[bytes | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(running.stdout, lines), daemon=True)
    reader.start()
    ended = False
    try:
        ended = _follow(preview, lines, limit, started + timeout)
    finally:
        if not ended:
            running.terminate()  # its output ends at once (a thread's pipe broken, a process signalled)
        reader.join(timeout=10)
        running.stop()  # waits for it (and for a process, anything it left behind)
        code = running.wait()
    preview.stopped = not ended
    if ended and code != 0 and not any(e.failure_type for e in preview.errors):
        preview.errors.extend(
            command_errors("source", launcher.endpoint.name, code, [], running.stderr_lines())
        )
    preview.seconds = time.monotonic() - started
    return preview


def _follow(preview: StreamPreview, lines: queue.Queue[bytes | None], limit: int, deadline: float) -> bool:
    """Take the source's messages until it ends (True) or the preview has what it shows (False):
    a record past ``limit``, or nothing more within the grace period after the last one shown."""
    seen = 0
    while True:
        wait = deadline - time.monotonic()
        if seen >= limit:
            wait = min(wait, STATE_GRACE_SECONDS)
        try:
            line = lines.get(timeout=max(wait, 0.0))
        except queue.Empty:
            if seen < limit:
                preview.errors.append(
                    SyncError(
                        "preview", f"gave up waiting: the source sent {seen} records before the timeout"
                    )
                )
            return False
        if line is None:
            return True
        message = parse_line(line)
        if not isinstance(message, dict):
            if line.strip():
                text = line.decode("utf-8", "replace").rstrip()[:300]
                preview.warnings.append(MASKER.mask(f"output that is not a protocol message: {text}"))
            continue
        kind = message.get("type")
        if kind == "RECORD":
            if seen >= limit:
                preview.more = True
                return False
            seen += 1
            preview.records.append(_record(message.get("record")))
        elif kind == "STATE":
            preview.state = message.get("state")
        elif kind == "TRACE":
            _trace(preview, message.get("trace"))
        elif kind == "LOG":
            _log(preview, message.get("log"))


def _record(record: Any) -> PreviewedRecord:
    if not isinstance(record, Mapping):
        return PreviewedRecord({})
    data = record.get("data")
    meta = record.get("meta")
    changes = meta.get("changes") if isinstance(meta, Mapping) else None
    return PreviewedRecord(
        data if isinstance(data, Mapping) else {},
        [c for c in changes if isinstance(c, Mapping)] if isinstance(changes, list) else [],
    )


def _trace(preview: StreamPreview, trace: Any) -> None:
    if not isinstance(trace, Mapping):
        return
    if trace.get("type") == "ERROR" and isinstance(trace.get("error"), Mapping):
        preview.errors.append(trace_error("source", trace["error"]))
    elif trace.get("type") == "STREAM_STATUS" and isinstance(trace.get("stream_status"), Mapping):
        status = trace["stream_status"].get("status")
        if isinstance(status, str):
            preview.status = status


def _log(preview: StreamPreview, log: Any) -> None:
    if isinstance(log, Mapping) and str(log.get("level")) in WARN_LEVELS:
        preview.warnings.append(MASKER.mask(f"{log.get('level')}: {log.get('message') or ''}"))
