"""Source STATE, typed and versioned: one parser (:func:`parse_stream_state`,
:func:`parse_global_state`) and one serializer (each state's ``to_json``) for every shape.

A stream's state is a JSON object that starts ``{"v": 1, "mode": ...}``:

- :class:`FullRefreshState` (``"mode": "full_refresh"``): ``{"complete": true}`` once a full
  refresh finished (the next one starts over), else the position of a resumable read: the key it
  is ordered by (``"by"``) and the last key emitted (``"after"``), or a connector's own position
  fields next to ``"by"`` (source-postgres's tuple-id reads keep ``relation``, ``ctid_below``,
  ``done`` and ``snapshot_xmin``: see ``source_postgres.ctid``);
- :class:`CursorState` (``"mode": "incremental"``): the cursor column, the position among its
  values (what it means: :mod:`dbkit.source.plans`) and, for a nullable cursor, the progress
  through the rows whose cursor is NULL (``"nulls"``).

:class:`GlobalState` is the shape of change data capture (the seam for it: nothing reads it
yet): the shared part of a GLOBAL state holds the log position (``{"v": 1, "mode": "cdc",
"position": {...}}``, what a position is belongs to the database), and each stream's part the
progress of its initial snapshot, a :class:`FullRefreshState`.

The JSON a state serializes to is exactly what earlier versions wrote (key order included), so
saved states resume. A state whose version or mode dbkit does not know is a config error:
guessing would re-read everything or, worse, skip rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dbkit.errors import ConfigError
from dbkit.protocol import StreamDescriptor

STATE_VERSION = 1
"""The format version every state this source writes carries (``"v"``)."""

STREAM_MODES = ("full_refresh", "incremental")
CDC_MODE = "cdc"
SNAPSHOT_LABEL = "snapshot_at"
"""The key of a GLOBAL state's stream part that holds its snapshot label (:class:`GlobalState`)."""


