"""The sync itself: :func:`run_sync` prepares (:mod:`dbkit.runner.prepare`), then runs the source's
``read`` piped into the destination's ``write`` (:mod:`dbkit.runner.pump`) while a thread saves
every state the destination echoes (:mod:`dbkit.runner.acknowledge`). At the end each stream is
marked finished (the source reported it COMPLETE and the destination acknowledged every state
of it) or not, in the progress record and in the state file.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from dbkit.config import MASKER
from dbkit.protocol.messages import dumps_exact
from dbkit.runner.acknowledge import Acknowledger
from dbkit.runner.errors import SyncAborted, SyncError, command_errors
from dbkit.runner.interrupt import Interrupt, Stopper
from dbkit.runner.launch import Launcher, Running, close_quietly, write_private
from dbkit.runner.prepare import prepare
from dbkit.runner.progress import (
    QuietObserver,
    StreamProgress,
    SyncObserver,
    SyncProgress,
    report_error,
    report_warning,
)
from dbkit.runner.pump import Pump
from dbkit.runner.request import SyncRequest
from dbkit.runner.state import SyncState


def run_sync(
    request: SyncRequest, observer: SyncObserver | None = None, interrupt: Interrupt | None = None
) -> SyncProgress:
    """Run one sync; returns its progress record (``.ok`` tells success). Raises SyncAborted
    when it cannot start, and SyncInterrupted when ``interrupt`` was requested before any data
    moved. The state file holds every acknowledged state whatever happens, and no connector
    process outlives the call.

    ``interrupt`` stops the sync when requested (by the signal handlers of
    :func:`dbkit.runner.interrupt.stop_signals`, or by any thread): the progress record then says
    so (``interrupted_by``). Without one, a KeyboardInterrupt while data moves does the same."""
    observer = observer or QuietObserver()
    interrupt = interrupt or Interrupt()
    interrupt.check()
    started = time.monotonic()  # the sync's time includes check and discover
    with tempfile.TemporaryDirectory(prefix="dbkit-sync-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o700)
        stopper = Stopper(interrupt, observer)
        try:
            try:
                source, destination, state, catalog = prepare(request, observer, workdir, stopper.watch)
            except SyncAborted:
                interrupt.check()  # the checks were stopped: not their failure
                raise
            interrupt.check()
            arrow = transport(request.protocol, source, destination) == "arrow"
            threads = in_threads(request, source, destination, arrow)
            progress = SyncProgress(
                sync_id=state.sync_count,
                streams=[
                    StreamProgress(c.descriptor, c.sync_mode, c.destination_sync_mode, c.generation_id or 0)
                    for c in catalog
                ],
                started_at=started,
            )
            catalog_path = workdir / "catalog.json"
            state_path = workdir / "state.json"
            write_private(catalog_path, dumps_exact(catalog.to_json()))
            write_private(state_path, dumps_exact(state.input_state(c.descriptor for c in catalog)))
            observer.phase("reading and writing")
            stopper.transfer(source, progress)
            observer.started(progress)
            try:
                _transfer(
                    source,
                    destination,
                    catalog_path,
                    state_path,
                    state,
                    progress,
                    observer,
                    arrow,
                    stopper,
                    threads,
                )
            finally:
                progress.ended_at = time.monotonic()
                _finish(state, progress)
        finally:
            stopper.close()
            for launcher in stopper.launchers:  # on every path: no connector left running
                launcher.stop_all()
        observer.finished(progress)
        return progress


def transport(protocol: str, source: Launcher, destination: Launcher) -> str:
    """How records travel: ``arrow`` when asked (``auto`` or ``arrow``) and both connectors
    declare ``arrow_transport``, else ``json``; ``arrow`` asked of a connector that cannot take
    it is an error (:class:`SyncAborted`)."""
    if protocol == "json":
        return "json"
    if protocol not in ("auto", "arrow"):
        raise SyncAborted(f"unknown protocol {protocol!r}: auto, arrow or json")
    unable = [launcher.endpoint.name for launcher in (source, destination) if not _takes_arrow(launcher)]
    if not unable:
        return "arrow"
    if protocol == "arrow":
        raise SyncAborted(f"--protocol arrow: {' and '.join(unable)} cannot exchange Arrow frames")
    return "json"


def in_threads(request: SyncRequest, source: Launcher, destination: Launcher, arrow: bool) -> bool:
    """Whether ``read`` and ``write`` run in threads of this process: as the request or an
    endpoint says, else (``in_process`` None everywhere) when records travel as Arrow frames and
    both connectors are dbkit connectors of this installation (their console scripts beside this
    interpreter: the same code), as check and discover already do. One process then holds both:
    measured faster than three (bench/README.md: no interpreter started and no imports repeated
    for them, no pipe copy of the frames through this process); ``--subprocess`` keeps them
    apart (their own memory, crashes and signals)."""
    if request.in_process is not None or any(
        launcher.endpoint.in_process is not None for launcher in (source, destination)
    ):
        return source.in_process and destination.in_process
    return arrow and source.short_in_process() and destination.short_in_process()


def _takes_arrow(launcher: Launcher) -> bool:
    """Whether the connector declares it reads (destination) or may write (source) Arrow frames."""
    try:
        return getattr(launcher.endpoint.info.connector_class(), "arrow_transport", False) is True
    except Exception:  # not importable here (a command only): it speaks JSON lines
        return False


def _transfer(
    source: Launcher,
    destination: Launcher,
    catalog_path: Path,
    state_path: Path,
    state: SyncState,
    progress: SyncProgress,
    observer: SyncObserver,
    arrow: bool,
    stopper: Stopper,
    threads: bool = False,
) -> None:
    """Run ``read`` piped into ``write`` to their end (or to a stop, :mod:`dbkit.runner.interrupt`);
    exit codes go to ``progress`` and every problem to ``progress.errors``."""
    interrupt = stopper.interrupt
    flags = ("--transport", "arrow") if arrow else ()
    observer.log(
        "sync",
        "DEBUG",
        f"records travel as {'Arrow frames' if arrow else 'JSON lines'}, between "
        f"{'threads of this process' if threads else 'processes'}",
    )
    dest = destination.start(
        "write", "--catalog", str(catalog_path), *flags, with_stdin=True, in_process=threads
    )
    acknowledger = Acknowledger(dest.stdout, state, progress, observer)
    ack_thread = threading.Thread(target=acknowledger.run, name="dbkit-sync-acks", daemon=True)
    ack_thread.start()
    assert dest.stdin is not None
    src = source.start(
        "read", "--catalog", str(catalog_path), "--state", str(state_path), *flags, in_process=threads
    )
    pump = Pump(src.stdout, dest.stdin, progress, observer, frames=arrow, stop=interrupt.first)
    try:
        pump.run()
    except KeyboardInterrupt:  # Python's own SIGINT handler (no stop_signals): a stop all the same
        interrupt.request(signal.SIGINT)
    finally:
        stopper.pumped.set()
    if interrupt.requested:
        progress.interrupted_by = interrupt.name  # before the destination reports its input's end
    stopped_source = pump.destination_gone or interrupt.requested or pump.broken
    if stopped_source:
        src.stop()
    close_quietly(src.stdout, dest.stdin)  # end of input: the destination commits what it got and exits
    source_code = _wait(src, interrupt)
    destination_code = _wait(dest, interrupt)
    ack_thread.join()
    progress.source_exit = source_code
    progress.destination_exit = destination_code
    if acknowledger.failure is not None:
        text = MASKER.mask(f"could not record an acknowledged state: {acknowledger.failure}")
        report_error(progress, observer, SyncError("sync", text))
    # exit codes that no TRACE ERROR explained
    origins = {e.origin for e in progress.errors + progress.warnings}
    unexplained: list[SyncError] = []
    if source_code != 0 and not stopped_source and ("source" not in origins or source_code < 0):
        unexplained += command_errors("source", source.endpoint.name, source_code, (), src.stderr_lines())
    if destination_code != 0 and ("destination" not in origins or destination_code < 0):
        errors = command_errors(
            "destination", destination.endpoint.name, destination_code, (), dest.stderr_lines()
        )
        # stopped by the second request: killed (a process), or its output broken (a thread)
        if interrupt.again.is_set() and (destination_code < 0 or threads):
            for error in errors:
                report_warning(progress, observer, error)
        else:
            unexplained += errors
    if pump.destination_gone and not interrupt.again.is_set():  # (else: stopped as asked)
        unexplained.append(
            SyncError("sync", "the destination stopped reading its input; the source was stopped")
        )
    for error in unexplained:
        report_error(progress, observer, error)


def _wait(running: Running, interrupt: Interrupt) -> int:
    """The exit code; a KeyboardInterrupt meanwhile (Python's own SIGINT handler) stops it."""
    try:
        return running.wait()
    except KeyboardInterrupt:
        interrupt.request(signal.SIGINT)
        running.stop()
        return running.wait()


def _finish(state: SyncState, progress: SyncProgress) -> None:
    """Mark each stream finished or not, with this sync's counts, in ``progress`` and the state file."""
    destination_ok = progress.destination_exit == 0
    global_ok = progress.global_states_acknowledged >= progress.global_states_sent
    with state.lock:
        for stream in progress.streams:
            acknowledged_all = stream.states_acknowledged >= stream.states_sent and global_ok
            if stream.states_sent == 0 and progress.global_states_sent == 0:
                acknowledged_all = destination_ok
            stream.finished = stream.status == "COMPLETE" and acknowledged_all
            entry = state.entry(stream.descriptor)
            entry.finished = stream.finished
            entry.last_sync.update(
                {
                    "sync_id": progress.sync_id,
                    "status": stream.status or "NOT_STARTED",
                    "finished": stream.finished,
                    "records_read": stream.records_read,
                    "records_acknowledged": stream.records_acknowledged,
                    "seconds": round(stream.seconds(progress.ended_at), 3),
                }
            )
        state.save()
