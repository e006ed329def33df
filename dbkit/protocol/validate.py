"""A strict validator for streams of Airbyte messages (``dbkit validate < messages.jsonl``).

Checks, line by line: the line is one JSON object; ``type`` is a protocol message type and its
payload (and only its payload) is present with the right shape; records name a configured stream
and their ``data`` conforms to that stream's ``json_schema`` (including Airbyte's date and time
formats); states name configured streams; stream statuses go STARTED -> COMPLETE/INCOMPLETE and no
record follows a stream's final status. The catalog comes from the caller or from a CATALOG
message earlier in the stream.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from dbkit.protocol.catalog import AirbyteStream, ConfiguredCatalog, StreamDescriptor, parse_airbyte_stream
from dbkit.protocol.errors import ProtocolInputError
from dbkit.protocol.jsonio import loads_exact

PAYLOAD_KEYS = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
    "CONTROL": "control",
}
LOG_LEVELS = {"FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"}
FAILURE_TYPES = {"system_error", "config_error", "transient_error"}
STATUSES = {"STARTED", "RUNNING", "COMPLETE", "INCOMPLETE"}
CHANGES = {"NULLED", "TRUNCATED"}
REASONS = {
    f"{who}_{what}"
    for who in ("SOURCE", "DESTINATION", "PLATFORM")
    for what in ("RECORD_SIZE_LIMITATION", "FIELD_SIZE_LIMITATION", "SERIALIZATION_ERROR")
} | {"SOURCE_RETRIEVAL_ERROR", "DESTINATION_TYPECAST_ERROR"}

# Airbyte's well-known temporal forms, extended with BC (" BC" suffix) and ISO 8601 expanded years.
_YEAR = r"(?:\d{4}|\+\d{5,})"
_DATE = re.compile(rf"^{_YEAR}-(\d{{2}})-(\d{{2}})( BC)?$")
_TIME = r"\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
_ZONE = r"(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?)"
_TS_TZ = re.compile(rf"^{_YEAR}-\d{{2}}-\d{{2}}T{_TIME}{_ZONE}( BC)?$")
_TS_NTZ = re.compile(rf"^{_YEAR}-\d{{2}}-\d{{2}}T{_TIME}( BC)?$")
_TIME_TZ = re.compile(rf"^{_TIME}{_ZONE}$")
_TIME_NTZ = re.compile(rf"^{_TIME}$")
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def _days_in_month(year: int, month: int) -> int:
    """Days of a month in the proleptic Gregorian calendar (astronomical years: 1 BC is year 0)."""
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _valid_date(value: str) -> bool:
    m = _DATE.match(value)
    if not m:
        return False
    year, month, day = int(value.split("-", 1)[0].lstrip("+")), int(m.group(1)), int(m.group(2))
    if m.group(3):  # " BC": there is no year 0 BC
        if year == 0:
            return False
        year = 1 - year
    return 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date")
def _check_date(value: object) -> bool:
    return not isinstance(value, str) or _valid_date(value)


@_FORMATS.checks("date-time")
def _check_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not (_TS_TZ.match(value) or _TS_NTZ.match(value)):
        return False
    return _valid_date(value.split("T", 1)[0] + (" BC" if value.endswith(" BC") else ""))


@_FORMATS.checks("time")
def _check_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_TIME_TZ.match(value) or _TIME_NTZ.match(value))


_AIRBYTE_TYPE_FORMS = {
    "timestamp_with_timezone": _TS_TZ,
    "timestamp_without_timezone": _TS_NTZ,
    "time_with_timezone": _TIME_TZ,
    "time_without_timezone": _TIME_NTZ,
}


def _airbyte_type(
    validator: Any, value: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    form = _AIRBYTE_TYPE_FORMS.get(value)
    if form is not None and isinstance(instance, str) and not form.match(instance):
        yield jsonschema.ValidationError(f"{instance!r} is not a {value}")


def _content_encoding(
    validator: Any, value: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if value == "base64" and isinstance(instance, str) and not _BASE64.match(instance):
        yield jsonschema.ValidationError("value is not base64")


def _is_integer(checker: Any, instance: Any) -> bool:
    # loads_exact turns non-integer literals of long lines into Decimal; 5.0 is an integer in Draft 7
    if isinstance(instance, Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return bool(Draft7Validator.TYPE_CHECKER.is_type(instance, "integer"))


RecordValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft7Validator,
    {"airbyte_type": _airbyte_type, "contentEncoding": _content_encoding},
    type_checker=Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def record_validator(json_schema: Mapping[str, Any]) -> Any:
    """A jsonschema validator for a stream's records, with Airbyte's temporal forms checked."""
    return RecordValidator(dict(json_schema), format_checker=_FORMATS)


@dataclass
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class _StreamInfo:
    stream: AirbyteStream
    validator: Any
    status: str | None = None


@dataclass
class StreamValidator:
    """Feed it lines; it collects :class:`Problem`s. Use ``validate_lines`` for a one-shot check."""

    catalog: ConfiguredCatalog | Iterable[AirbyteStream] | None = None
    max_record_problems_per_stream: int = 20
    problems: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _streams: dict[StreamDescriptor, _StreamInfo] | None = None
    _line_no: int = 0
    _record_problems: Counter[StreamDescriptor] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.catalog is not None:
            streams = (
                [c.stream for c in self.catalog]
                if isinstance(self.catalog, ConfiguredCatalog)
                else list(self.catalog)
            )
            self._adopt(streams)

    def _adopt(self, streams: Iterable[AirbyteStream]) -> None:
        self._streams = {}
        for s in streams:
            try:
                Draft7Validator.check_schema(dict(s.json_schema))
            except SchemaError as exc:
                self._problem(f"stream {s.descriptor}: json_schema is not a valid JSON schema: {exc.message}")
                self._streams[s.descriptor] = _StreamInfo(s, None)  # known, but its records go unjudged
                continue
            self._streams[s.descriptor] = _StreamInfo(s, record_validator(s.json_schema))

    def _problem(self, message: str) -> None:
        self.problems.append(Problem(self._line_no, message))

    # ------------------------------------------------------------------ entry points
    def feed(self, line: bytes | str) -> None:
        self._line_no += 1
        text = line.strip()
        if not text:
            self._problem("empty line")
            return
        try:
            message = loads_exact(text)
        except ValueError as exc:
            self._problem(f"not JSON: {exc}")
            return
        if not isinstance(message, dict):
            self._problem("a message must be a JSON object")
            return
        kind = message.get("type")
        if not isinstance(kind, str) or kind not in PAYLOAD_KEYS:
            self._problem(f"unknown message type {kind!r}")
            return
        self.counts[kind] += 1
        key = PAYLOAD_KEYS[kind]
        others = [k for k in PAYLOAD_KEYS.values() if k != key and k in message]
        if others:
            self._problem(f"{kind} message also carries {', '.join(others)}")
        payload = message.get(key)
        if not isinstance(payload, dict):
            self._problem(f"{kind} message needs an object under {key!r}")
            return
        getattr(self, f"_check_{key.lower()}")(payload)

    def finish(self) -> list[Problem]:
        return self.problems

    # ------------------------------------------------------------------ per type
    def _descriptor(self, obj: Any, where: str) -> StreamDescriptor | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            self._problem(f"{where} needs a non-empty string 'name'")
            return None
        ns = obj.get("namespace")
        if ns is not None and not isinstance(ns, str):
            self._problem(f"{where}.namespace must be a string")
            return None
        return StreamDescriptor(obj["name"], ns)

    def _known(self, descriptor: StreamDescriptor, what: str) -> _StreamInfo | None:
        if self._streams is None:
            return None
        info = self._streams.get(descriptor)
        if info is None:
            self._problem(f"{what} names stream {descriptor}, which is not in the catalog")
        return info

    def _check_record(self, rec: dict[str, Any]) -> None:
        descriptor = self._descriptor(
            {"name": rec.get("stream"), "namespace": rec.get("namespace")}, "record.stream"
        )
        emitted_at = rec.get("emitted_at")
        if isinstance(emitted_at, bool) or not isinstance(emitted_at, int):
            self._problem("record.emitted_at must be an integer (epoch milliseconds)")
        data = rec.get("data")
        if not isinstance(data, dict):
            self._problem("record.data must be an object")
            return
        meta = rec.get("meta")
        if meta is not None:
            self._check_meta(meta)
        if descriptor is None:
            return
        info = self._known(descriptor, "record")
        if info is None:
            return
        if info.status in ("COMPLETE", "INCOMPLETE"):
            self._problem(f"record for stream {descriptor} after its {info.status} status")
        if info.validator is None:
            return
        errors = list(info.validator.iter_errors(data))
        if errors and self._record_problems[descriptor] < self.max_record_problems_per_stream:
            self._record_problems[descriptor] += 1
            for e in errors[:3]:
                where = "/".join(str(p) for p in e.absolute_path) or "(record)"
                self._problem(f"record of {descriptor}: {where}: {e.message}")

    def _check_meta(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            self._problem("record.meta must be an object")
            return
        changes = meta.get("changes", [])
        if not isinstance(changes, list):
            self._problem("record.meta.changes must be an array")
            return
        for i, ch in enumerate(changes):
            if not isinstance(ch, dict) or not isinstance(ch.get("field"), str):
                self._problem(f"record.meta.changes[{i}] needs a string 'field'")
            elif ch.get("change") not in CHANGES:
                self._problem(f"record.meta.changes[{i}].change must be one of {sorted(CHANGES)}")
            elif ch.get("reason") not in REASONS:
                self._problem(
                    f"record.meta.changes[{i}].reason {ch.get('reason')!r} is not an Airbyte reason"
                )

    def _check_stats(self, state: dict[str, Any]) -> None:
        for key in ("sourceStats", "destinationStats"):
            stats = state.get(key)
            if stats is None:
                continue
            count = stats.get("recordCount") if isinstance(stats, dict) else None
            if isinstance(count, bool) or not isinstance(count, int | float | Decimal) or count < 0:
                self._problem(f"state.{key}.recordCount must be a non-negative number")

    def _check_stream_state(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            self._problem(f"{where} must be an object")
            return
        descriptor = self._descriptor(obj.get("stream_descriptor"), f"{where}.stream_descriptor")
        blob = obj.get("stream_state")
        if blob is not None and not isinstance(blob, dict):
            self._problem(f"{where}.stream_state must be an object")
        if descriptor is not None:
            self._known(descriptor, "state")

    def _check_state(self, state: dict[str, Any]) -> None:
        kind = state.get("type")
        if kind == "STREAM":
            self._check_stream_state(state.get("stream"), "state.stream")
        elif kind == "GLOBAL":
            g = state.get("global")
            if not isinstance(g, dict) or not isinstance(g.get("stream_states"), list):
                self._problem("state.global needs a 'stream_states' array")
                return
            shared = g.get("shared_state")
            if shared is not None and not isinstance(shared, dict):
                self._problem("state.global.shared_state must be an object")
            for i, s in enumerate(g["stream_states"]):
                self._check_stream_state(s, f"state.global.stream_states[{i}]")
        else:
            self._problem(f"state.type must be STREAM or GLOBAL, not {kind!r}")
        self._check_stats(state)

    def _check_log(self, log: dict[str, Any]) -> None:
        if log.get("level") not in LOG_LEVELS:
            self._problem(f"log.level {log.get('level')!r} is not one of {sorted(LOG_LEVELS)}")
        if not isinstance(log.get("message"), str):
            self._problem("log.message must be a string")

    def _check_trace(self, trace: dict[str, Any]) -> None:
        if isinstance(trace.get("emitted_at"), bool) or not isinstance(
            trace.get("emitted_at"), int | float | Decimal
        ):
            self._problem("trace.emitted_at must be a number")
        kind = trace.get("type")
        body = trace.get(
            {
                "ERROR": "error",
                "ESTIMATE": "estimate",
                "STREAM_STATUS": "stream_status",
                "ANALYTICS": "analytics",
            }.get(str(kind), "")
        )
        if not isinstance(body, dict):
            self._problem(f"trace of type {kind!r} needs its matching object")
            return
        if kind == "ERROR":
            if not isinstance(body.get("message"), str) or not body["message"]:
                self._problem("trace.error.message must be a non-empty string")
            if body.get("failure_type") is not None and body["failure_type"] not in FAILURE_TYPES:
                self._problem(f"trace.error.failure_type {body['failure_type']!r} is not valid")
            if body.get("stream_descriptor") is not None:
                self._descriptor(body["stream_descriptor"], "trace.error.stream_descriptor")
        elif kind == "ESTIMATE":
            if not isinstance(body.get("name"), str) or body.get("type") not in ("STREAM", "SYNC"):
                self._problem("trace.estimate needs 'name' and type STREAM or SYNC")
            for key in ("row_estimate", "byte_estimate"):
                v = body.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    self._problem(f"trace.estimate.{key} must be an integer")
        elif kind == "STREAM_STATUS":
            self._check_status(body)

    def _check_status(self, body: dict[str, Any]) -> None:
        status = body.get("status")
        if status not in STATUSES:
            self._problem(f"trace.stream_status.status {status!r} is not one of {sorted(STATUSES)}")
            return
        descriptor = self._descriptor(body.get("stream_descriptor"), "trace.stream_status.stream_descriptor")
        if descriptor is None:
            return
        info = self._known(descriptor, "stream status")
        if info is None:
            return
        if status == "STARTED" and info.status is not None:
            self._problem(f"stream {descriptor} STARTED twice")
        elif status in ("RUNNING", "COMPLETE", "INCOMPLETE") and info.status not in ("STARTED", "RUNNING"):
            self._problem(f"stream {descriptor} {status} without STARTED, or after its final status")
        info.status = str(status)

    def _check_spec(self, spec: dict[str, Any]) -> None:
        schema = spec.get("connectionSpecification")
        if not isinstance(schema, dict):
            self._problem("spec.connectionSpecification must be an object")
            return
        try:
            Draft7Validator.check_schema(schema)
        except SchemaError as exc:
            self._problem(f"spec.connectionSpecification is not a valid JSON schema: {exc.message}")

    def _check_connectionstatus(self, status: dict[str, Any]) -> None:
        if status.get("status") not in ("SUCCEEDED", "FAILED"):
            self._problem("connectionStatus.status must be SUCCEEDED or FAILED")
        if status.get("message") is not None and not isinstance(status["message"], str):
            self._problem("connectionStatus.message must be a string")

    def _check_catalog(self, catalog: dict[str, Any]) -> None:
        items = catalog.get("streams")
        if not isinstance(items, list):
            self._problem("catalog.streams must be an array")
            return
        streams = []
        seen: set[StreamDescriptor] = set()
        for i, item in enumerate(items):
            try:
                s = parse_airbyte_stream(item, f"streams[{i}]", "catalog")
            except ProtocolInputError as exc:
                self._problem(str(exc))
                continue
            if s.descriptor in seen:
                self._problem(f"catalog lists stream {s.descriptor} twice")
            seen.add(s.descriptor)
            if s.json_schema.get("type") not in ("object", ["object"], ["null", "object"]):
                self._problem(f"stream {s.descriptor}: json_schema.type must be 'object'")
            streams.append(s)
        if self._streams is None:
            self._adopt(streams)

    def _check_control(self, control: dict[str, Any]) -> None:
        if control.get("type") != "CONNECTOR_CONFIG":
            self._problem("control.type must be CONNECTOR_CONFIG")


def validate_lines(
    lines: Iterable[bytes | str],
    catalog: ConfiguredCatalog | Iterable[AirbyteStream] | None = None,
) -> list[Problem]:
    validator = StreamValidator(catalog)
    for line in lines:
        validator.feed(line)
    return validator.finish()
