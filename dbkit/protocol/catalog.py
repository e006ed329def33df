"""Catalog shapes: streams as discovered, streams as configured by the user, and their parsing.

Parsing is strict: an unknown sync mode, a missing name or a duplicate stream is an error that
names the field. Unknown *extra* keys are accepted (the protocol allows them) and ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbkit.protocol.errors import ProtocolInputError


class SyncMode(enum.StrEnum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"


class DestinationSyncMode(enum.StrEnum):
    APPEND = "append"
    OVERWRITE = "overwrite"
    APPEND_DEDUP = "append_dedup"


@dataclass(frozen=True, order=True)
class StreamDescriptor:
    """A stream's identity: its name and optional namespace (schema)."""

    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return self.name if self.namespace is None else f"{self.namespace}.{self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        return out


@dataclass(frozen=True)
class AirbyteStream:
    """A stream as a source describes it in its catalog."""

    name: str
    json_schema: Mapping[str, Any]
    supported_sync_modes: tuple[SyncMode, ...]
    namespace: str | None = None
    source_defined_cursor: bool = False
    default_cursor_field: tuple[str, ...] = ()
    source_defined_primary_key: tuple[tuple[str, ...], ...] = ()
    is_resumable: bool = False

    @property
    def descriptor(self) -> StreamDescriptor:
        return StreamDescriptor(self.name, self.namespace)

    @property
    def properties(self) -> Mapping[str, Any]:
        props = self.json_schema.get("properties", {})
        return props if isinstance(props, Mapping) else {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "json_schema": dict(self.json_schema),
            "supported_sync_modes": [m.value for m in self.supported_sync_modes],
        }
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.source_defined_cursor:
            out["source_defined_cursor"] = True
        if self.default_cursor_field:
            out["default_cursor_field"] = list(self.default_cursor_field)
        if self.source_defined_primary_key:
            out["source_defined_primary_key"] = [list(k) for k in self.source_defined_primary_key]
        out["is_resumable"] = self.is_resumable
        return out


