"""The state file of ``dbkit sync``: what the destination acknowledged, and each stream's generation.

The file is JSON, rewritten atomically (temporary file, fsync, ``os.replace``) after every STATE the
destination echoes, so that a crash at any moment leaves either the previous or the new version:

.. code-block:: json

    {
      "version": 1,
      "source": "source-sqlite", "destination": "destination-sqlite",
      "sync_count": 2,
      "global": null,
      "streams": [
        {"stream_descriptor": {"name": "customers"},
         "sync_mode": "incremental", "destination_sync_mode": "append_dedup", "cursor_field": ["updated_at"],
         "generation_id": 0, "finished": true,
         "state": {"...": "the stream's last acknowledged state"},
         "last_sync": {"sync_id": 2, "records_read": 12, "records_acknowledged": 12,
                       "status": "COMPLETE", "seconds": 0.02}}
      ]
    }

``global`` holds the ``shared_state`` of a GLOBAL (change data capture) state; the per-stream
parts of a GLOBAL state are kept in each stream's ``state`` and reassembled for the source.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dbkit.errors import ConfigError
from dbkit.protocol import StreamDescriptor
from dbkit.protocol.jsonio import loads_exact
from dbkit.protocol.messages import dumps_exact

FORMAT_VERSION = 1


@dataclass
class StreamEntry:
    """One stream's saved facts (mutated only under the owning :class:`SyncState`'s lock)."""

    descriptor: StreamDescriptor
    generation_id: int = 0
    state: Any = None
    finished: bool = True
    sync_mode: str | None = None
    destination_sync_mode: str | None = None
    cursor_field: list[str] = field(default_factory=list)
    last_sync: dict[str, Any] = field(default_factory=dict)
    refreshing: bool = False
    """Its last planned sync was a truncate refresh (``dbkit sync --refresh``): continued by the
    next sync unless that one finished."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stream_descriptor": self.descriptor.to_json(),
            "sync_mode": self.sync_mode,
            "destination_sync_mode": self.destination_sync_mode,
            "cursor_field": self.cursor_field,
            "generation_id": self.generation_id,
            "finished": self.finished,
            "state": self.state,
            "last_sync": self.last_sync,
            "refreshing": self.refreshing,
        }


def _descriptor(value: Any, where: str) -> StreamDescriptor:
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ValueError(f"{where}.stream_descriptor needs a string name")
    namespace = value.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ValueError(f"{where}.stream_descriptor.namespace must be a string")
    return StreamDescriptor(value["name"], namespace)


def _entry(value: Any, where: str) -> StreamEntry:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object")
    generation = value.get("generation_id", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"{where}.generation_id must be a non-negative integer")
    state = value.get("state")
    if state is not None and not isinstance(state, Mapping):
        raise ValueError(f"{where}.state must be an object or null")
    cursor = value.get("cursor_field") or []
    last = value.get("last_sync") or {}
    return StreamEntry(
        descriptor=_descriptor(value.get("stream_descriptor"), where),
        generation_id=generation,
        state=state,
        finished=bool(value.get("finished", True)),
        sync_mode=value.get("sync_mode"),
        destination_sync_mode=value.get("destination_sync_mode"),
        cursor_field=[str(c) for c in cursor] if isinstance(cursor, list) else [],
        last_sync=dict(last) if isinstance(last, Mapping) else {},
        refreshing=bool(value.get("refreshing", False)),
    )


