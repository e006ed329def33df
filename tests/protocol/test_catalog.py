"""Configured catalog parsing: valid documents in every shape, each malformed variant named by path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from airbyte_protocol.models import ConfiguredAirbyteCatalog

from dbkit.protocol import (
    ConfiguredCatalog,
    DestinationSyncMode,
    ProtocolInputError,
    StreamDescriptor,
    SyncMode,
    parse_configured_catalog,
)

LONG = "x" * 300  # a value that must never come back in an error message


def _stream(name: str, namespace: str | None = None) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "name": name,
        "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "supported_sync_modes": ["full_refresh", "incremental"],
    }
    if namespace is not None:
        stream["namespace"] = namespace
    return stream


def full_document() -> dict[str, Any]:
    """Two streams; the second uses every optional field the protocol defines (and unknown extras)."""
    return {
        "streams": [
            {"stream": _stream("plain"), "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"},
            {
                "stream": {
                    **_stream("orders", "shop"),
                    "source_defined_cursor": True,
                    "default_cursor_field": ["updated_at"],
                    "source_defined_primary_key": [["id"], ["tenant", "id"]],
                    "is_resumable": True,
                    "some_future_key": {"kept": False},
                },
                "sync_mode": "incremental",
                "destination_sync_mode": "append_dedup",
                "cursor_field": ["updated_at"],
                "primary_key": [["id"]],
                "generation_id": 4,
                "minimum_generation_id": 4,
                "sync_id": 99,
                "include_files": False,
            },
        ]
    }


def test_full_document() -> None:
    catalog = parse_configured_catalog(full_document())
    assert len(catalog) == 2
    plain, orders = catalog.streams
    assert plain.descriptor == StreamDescriptor("plain")
    assert plain.sync_mode is SyncMode.FULL_REFRESH
    assert plain.destination_sync_mode is DestinationSyncMode.OVERWRITE
    assert plain.replaces_data
    assert (plain.cursor_field, plain.primary_key, plain.generation_id) == ((), (), None)

    assert orders.descriptor == StreamDescriptor("orders", "shop")
    assert orders.stream.supported_sync_modes == (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
    assert orders.stream.source_defined_cursor
    assert orders.stream.default_cursor_field == ("updated_at",)
    assert orders.stream.source_defined_primary_key == (("id",), ("tenant", "id"))
    assert orders.stream.is_resumable
    assert orders.stream.properties == {"id": {"type": "integer"}}
    assert orders.sync_mode is SyncMode.INCREMENTAL
    assert orders.destination_sync_mode is DestinationSyncMode.APPEND_DEDUP
    assert orders.cursor_field == ("updated_at",)
    assert orders.primary_key == (("id",),)
    assert orders.effective_primary_key == (("id",),)
    assert (orders.generation_id, orders.minimum_generation_id, orders.sync_id) == (4, 4, 99)
    assert orders.replaces_data  # truncate refresh: minimum generation == generation
    assert catalog.get(StreamDescriptor("orders", "shop")) is orders
    assert StreamDescriptor("orders") not in catalog
    assert StreamDescriptor("plain") in catalog


def test_round_trip_through_to_json_and_official_model() -> None:
    catalog = parse_configured_catalog(full_document())
    document = catalog.to_json()
    ConfiguredAirbyteCatalog.model_validate(document)
    again = parse_configured_catalog(document)
    assert again.streams == catalog.streams


def test_minimal_stream_gets_protocol_defaults() -> None:
    catalog = parse_configured_catalog(
        {"streams": [{"stream": {"name": "t", "json_schema": {}}, "sync_mode": "full_refresh"}]}
    )
    (stream,) = catalog.streams
    assert stream.destination_sync_mode is DestinationSyncMode.APPEND
    assert stream.stream.supported_sync_modes == (SyncMode.FULL_REFRESH,)
    assert stream.stream.namespace is None
    assert not stream.stream.is_resumable
    assert not stream.replaces_data
    assert stream.effective_cursor_field == ()


def test_effective_keys_fall_back_to_source_defined() -> None:
    doc = full_document()
    del doc["streams"][1]["primary_key"]
    del doc["streams"][1]["cursor_field"]
    orders = parse_configured_catalog(doc).streams[1]
    assert orders.effective_primary_key == (("id",), ("tenant", "id"))
    assert orders.effective_cursor_field == ("updated_at",)


def test_integral_float_generation_id_is_accepted() -> None:
    doc = full_document()
    doc["streams"][1]["generation_id"] = 4.0
    assert parse_configured_catalog(doc).streams[1].generation_id == 4


def test_same_name_in_other_namespace_is_not_a_duplicate() -> None:
    doc = {
        "streams": [
            {"stream": _stream("t", "a"), "sync_mode": "full_refresh"},
            {"stream": _stream("t", "b"), "sync_mode": "full_refresh"},
            {"stream": _stream("t"), "sync_mode": "full_refresh"},
        ]
    }
    assert len(parse_configured_catalog(doc)) == 3


def test_empty_catalog() -> None:
    assert len(parse_configured_catalog({"streams": []})) == 0
    assert isinstance(parse_configured_catalog({"streams": []}), ConfiguredCatalog)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], Any]:
    def mutate(doc: dict[str, Any]) -> Any:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return doc

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], Any]:
    def mutate(doc: dict[str, Any]) -> Any:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return doc

    return mutate


S1 = ["streams", 1]
ST1 = [*S1, "stream"]
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    # (id, mutation, path named in the message, what the message says)
    ("root-array", lambda d: [d], "catalog", "expected an object, got an array"),
    ("root-string", lambda d: LONG, "catalog", "expected an object, got a string"),
    ("no-streams", _delete(["streams"]), "catalog: streams", "is required"),
    ("streams-null", _set(["streams"], None), "catalog: streams", "is required"),
    ("streams-object", _set(["streams"], {"a": 1}), "catalog: streams", "expected an array"),
    ("stream-item-string", _set(S1, LONG), "streams[1]", "expected an object, got a string"),
    ("no-stream", _delete([*S1, "stream"]), "streams[1].stream", "is required"),
    ("stream-array", _set([*S1, "stream"], []), "streams[1].stream", "expected an object"),
    ("no-name", _delete([*ST1, "name"]), "streams[1].stream.name", "is required"),
    ("name-empty", _set([*ST1, "name"], ""), "streams[1].stream.name", "must not be empty"),
    ("name-number", _set([*ST1, "name"], 5), "streams[1].stream.name", "expected a string, got a number"),
    ("namespace-number", _set([*ST1, "namespace"], 1), "streams[1].stream.namespace", "expected a string"),
    ("no-json-schema", _delete([*ST1, "json_schema"]), "streams[1].stream.json_schema", "is required"),
    (
        "json-schema-string",
        _set([*ST1, "json_schema"], LONG),
        "streams[1].stream.json_schema",
        "expected an object",
    ),
    (
        "supported-mode-bad",
        _set([*ST1, "supported_sync_modes"], ["full_refresh", "sometimes"]),
        "streams[1].stream.supported_sync_modes[1]",
        "'sometimes' is not one of full_refresh, incremental",
    ),
    (
        "supported-modes-false",
        _set([*ST1, "supported_sync_modes"], False),
        "streams[1].stream.supported_sync_modes",
        "expected an array, got a boolean",
    ),
    (
        "source-defined-cursor-string",
        _set([*ST1, "source_defined_cursor"], "yes"),
        "streams[1].stream.source_defined_cursor",
        "expected a boolean",
    ),
    (
        "default-cursor-string",
        _set([*ST1, "default_cursor_field"], "updated_at"),
        "streams[1].stream.default_cursor_field",
        "expected an array",
    ),
    (
        "default-cursor-item",
        _set([*ST1, "default_cursor_field"], [1]),
        "streams[1].stream.default_cursor_field[0]",
        "expected a string",
    ),
    (
        "source-pk-empty-path",
        _set([*ST1, "source_defined_primary_key"], [["id"], []]),
        "streams[1].stream.source_defined_primary_key[1]",
        "at least one field",
    ),
    (
        "is-resumable-number",
        _set([*ST1, "is_resumable"], 1),
        "streams[1].stream.is_resumable",
        "expected a boolean",
    ),
    ("no-sync-mode", _delete([*S1, "sync_mode"]), "streams[1].sync_mode", "is required"),
    ("sync-mode-bad", _set([*S1, "sync_mode"], "FULL"), "streams[1].sync_mode", "'FULL' is not one of"),
    ("sync-mode-long", _set([*S1, "sync_mode"], LONG), "streams[1].sync_mode", "a string is not one of"),
    ("sync-mode-number", _set([*S1, "sync_mode"], 1), "streams[1].sync_mode", "a number is not one of"),
    (
        "destination-mode-bad",
        _set([*S1, "destination_sync_mode"], "upsert"),
        "streams[1].destination_sync_mode",
        "'upsert' is not one of append, overwrite, append_dedup",
    ),
    (
        "destination-mode-false",
        _set([*S1, "destination_sync_mode"], False),
        "streams[1].destination_sync_mode",
        "a boolean is not one of",
    ),
    (
        "destination-mode-empty",
        _set([*S1, "destination_sync_mode"], ""),
        "streams[1].destination_sync_mode",
        "'' is not one of",
    ),
    ("cursor-object", _set([*S1, "cursor_field"], {"a": 1}), "streams[1].cursor_field", "expected an array"),
    (
        "cursor-item",
        _set([*S1, "cursor_field"], [None]),
        "streams[1].cursor_field[0]",
        "expected a string, got null",
    ),
    ("pk-flat", _set([*S1, "primary_key"], ["id"]), "streams[1].primary_key[0]", "expected an array"),
    ("pk-item", _set([*S1, "primary_key"], [["id", 2]]), "streams[1].primary_key[0][1]", "expected a string"),
    ("pk-empty-path", _set([*S1, "primary_key"], [[]]), "streams[1].primary_key[0]", "at least one field"),
    (
        "generation-string",
        _set([*S1, "generation_id"], LONG),
        "streams[1].generation_id",
        "expected an integer",
    ),
    (
        "generation-fraction",
        _set([*S1, "generation_id"], 1.5),
        "streams[1].generation_id",
        "expected an integer",
    ),
    (
        "generation-bool",
        _set([*S1, "generation_id"], True),
        "streams[1].generation_id",
        "expected an integer",
    ),
    (
        "min-generation-array",
        _set([*S1, "minimum_generation_id"], []),
        "streams[1].minimum_generation_id",
        "expected an integer",
    ),
    ("sync-id-string", _set([*S1, "sync_id"], "1"), "streams[1].sync_id", "expected an integer"),
    (
        "min-generation-above-generation",
        lambda d: _set([*S1, "minimum_generation_id"], 3)(_set([*S1, "generation_id"], 2)(d)),
        "streams[1].minimum_generation_id",
        "3 is above generation_id 2",
    ),
    (
        "min-generation-without-generation",
        lambda d: _set([*S1, "minimum_generation_id"], 1)(_delete([*S1, "generation_id"])(d)),
        "streams[1].minimum_generation_id",
        "no generation_id",
    ),
    ("negative-generation", _set([*S1, "generation_id"], -1), "streams[1].generation_id", "0 or more"),
    (
        "duplicate",
        lambda d: _set([*ST1, "name"], "plain")(_delete([*ST1, "namespace"])(d)),
        "streams[1]",
        "stream plain is configured twice (also streams[0])",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "where", "problem"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_catalog_names_the_field(mutate: Callable[[Any], Any], where: str, problem: str) -> None:
    doc = mutate(copy.deepcopy(full_document()))
    with pytest.raises(ProtocolInputError) as info:
        parse_configured_catalog(doc)
    message = str(info.value)
    assert message.startswith("catalog")
    expected_where = where if where.startswith("catalog") else f"catalog: {where}"
    assert info.value.where == expected_where
    assert message == f"{expected_where}: {info.value.problem}"
    assert problem in message
    assert LONG[:40] not in message
    assert len(message) < 200


def test_duplicate_with_namespace_names_both_positions() -> None:
    doc = {
        "streams": [
            {"stream": _stream("a", "s"), "sync_mode": "full_refresh"},
            {"stream": _stream("b", "s"), "sync_mode": "full_refresh"},
            {"stream": _stream("a", "s"), "sync_mode": "incremental"},
        ]
    }
    with pytest.raises(
        ProtocolInputError, match=r"streams\[2\]: stream s\.a is configured twice \(also streams\[0\]\)"
    ):
        parse_configured_catalog(doc)


def test_custom_document_name_is_used() -> None:
    with pytest.raises(ProtocolInputError, match=r"^my-catalog\.json: streams: is required$"):
        parse_configured_catalog({}, document="my-catalog.json")