@dataclass(frozen=True)
class ConfiguredStream:
    """A stream as the user configured it for one sync."""

    stream: AirbyteStream
    sync_mode: SyncMode
    destination_sync_mode: DestinationSyncMode
    cursor_field: tuple[str, ...] = ()
    primary_key: tuple[tuple[str, ...], ...] = ()
    generation_id: int | None = None
    minimum_generation_id: int | None = None
    sync_id: int | None = None

    @property
    def descriptor(self) -> StreamDescriptor:
        return self.stream.descriptor

    @property
    def effective_primary_key(self) -> tuple[tuple[str, ...], ...]:
        """The configured primary key, or the source-defined one when none is configured."""
        return self.primary_key or self.stream.source_defined_primary_key

    @property
    def effective_cursor_field(self) -> tuple[str, ...]:
        return self.cursor_field or self.stream.default_cursor_field

    @property
    def replaces_data(self) -> bool:
        """True when the stream asks for a refresh (overwrite, or a truncate refresh: minimum
        generation == generation > 0): the write must end without rows of older generations.
        Whether that replaces the table is for the destination to tell from what the table holds
        (a table already at the generation is a refresh done; see
        ``dbkit.destination.generations``)."""
        if self.destination_sync_mode is DestinationSyncMode.OVERWRITE:
            return True
        return (
            self.generation_id is not None
            and self.minimum_generation_id is not None
            and self.minimum_generation_id > 0
            and self.minimum_generation_id == self.generation_id
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stream": self.stream.to_json(),
            "sync_mode": self.sync_mode.value,
            "destination_sync_mode": self.destination_sync_mode.value,
        }
        if self.cursor_field:
            out["cursor_field"] = list(self.cursor_field)
        if self.primary_key:
            out["primary_key"] = [list(k) for k in self.primary_key]
        for name in ("generation_id", "minimum_generation_id", "sync_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class ConfiguredCatalog:
    streams: tuple[ConfiguredStream, ...]
    _by_descriptor: dict[StreamDescriptor, ConfiguredStream] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._by_descriptor.update({s.descriptor: s for s in self.streams})

    def __iter__(self) -> Iterator[ConfiguredStream]:
        return iter(self.streams)

    def __len__(self) -> int:
        return len(self.streams)

    def get(self, descriptor: StreamDescriptor) -> ConfiguredStream | None:
        return self._by_descriptor.get(descriptor)

    def __contains__(self, descriptor: object) -> bool:
        return descriptor in self._by_descriptor

    def to_json(self) -> dict[str, Any]:
        return {"streams": [s.to_json() for s in self.streams]}


# --------------------------------------------------------------------------------------------
# parsing


class _Reader:
    """Walks a JSON document, producing errors that name the path."""

    def __init__(self, document: str) -> None:
        self.document = document

    def fail(self, path: str, problem: str) -> ProtocolInputError:
        return ProtocolInputError(f"{self.document}: {path}" if path else self.document, problem)

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, got {_json_type(value)}")
        return value

    def req(self, obj: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in obj or obj[key] is None:
            raise self.fail(_join(path, key), "is required")
        return obj[key]

    def string(self, value: Any, path: str, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_json_type(value)}")
        if not value and not allow_empty:
            raise self.fail(path, "must not be empty")
        return value

    def opt_string(self, obj: Mapping[str, Any], key: str, path: str) -> str | None:
        value = obj.get(key)
        return None if value is None else self.string(value, _join(path, key))

    def opt_int(self, obj: Mapping[str, Any], key: str, path: str) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise self.fail(_join(path, key), f"expected an integer, got {_json_type(value)}")
        return value

    def opt_bool(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = obj.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), f"expected a boolean, got {_json_type(value)}")
        return value

    def array(self, value: Any, path: str) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_json_type(value)}")
        return value

    def path_list(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = obj.get(key)
        if value is None:
            return ()
        items = self.array(value, _join(path, key))
        return tuple(self.string(v, f"{_join(path, key)}[{i}]") for i, v in enumerate(items))

    def paths(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[tuple[str, ...], ...]:
        value = obj.get(key)
        if value is None:
            return ()
        p = _join(path, key)
        out = []
        for i, item in enumerate(self.array(value, p)):
            parts = self.array(item, f"{p}[{i}]")
            if not parts:
                raise self.fail(f"{p}[{i}]", "a key path must name at least one field")
            out.append(tuple(self.string(v, f"{p}[{i}][{j}]") for j, v in enumerate(parts)))
        return tuple(out)

    def enum(self, value: Any, enum_type: type[enum.StrEnum], path: str) -> Any:
        allowed = [m.value for m in enum_type]
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) and len(value) < 40 else _json_type(value)
            raise self.fail(path, f"{shown} is not one of {', '.join(allowed)}")
        return enum_type(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def parse_airbyte_stream(value: Any, path: str = "", document: str = "catalog") -> AirbyteStream:
    r = _Reader(document)
    obj = r.obj(value, path)
    name = r.string(r.req(obj, "name", path), _join(path, "name"))
    schema = r.obj(r.req(obj, "json_schema", path), _join(path, "json_schema"))
    modes_path = _join(path, "supported_sync_modes")
    modes_raw = obj.get("supported_sync_modes")
    if modes_raw is None or modes_raw == []:
        modes_raw = ["full_refresh"]
    modes = tuple(
        r.enum(m, SyncMode, f"{modes_path}[{i}]") for i, m in enumerate(r.array(modes_raw, modes_path))
    )
    return AirbyteStream(
        name=name,
        json_schema=schema,
        supported_sync_modes=modes,
        namespace=r.opt_string(obj, "namespace", path),
        source_defined_cursor=r.opt_bool(obj, "source_defined_cursor", path),
        default_cursor_field=r.path_list(obj, "default_cursor_field", path),
        source_defined_primary_key=r.paths(obj, "source_defined_primary_key", path),
        is_resumable=r.opt_bool(obj, "is_resumable", path),
    )


def _check_generations(r: _Reader, configured: ConfiguredStream, path: str) -> None:
    """Refuse generation ids no platform sends: a write with them would delete rows it was never
    told to (``minimum_generation_id`` above ``generation_id`` removes every row, the new ones
    included, while the STATE echoes count them as committed)."""
    generation, minimum = configured.generation_id, configured.minimum_generation_id
    for key, value in (("generation_id", generation), ("minimum_generation_id", minimum)):
        if value is not None and value < 0:
            raise r.fail(_join(path, key), f"must be 0 or more, got {value}")
    if minimum is not None and minimum > 0 and generation is None:
        raise r.fail(
            _join(path, "minimum_generation_id"),
            f"is {minimum} but the stream has no generation_id; send both or neither",
        )
    if minimum is not None and generation is not None and minimum > generation:
        raise r.fail(
            _join(path, "minimum_generation_id"),
            f"{minimum} is above generation_id {generation}: it would delete the rows being "
            "loaded; use 0 (keep all) or the generation_id (truncate refresh)",
        )


def parse_configured_catalog(value: Any, document: str = "catalog") -> ConfiguredCatalog:
    """Parse a ConfiguredAirbyteCatalog document; errors name the offending field."""
    r = _Reader(document)
    root = r.obj(value, "")
    items = r.array(r.req(root, "streams", ""), "streams")
    streams: list[ConfiguredStream] = []
    seen: dict[StreamDescriptor, int] = {}
    for i, item in enumerate(items):
        path = f"streams[{i}]"
        obj = r.obj(item, path)
        stream = parse_airbyte_stream(r.req(obj, "stream", path), _join(path, "stream"), document)
        sync_mode = r.enum(r.req(obj, "sync_mode", path), SyncMode, _join(path, "sync_mode"))
        dest_raw = obj.get("destination_sync_mode")
        dest_mode = r.enum(
            "append" if dest_raw is None else dest_raw,
            DestinationSyncMode,
            _join(path, "destination_sync_mode"),
        )
        configured = ConfiguredStream(
            stream=stream,
            sync_mode=sync_mode,
            destination_sync_mode=dest_mode,
            cursor_field=r.path_list(obj, "cursor_field", path),
            primary_key=r.paths(obj, "primary_key", path),
            generation_id=r.opt_int(obj, "generation_id", path),
            minimum_generation_id=r.opt_int(obj, "minimum_generation_id", path),
            sync_id=r.opt_int(obj, "sync_id", path),
        )
        _check_generations(r, configured, path)
        if configured.descriptor in seen:
            raise r.fail(
                path,
                f"stream {configured.descriptor} is configured twice "
                f"(also streams[{seen[configured.descriptor]}])",
            )
        seen[configured.descriptor] = i
        streams.append(configured)
    return ConfiguredCatalog(tuple(streams))
