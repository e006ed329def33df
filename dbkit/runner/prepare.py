"""Everything before data moves: ``check`` on both connectors and ``discover`` on the source (at
once), the streams to sync, and the configured catalog recorded in the state file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dbkit.config import MASKER
from dbkit.protocol import AirbyteStream, ConfiguredCatalog, ProtocolInputError, parse_airbyte_stream
from dbkit.runner.errors import SyncAborted, SyncError, command_errors
from dbkit.runner.launch import Launcher
from dbkit.runner.overlap import refuse_overwriting_source
from dbkit.runner.plan import plan_catalog, select_streams
from dbkit.runner.progress import SyncObserver
from dbkit.runner.request import SyncRequest
from dbkit.runner.state import SyncState
from dbkit.threads import ContextThreadPoolExecutor


def _check(launcher: Launcher, origin: str) -> list[SyncError]:
    """``check``: no errors when the connector reported SUCCEEDED and exited 0."""
    code, messages, _, stderr = launcher.run("check")
    statuses = [m["connectionStatus"] for m in messages if m.get("type") == "CONNECTION_STATUS"]
    errors = command_errors(origin, launcher.endpoint.name, code, messages, stderr)
    if statuses and isinstance(statuses[-1], Mapping) and statuses[-1].get("status") == "FAILED":
        text = MASKER.mask(str(statuses[-1].get("message") or "no reason given"))
        return [SyncError(origin, f"{launcher.endpoint.label}: connection check failed: {text}"), *errors]
    if not statuses and not errors:
        errors.append(SyncError(origin, f"{launcher.endpoint.label}: check printed no CONNECTION_STATUS"))
    return errors


def _discover(launcher: Launcher) -> tuple[list[AirbyteStream], list[SyncError]]:
    """``discover``: the source's streams, or the errors that stopped it."""
    code, messages, _, stderr = launcher.run("discover")
    errors = command_errors("source", launcher.endpoint.name, code, messages, stderr)
    catalogs = [m["catalog"] for m in messages if m.get("type") == "CATALOG"]
    if errors:
        return [], errors
    if not catalogs or not isinstance(catalogs[-1], Mapping):
        return [], [SyncError("source", f"{launcher.endpoint.label}: discover printed no CATALOG")]
    items = catalogs[-1].get("streams")
    streams: list[AirbyteStream] = []
    try:
        for i, item in enumerate(items if isinstance(items, list) else []):
            streams.append(parse_airbyte_stream(item, f"streams[{i}]", "discovered catalog"))
    except ProtocolInputError as exc:
        return [], [SyncError("source", str(exc))]
    return streams, []


def _same_endpoints(state: SyncState, request: SyncRequest) -> None:
    """Refuse a state file written for another source or destination (another connector, or the
    same connector on another database): its positions would skip rows that were never synced."""
    for side, saved, now in (
        ("source", state.source, request.source.identity()),
        ("destination", state.destination, request.destination.identity()),
    ):
        if saved is None:
            continue
        same = saved == now["connector"] if isinstance(saved, str) else saved == now
        if not same:
            raise SyncAborted(
                f"the state file {state.path} belongs to a sync whose {side} is {_shown(saved)}, but "
                f"this sync's {side} is {_shown(now)}; give another --state-file (or delete that file "
                "to start over with a full sync)"
            )


def _shown(identity: Any) -> str:
    if isinstance(identity, str):
        return identity
    details = ", ".join(f"{k}={v}" for k, v in identity.items() if k != "connector")
    return f"{identity.get('connector')} ({details})" if details else str(identity.get("connector"))


def prepare(
    request: SyncRequest,
    observer: SyncObserver,
    workdir: Path,
    watch: Callable[[Launcher], None] = lambda launcher: None,
) -> tuple[Launcher, Launcher, SyncState, ConfiguredCatalog]:
    """Check, discover, configure: everything before data moves; connector files go to
    ``workdir``, and ``watch`` is given each launcher as it is made (to stop its commands on a
    stop request). The state file then counts this sync and holds its plan. Raises SyncAborted."""
    state = SyncState.load(request.state_path)
    _same_endpoints(state, request)
    source, destination = (
        Launcher(side, workdir, bool(request.in_process) if side.in_process is None else side.in_process)
        for side in (request.source, request.destination)
    )
    watch(source)
    watch(destination)
    observer.phase("checking connections and discovering streams")
    with ContextThreadPoolExecutor(max_workers=3, thread_name_prefix="dbkit-prepare") as pool:
        source_check = pool.submit(_check, source, "source")
        destination_check = pool.submit(_check, destination, "destination")
        discovered = pool.submit(_discover, source)
        errors = source_check.result() + destination_check.result()
        streams, discover_errors = discovered.result()
    if errors:
        raise SyncAborted(errors[0].message, errors)
    if discover_errors:
        raise SyncAborted(f"discover failed: {discover_errors[0].message}", discover_errors)
    selected = select_streams(streams, request.streams)
    if not selected:
        raise SyncAborted("the source has no streams to sync")
    refuse_overwriting_source(request.source, request.destination, selected)
    with state.lock:
        state.source = request.source.identity()
        state.destination = request.destination.identity()
        catalog = plan_catalog(state, selected, request.full_refresh, request.refresh)
    return source, destination, state, catalog