class SyncState:
    """The state file in memory; thread-safe. :meth:`acknowledge` saves after every echo."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # each side's identity (connector + database, see Endpoint.identity); a bare connector
        # name in files written before identities were kept
        self.source: dict[str, Any] | str | None = None
        self.destination: dict[str, Any] | str | None = None
        self.sync_count = 0
        self.shared_state: Any = None
        self.is_global = False
        self.streams: dict[StreamDescriptor, StreamEntry] = {}
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ load / save
    @classmethod
    def load(cls, path: Path) -> SyncState:
        """The saved state, or an empty one when the file does not exist.

        Raises ConfigError (naming the file) when it exists but cannot be understood.
        """
        out = cls(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise ConfigError(f"cannot read the state file {path}: {exc.strerror}") from None
        try:
            doc = loads_exact(raw)
            if not isinstance(doc, Mapping):
                raise ValueError("expected a JSON object")
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r} (this dbkit writes 1)")
            count = doc.get("sync_count", 0)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError("sync_count must be a non-negative integer")
            out.sync_count = count
            for side in ("source", "destination"):
                identity = doc.get(side)
                if identity is not None and not isinstance(identity, str | Mapping):
                    raise ValueError(f"{side} must be an object")
                setattr(out, side, dict(identity) if isinstance(identity, Mapping) else identity)
            g = doc.get("global")
            if g is not None:
                if not isinstance(g, Mapping):
                    raise ValueError("global must be an object or null")
                out.is_global = True
                out.shared_state = g.get("shared_state")
            items = doc.get("streams") or []
            if not isinstance(items, list):
                raise ValueError("streams must be an array")
            for i, item in enumerate(items):
                entry = _entry(item, f"streams[{i}]")
                out.streams[entry.descriptor] = entry
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise ConfigError(
                f"the state file {path} is not a dbkit sync state ({exc}); fix it, or delete it to "
                "start over with a full sync"
            ) from None
        return out

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": FORMAT_VERSION,
                "source": self.source,
                "destination": self.destination,
                "sync_count": self.sync_count,
                "global": {"shared_state": self.shared_state} if self.is_global else None,
                "streams": [
                    e.to_json()
                    for _, e in sorted(
                        self.streams.items(), key=lambda kv: (kv[0].namespace or "", kv[0].name)
                    )
                ],
            }

    def save(self) -> None:
        """Write the whole file atomically: a reader sees the old or the new version, never a mix."""
        with self.lock:
            data = dumps_exact(self.to_json(), orjson.OPT_INDENT_2)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    # ------------------------------------------------------------------ use
    def entry(self, descriptor: StreamDescriptor) -> StreamEntry:
        with self.lock:
            found = self.streams.get(descriptor)
            if found is None:
                found = self.streams[descriptor] = StreamEntry(descriptor)
            return found

    def input_state(self, descriptors: Iterable[StreamDescriptor]) -> list[dict[str, Any]]:
        """The state document (array of STATE messages) to hand the source for these streams."""
        with self.lock:
            wanted = [d for d in descriptors if d in self.streams and self.streams[d].state is not None]
            parts = [
                {"stream_descriptor": d.to_json(), "stream_state": self.streams[d].state} for d in wanted
            ]
            if self.is_global:
                return [
                    {"type": "GLOBAL", "global": {"shared_state": self.shared_state, "stream_states": parts}}
                ]
            return [{"type": "STREAM", "stream": part} for part in parts]

    def acknowledge(self, state: Mapping[str, Any], save: bool = True) -> list[StreamDescriptor]:
        """Adopt one echoed STATE payload (STREAM or GLOBAL) and (unless ``save`` is False, when
        the caller saves) write the file; returns the streams it covers.

        Raises ValueError when the payload has neither shape; nothing is changed then.
        """
        kind = state.get("type")
        updates: list[tuple[StreamDescriptor, Any]] = []
        shared: Any = None
        if kind == "STREAM":
            stream = state.get("stream")
            if not isinstance(stream, Mapping):
                raise ValueError("STREAM state without 'stream'")
            updates.append(
                (_descriptor(stream.get("stream_descriptor"), "state.stream"), stream.get("stream_state"))
            )
        elif kind == "GLOBAL":
            g = state.get("global")
            if not isinstance(g, Mapping):
                raise ValueError("GLOBAL state without 'global'")
            shared = g.get("shared_state")
            for i, item in enumerate(g.get("stream_states") or []):
                where = f"state.global.stream_states[{i}]"
                if not isinstance(item, Mapping):
                    raise ValueError(f"{where} must be an object")
                updates.append((_descriptor(item.get("stream_descriptor"), where), item.get("stream_state")))
        else:
            raise ValueError(f"STATE of type {kind!r}")
        with self.lock:
            if kind == "GLOBAL":
                self.is_global = True
                self.shared_state = shared
            for descriptor, blob in updates:
                self.entry(descriptor).state = blob
            covered = [d for d, _ in updates]
            if save:
                self.save()
            return covered