class StreamState:
    """A stream's state (a checkpoint): what a partition reader yields, what the reader emits.

    Subclasses are immutable and serialize with :meth:`to_json`; a state object is opaque to the
    read loop, which only orders and emits it."""

    mode: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The ``stream_state`` object of the STATE message; called once per emitted STATE."""
        raise NotImplementedError


@dataclass(frozen=True)
class FullRefreshState(StreamState):
    """A full refresh's position: complete, or ``after`` (last key emitted, in ``by`` order) and
    any connector-specific position fields (``position``, written after ``by``/``after``)."""

    mode: ClassVar[str] = "full_refresh"

    complete: bool = False
    by: list[Any] | None = None
    after: list[Any] | None = None
    position: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def done(cls) -> FullRefreshState:
        """The state of a finished full refresh."""
        return cls(complete=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": STATE_VERSION, "mode": self.mode}
        if self.complete:
            out["complete"] = True
            return out
        if self.by is not None:
            out["by"] = list(self.by)
        if self.after is not None:
            out["after"] = list(self.after)
        out.update(self.position)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FullRefreshState:
        """Parse a ``full_refresh`` state (version and mode already checked). Fields of a shape
        dbkit never writes are dropped: the read then finds no matching position and starts over."""
        by = raw.get("by")
        after = raw.get("after")
        return cls(
            complete=bool(raw.get("complete")),
            by=list(by) if isinstance(by, list) else None,
            after=list(after) if isinstance(after, list) else None,
            position={k: v for k, v in raw.items() if k not in ("v", "mode", "complete", "by", "after")},
        )


class _NotRecorded:
    """The type of :data:`NOT_RECORDED`."""

    def __repr__(self) -> str:
        return "NOT_RECORDED"


NOT_RECORDED: Any = _NotRecorded()
"""``CursorState.nulls`` when the state has no ``nulls`` key (the cursor column cannot be NULL);
distinct from a recorded JSON ``null``, which is malformed."""


@dataclass(frozen=True)
class CursorState(StreamState):
    """A cursor-incremental read's state. ``position`` and ``nulls`` are the plan's (see
    :class:`dbkit.source.plans.CursorPlan`), which checks their shape once it knows the state is
    for its cursor (a state for another cursor is read again with a warning, whatever its shape);
    ``nulls`` is :data:`NOT_RECORDED` when the cursor column cannot be NULL."""

    mode: ClassVar[str] = "incremental"

    cursor_field: list[Any] | None
    position: Mapping[str, Any] | None = None
    nulls: Any = NOT_RECORDED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": STATE_VERSION,
            "mode": self.mode,
            "cursor_field": list(self.cursor_field) if self.cursor_field is not None else None,
            "position": dict(self.position) if self.position is not None else None,
        }
        if self.nulls is not NOT_RECORDED:
            out["nulls"] = self.nulls
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], stream: str) -> CursorState:
        """Parse an ``incremental`` state (version and mode already checked)."""
        cursor_field = raw.get("cursor_field")
        return cls(
            cursor_field=list(cursor_field) if isinstance(cursor_field, list) else None,
            position=raw.get("position"),
            nulls=raw.get("nulls", NOT_RECORDED),
        )


def _check_version(raw: Mapping[str, Any], stream: str) -> None:
    version = raw.get("v")
    if version != STATE_VERSION or isinstance(version, bool):
        raise ConfigError(
            f"state for {stream}: format version {version!r} is not one this source writes "
            f"({STATE_VERSION}); it comes from another connector or a newer dbkit: reset the stream"
        )


def parse_stream_state(raw: Mapping[str, Any] | None, stream: str) -> StreamState | None:
    """The saved stream state if dbkit can read it; None when there is none.

    A state of another mode than the stream's (a stream switched from full refresh to
    incremental) is fine: the read starts over. A state dbkit did not write, or a newer format,
    raises :class:`~dbkit.errors.ConfigError`."""
    if not raw:
        return None
    _check_version(raw, stream)
    mode = raw.get("mode")
    if mode == FullRefreshState.mode:
        return FullRefreshState.from_json(raw)
    if mode == CursorState.mode:
        return CursorState.from_json(raw, stream)
    raise ConfigError(
        f"state for {stream}: unknown mode {mode!r} (expected one of "
        f"{', '.join(STREAM_MODES)}): reset the stream"
    )


@dataclass(frozen=True)
class GlobalState:
    """A GLOBAL (change data capture) state: the shared log position, and each stream's initial
    snapshot progress (complete once its snapshot is read; absent before it starts)."""

    position: Mapping[str, Any]
    streams: Mapping[StreamDescriptor, FullRefreshState] = field(default_factory=dict)
    labels: Mapping[StreamDescriptor, int] = field(default_factory=dict)
    """Each stream's snapshot label: the position column value its first snapshot rows carried
    (every change at or before it is in the snapshot), saved as ``snapshot_at`` in its part.
    Absent for parts written before labels were kept."""

    def shared_json(self) -> dict[str, Any]:
        """The ``shared_state`` object of the GLOBAL STATE message."""
        return {"v": STATE_VERSION, "mode": CDC_MODE, "position": dict(self.position)}

    def stream_states_json(self) -> dict[StreamDescriptor, dict[str, Any]]:
        """Each stream's ``stream_state`` object, in the order the streams were added (with its
        ``snapshot_at`` label when known)."""
        out: dict[StreamDescriptor, dict[str, Any]] = {}
        for d, s in self.streams.items():
            part = s.to_json()
            label = self.labels.get(d)
            if label is not None:
                part[SNAPSHOT_LABEL] = label
            out[d] = part
        return out


def parse_global_state(
    shared: Mapping[str, Any] | None, streams: Mapping[StreamDescriptor, Mapping[str, Any]]
) -> GlobalState | None:
    """Parse the parts of a GLOBAL state (as :class:`dbkit.protocol.InputState` holds them);
    None when there is no shared part. Raises ConfigError for a version or mode dbkit does not
    know, or a position that is not an object."""
    if not shared:
        return None
    _check_version(shared, "the shared (GLOBAL) state")
    if shared.get("mode") != CDC_MODE:
        raise ConfigError(
            f"the shared (GLOBAL) state has mode {shared.get('mode')!r}, not {CDC_MODE!r}: "
            "reset the connection"
        )
    position = shared.get("position")
    if not isinstance(position, Mapping):
        raise ConfigError("the shared (GLOBAL) state has no log position: reset the connection")
    parsed: dict[StreamDescriptor, FullRefreshState] = {}
    labels: dict[StreamDescriptor, int] = {}
    for descriptor, raw in streams.items():
        if raw and SNAPSHOT_LABEL in raw:
            label = raw[SNAPSHOT_LABEL]
            if not isinstance(label, int) or isinstance(label, bool):
                raise ConfigError(
                    f"state for {descriptor}: {SNAPSHOT_LABEL} {label!r} is not an integer: reset the stream"
                )
            labels[descriptor] = label
            raw = {k: v for k, v in raw.items() if k != SNAPSHOT_LABEL}
        state = parse_stream_state(raw, str(descriptor))
        if state is None:
            continue
        if not isinstance(state, FullRefreshState):
            raise ConfigError(
                f"state for {descriptor}: a GLOBAL state's stream part must be a snapshot "
                "(full_refresh) position: reset the connection"
            )
        parsed[descriptor] = state
    return GlobalState(
        position=dict(position), streams=parsed, labels={d: v for d, v in labels.items() if d in parsed}
    )
