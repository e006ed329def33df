"""The configured catalog of a sync: which streams, in which sync mode, with which generation
and which saved state.

Catalog rules: a stream that supports incremental and suggests a default cursor is read
``incremental`` with that cursor into ``append_dedup`` (when it has a primary key) or ``append``;
any other stream (or every stream with ``full_refresh``) is ``full_refresh`` + ``overwrite``.

Generations: an ``overwrite`` stream gets a new ``generation_id`` (and ``minimum_generation_id``
equal to it) every sync, its saved state dropped, except when its previous sync did not finish
and left a resumable state: then the same generation and state are used again, so the
destination resumes its temporary table and the source its position. Other streams keep their
generation and use ``minimum_generation_id`` 0 (and their saved state, unless their sync mode or
cursor changed).

Refreshes (``dbkit sync --refresh A,B``): a truncate refresh of those streams in their usual sync
mode: a new ``generation_id`` with ``minimum_generation_id`` equal to it (the destination
replaces the stream's rows when the sync ends), their saved state dropped (in a GLOBAL state:
their part, the shared part kept), so the source reads them again from the start (a CDC stream:
a new snapshot). A refresh that does not finish is continued by the next sync (same generation,
its state, ``minimum_generation_id`` still equal), so the old rows always go.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from dbkit.protocol import AirbyteStream, ConfiguredCatalog, ConfiguredStream, DestinationSyncMode, SyncMode
from dbkit.runner.errors import SyncAborted
from dbkit.runner.state import StreamEntry, SyncState


def stream_matches(stream: AirbyteStream, wanted: str) -> bool:
    return wanted in (stream.name, str(stream.descriptor))


def select_streams(streams: Sequence[AirbyteStream], wanted: Sequence[str] | None) -> list[AirbyteStream]:
    """The discovered streams named in ``wanted`` (all when None); SyncAborted for unknown names."""
    if not wanted:
        return list(streams)
    unknown = [w for w in wanted if not any(stream_matches(s, w) for s in streams)]
    if unknown:
        available = ", ".join(str(s.descriptor) for s in streams) or "(none)"
        raise SyncAborted(f"unknown stream(s) {', '.join(unknown)}; the source has: {available}")
    return [s for s in streams if any(stream_matches(s, w) for w in wanted)]


def first_generation() -> int:
    """The generation of a stream's first refresh: the time in milliseconds, larger than any
    generation an earlier state file could have reached (each sync adds 1), so never one whose
    rows a destination still holds."""
    return time.time_ns() // 1_000_000


def _resumable(state: Any) -> bool:
    """True when a saved state points into the middle of a read (dbkit's completed full refresh
    says ``complete``; then there is nothing to resume)."""
    return isinstance(state, Mapping) and bool(state) and not state.get("complete")


def configure_stream(
    stream: AirbyteStream,
    entry: StreamEntry | None,
    sync_id: int,
    full_refresh: bool,
    refresh: bool = False,
) -> tuple[ConfiguredStream, Any]:
    """The stream's configuration for sync ``sync_id`` and the state to hand the source.

    ``entry`` is what the state file knows of the stream's previous syncs (None: never synced);
    ``refresh``: a truncate refresh of the stream (see the module doc).
    """
    pk = stream.source_defined_primary_key
    incremental = (
        not full_refresh
        and SyncMode.INCREMENTAL in stream.supported_sync_modes
        and bool(stream.default_cursor_field)
    )
    if incremental:
        mode = SyncMode.INCREMENTAL
        dest = DestinationSyncMode.APPEND_DEDUP if pk else DestinationSyncMode.APPEND
        cursor = stream.default_cursor_field
    else:
        mode, dest, cursor = SyncMode.FULL_REFRESH, DestinationSyncMode.OVERWRITE, ()
    same_setup = (
        entry is not None
        and entry.sync_mode == mode.value
        and entry.destination_sync_mode == dest.value
        and entry.cursor_field == list(cursor)
    )
    previous_generation = entry.generation_id if entry is not None else 0
    # a stream the state file does not know (never synced, or its state deleted to start over)
    # may still have rows in the destination: its first new generation must be one no earlier
    # sync used, or the destination takes its rows for a refresh already swapped in and keeps
    # them (loading the new rows next to them)
    new_generation = previous_generation + 1 if entry is not None else first_generation()
    state: Any = None
    unfinished_refresh = same_setup and entry is not None and entry.refreshing and not entry.finished
    if refresh:
        generation = new_generation
        minimum = generation
    elif unfinished_refresh and entry is not None:
        generation = minimum = previous_generation
        state = entry.state
    elif dest is DestinationSyncMode.OVERWRITE:
        resuming = same_setup and entry is not None and not entry.finished and _resumable(entry.state)
        generation = previous_generation if resuming else new_generation
        minimum = generation
        if resuming and entry is not None:
            state = entry.state
    else:
        generation, minimum = previous_generation, 0
        if same_setup and entry is not None:
            state = entry.state
    configured = ConfiguredStream(
        stream=stream,
        sync_mode=mode,
        destination_sync_mode=dest,
        cursor_field=tuple(cursor),
        primary_key=pk,
        generation_id=generation,
        minimum_generation_id=minimum,
        sync_id=sync_id,
    )
    return configured, state


def plan_catalog(
    state: SyncState,
    streams: Sequence[AirbyteStream],
    full_refresh: bool,
    refresh: Sequence[str] | None = None,
) -> ConfiguredCatalog:
    """Configure ``streams`` for the next sync (``state.sync_count`` + 1) and record the plan in
    ``state`` (counter, modes, generations, the state handed to the source; every stream marked
    running and not finished), saved before it returns. The caller sets the connection's names.

    ``refresh`` names streams (names or namespace.name, among ``streams``) to refresh; an unknown
    name raises SyncAborted before anything changes."""
    refreshed = {s.descriptor for s in select_streams(streams, refresh)} if refresh else set()
    with state.lock:
        state.sync_count += 1
        configured: list[ConfiguredStream] = []
        for stream in streams:
            entry = state.streams.get(stream.descriptor)
            is_refresh = stream.descriptor in refreshed
            c, saved = configure_stream(stream, entry, state.sync_count, full_refresh, is_refresh)
            continuing = (
                entry is not None
                and entry.refreshing
                and not entry.finished
                and c.generation_id == entry.generation_id == c.minimum_generation_id
            )
            e = state.entry(stream.descriptor)
            e.refreshing = is_refresh or continuing
            configured.append(c)
            e = state.entry(stream.descriptor)
            e.sync_mode = c.sync_mode.value
            e.destination_sync_mode = c.destination_sync_mode.value
            e.cursor_field = list(c.cursor_field)
            e.generation_id = c.generation_id or 0
            e.state = saved
            e.finished = False
            e.last_sync = {"sync_id": state.sync_count, "status": "RUNNING", "records_read": 0}
        state.save()
    return ConfiguredCatalog(tuple(configured))
