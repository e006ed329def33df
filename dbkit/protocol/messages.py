"""Fast emission of Airbyte messages as JSON lines (bytes, newline-terminated).

Values in ``data`` must already be JSON-ready. Exact numerics travel as ``orjson.Fragment``
(pre-rendered number text), ``Decimal`` or ``int`` (of any width), so a 100-digit numeric never
passes through a float. A float NaN or infinity must be dealt with by the caller: orjson would
silently write ``null``. Use :func:`dumps_exact` (not ``orjson.dumps(..., default=exact_default)``)
for any document that may hold an integer wider than 64 bits: orjson refuses those before it
consults ``default``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from dbkit.protocol import deepjson
from dbkit.protocol.catalog import AirbyteStream, StreamDescriptor
from dbkit.protocol.deepjson import exact_default as exact_default
from dbkit.protocol.deepjson import int_text as int_text

_OPTS = orjson.OPT_APPEND_NEWLINE
dumps = orjson.dumps
Fragment = orjson.Fragment


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dumps_exact(value: Any, option: int = 0) -> bytes:
    """``orjson.dumps`` that writes ``Decimal`` and integers of any width digit for digit, at any
    nesting depth.

    The common case costs one orjson call. What orjson refuses (an integer wider than 64 bits,
    nesting deeper than its 255 levels, a string holding a lone surrogate, which a ``\\udXXX``
    escape in parsed input makes and which is written back as that escape) is written by
    :func:`dbkit.protocol.deepjson.dumps`, which honours ``OPT_APPEND_NEWLINE`` and
    ``OPT_INDENT_2`` and no other option.
    """
    try:
        return orjson.dumps(value, option=option, default=exact_default)
    except orjson.JSONEncodeError:
        text = deepjson.dumps(value, indent=2 if option & orjson.OPT_INDENT_2 else 0)
        return text + b"\n" if option & orjson.OPT_APPEND_NEWLINE else text


def _line(message: Mapping[str, Any]) -> bytes:
    return dumps_exact(message, _OPTS)


def record_envelope(descriptor: StreamDescriptor, emitted_at: int) -> tuple[bytes, bytes]:
    """The bytes before and after a record's ``data`` object, for callers that render data themselves.

    ``prefix + data_json + suffix`` is a complete RECORD line. Records with meta changes use
    :func:`record_suffix_with_changes` instead of ``suffix``.
    """
    head: dict[str, Any] = {"stream": descriptor.name}
    if descriptor.namespace is not None:
        head["namespace"] = descriptor.namespace
    head["emitted_at"] = emitted_at
    inner = orjson.dumps(head)[:-1]  # drop the closing brace
    return b'{"type":"RECORD","record":' + inner + b',"data":', b"}}\n"


def record_suffix_with_changes(changes: Sequence[Mapping[str, str]]) -> bytes:
    """The bytes after a record's ``data`` when the record carries ``meta.changes``."""
    return b',"meta":' + orjson.dumps({"changes": list(changes)}) + b"}}\n"


def record(
    descriptor: StreamDescriptor,
    data: Mapping[str, Any],
    emitted_at: int | None = None,
    changes: Sequence[Mapping[str, str]] | None = None,
) -> bytes:
    prefix, suffix = record_envelope(descriptor, now_ms() if emitted_at is None else emitted_at)
    if changes:
        suffix = record_suffix_with_changes(changes)
    return prefix + dumps_exact(data) + suffix


def change(field: str, reason: str, kind: str = "NULLED") -> dict[str, str]:
    """One ``meta.changes`` entry (Airbyte reasons, e.g. SOURCE_SERIALIZATION_ERROR)."""
    return {"field": field, "change": kind, "reason": reason}


def stream_state(descriptor: StreamDescriptor, state: Mapping[str, Any] | None, record_count: int) -> bytes:
    return _line(
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": descriptor.to_json(), "stream_state": state},
                "sourceStats": {"recordCount": float(record_count)},
            },
        }
    )


def global_state(
    shared: Mapping[str, Any] | None,
    stream_states: Mapping[StreamDescriptor, Mapping[str, Any] | None],
    record_count: int,
) -> bytes:
    return _line(
        {
            "type": "STATE",
            "state": {
                "type": "GLOBAL",
                "global": {
                    "shared_state": shared,
                    "stream_states": [
                        {"stream_descriptor": d.to_json(), "stream_state": s}
                        for d, s in stream_states.items()
                    ],
                },
                "sourceStats": {"recordCount": float(record_count)},
            },
        }
    )


def echo_state(state: Mapping[str, Any], destination_record_count: int) -> bytes:
    """A destination's echo of a STATE payload, with ``destinationStats`` added."""
    payload = dict(state)
    payload["destinationStats"] = {"recordCount": float(destination_record_count)}
    return _line({"type": "STATE", "state": payload})


def log(level: str, message: str, stack_trace: str | None = None) -> bytes:
    body: dict[str, Any] = {"level": level, "message": message}
    if stack_trace:
        body["stack_trace"] = stack_trace
    return _line({"type": "LOG", "log": body})


def trace_error(
    message: str,
    failure_type: str,
    internal_message: str | None = None,
    stack_trace: str | None = None,
    stream: StreamDescriptor | None = None,
) -> bytes:
    error: dict[str, Any] = {"message": message, "failure_type": failure_type}
    if internal_message:
        error["internal_message"] = internal_message
    if stack_trace:
        error["stack_trace"] = stack_trace
    if stream is not None:
        error["stream_descriptor"] = stream.to_json()
    return _line({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": float(now_ms()), "error": error}})


def stream_status(descriptor: StreamDescriptor, status: str) -> bytes:
    return _line(
        {
            "type": "TRACE",
            "trace": {
                "type": "STREAM_STATUS",
                "emitted_at": float(now_ms()),
                "stream_status": {"stream_descriptor": descriptor.to_json(), "status": status},
            },
        }
    )


def estimate(descriptor: StreamDescriptor, row_estimate: int | None, byte_estimate: int | None) -> bytes:
    body: dict[str, Any] = {"name": descriptor.name, "type": "STREAM"}
    if descriptor.namespace is not None:
        body["namespace"] = descriptor.namespace
    if row_estimate is not None:
        body["row_estimate"] = int(row_estimate)
    if byte_estimate is not None:
        body["byte_estimate"] = int(byte_estimate)
    return _line(
        {"type": "TRACE", "trace": {"type": "ESTIMATE", "emitted_at": float(now_ms()), "estimate": body}}
    )


def spec(specification: Mapping[str, Any]) -> bytes:
    return _line({"type": "SPEC", "spec": dict(specification)})


def connection_status(succeeded: bool, message: str | None = None) -> bytes:
    body: dict[str, Any] = {"status": "SUCCEEDED" if succeeded else "FAILED"}
    if message:
        body["message"] = message
    return _line({"type": "CONNECTION_STATUS", "connectionStatus": body})


def catalog(streams: Iterable[AirbyteStream]) -> bytes:
    return _line({"type": "CATALOG", "catalog": {"streams": [s.to_json() for s in streams]}})
