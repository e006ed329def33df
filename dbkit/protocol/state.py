"""Input state: the STATE messages a platform hands back to a source for its next read.

A state document is a JSON array of AirbyteStateMessage objects, all of type STREAM or a single
one of type GLOBAL (change data capture). Legacy (untyped) state is refused with a clear error
rather than guessed at: reading from a misunderstood position would lose or repeat rows.

A state may name streams that are not in the configured catalog (a stream removed from the
connection); parsing keeps them, and the read ignores them (the entrypoint logs a warning).
Parse the document with :func:`dbkit.protocol.loads_exact` so that cursor values keep every digit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dbkit.protocol.catalog import StreamDescriptor
from dbkit.protocol.errors import ProtocolInputError


@dataclass(frozen=True)
class InputState:
    """Per-stream states, plus the shared part of a GLOBAL state when there is one."""

    streams: Mapping[StreamDescriptor, Mapping[str, Any]] = field(default_factory=dict)
    shared: Mapping[str, Any] | None = None
    is_global: bool = False

    def for_stream(self, descriptor: StreamDescriptor) -> Mapping[str, Any] | None:
        return self.streams.get(descriptor)

    @property
    def empty(self) -> bool:
        return not self.streams and self.shared is None


def _descriptor(value: Any, where: str) -> StreamDescriptor:
    if not isinstance(value, Mapping):
        raise ProtocolInputError("state", f"{where}.stream_descriptor must be an object")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolInputError("state", f"{where}.stream_descriptor.name must be a non-empty string")
    namespace = value.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ProtocolInputError("state", f"{where}.stream_descriptor.namespace must be a string")
    return StreamDescriptor(name, namespace)


def _stream_state(value: Any, where: str) -> tuple[StreamDescriptor, Mapping[str, Any] | None]:
    if not isinstance(value, Mapping):
        raise ProtocolInputError("state", f"{where} must be an object")
    descriptor = _descriptor(value.get("stream_descriptor"), where)
    blob = value.get("stream_state")
    if blob is not None and not isinstance(blob, Mapping):
        raise ProtocolInputError("state", f"{where}.stream_state must be an object")
    return descriptor, blob


def parse_state(value: Any) -> InputState:
    """Parse a state document (array of STATE messages); ``None`` or ``[]`` mean no state."""
    if value is None:
        return InputState()
    if isinstance(value, Mapping):
        if "type" in value:
            value = [value]
        elif not value:
            return InputState()
        else:
            raise ProtocolInputError(
                "state",
                "legacy (untyped) state is not supported: expected a JSON array of STATE messages "
                'with "type": "STREAM" or "GLOBAL"; reset the connection state to start over',
            )
    if not isinstance(value, list):
        raise ProtocolInputError("state", "expected a JSON array of STATE messages")
    streams: dict[StreamDescriptor, Mapping[str, Any]] = {}
    seen: set[StreamDescriptor] = set()
    shared: Mapping[str, Any] | None = None
    kinds: set[str] = set()
    for i, message in enumerate(value):
        where = f"[{i}]"
        if not isinstance(message, Mapping):
            raise ProtocolInputError("state", f"{where} must be an object")
        if message.get("type") == "STATE" and isinstance(message.get("state"), Mapping):
            message = message["state"]  # a whole AirbyteMessage was pasted: accept its payload
        kind = message.get("type")
        if kind in ("STREAM", "GLOBAL") and kinds and kind not in kinds:
            raise ProtocolInputError("state", f"{where}: STREAM and GLOBAL states cannot be mixed")
        if kind == "STREAM":
            descriptor, blob = _stream_state(message.get("stream"), f"{where}.stream")
            if descriptor in seen:
                raise ProtocolInputError("state", f"{where}: stream {descriptor} appears twice")
            seen.add(descriptor)
            if blob is not None:
                streams[descriptor] = blob
        elif kind == "GLOBAL":
            g = message.get("global")
            if not isinstance(g, Mapping):
                raise ProtocolInputError("state", f"{where}.global must be an object")
            if shared is not None or "GLOBAL" in kinds:
                raise ProtocolInputError("state", f"{where}: more than one GLOBAL state")
            sh = g.get("shared_state")
            if sh is not None and not isinstance(sh, Mapping):
                raise ProtocolInputError("state", f"{where}.global.shared_state must be an object")
            shared = sh if sh is not None else {}
            items = g.get("stream_states")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ProtocolInputError("state", f"{where}.global.stream_states must be an array")
            for j, item in enumerate(items):
                item_where = f"{where}.global.stream_states[{j}]"
                descriptor, blob = _stream_state(item, item_where)
                if descriptor in seen:
                    raise ProtocolInputError("state", f"{item_where}: stream {descriptor} appears twice")
                seen.add(descriptor)
                if blob is not None:
                    streams[descriptor] = blob
        elif kind == "LEGACY" or kind is None:
            raise ProtocolInputError(
                "state",
                f"{where}: legacy (untyped) state is not supported; reset the connection state",
            )
        else:
            raise ProtocolInputError("state", f"{where}.type must be STREAM or GLOBAL")
        kinds.add(str(kind))
    return InputState(streams=streams, shared=shared, is_global=kinds == {"GLOBAL"})
