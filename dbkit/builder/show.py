"""How ``dbkit preview`` shows what it read: ``rich`` tables that fit the terminal, or one JSON
document for machines. Every text passes through the secret masker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dbkit.builder.preview import PreviewResult, StreamPreview
from dbkit.config import MASKER
from dbkit.protocol.messages import dumps_exact
from dbkit.runner.errors import SyncError

MIN_COLUMN = 8
"""Narrowest useful column: below this a stream's table is shown turned (a row per field)."""
COMFORTABLE = 16
"""A stream's records are shown a column per field when every field gets this many characters
(or its whole width, when less); else a row per field."""
MAX_VALUE = 60
"""Longest value shown in a cell (the JSON output has them whole)."""


def declared_type(schema: Any) -> str:
    """A field's declared type, as a person reads it: the ``airbyte_type`` when there is one,
    else the JSON type with its format (``date``, ``date-time``) or encoding (``base64``);
    ``any`` for a schema that allows every value."""
    if not isinstance(schema, Mapping):
        return "any"
    if isinstance(schema.get("airbyte_type"), str):
        return str(schema["airbyte_type"])
    types = schema.get("type")
    names = [t for t in (types if isinstance(types, list) else [types]) if isinstance(t, str) and t != "null"]
    if not names:
        return "any"
    name = "|".join(names)
    if isinstance(schema.get("format"), str):
        return str(schema["format"])
    if schema.get("contentEncoding") == "base64":
        return "binary"
    if name == "array" and isinstance(schema.get("items"), Mapping):
        return f"array<{declared_type(schema['items'])}>"
    return name


def field_types(stream: StreamPreview) -> dict[str, str]:
    return {name: declared_type(schema) for name, schema in stream.stream.properties.items()}


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else dumps_exact(value).decode("utf-8")
    text = MASKER.mask(text).replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _value(record_data: Mapping[str, Any], name: str, changed: Mapping[str, str]) -> Text:
    if name in changed:
        shown = "null" if record_data.get(name) is None else _cell(record_data.get(name))
        return Text(f"{shown} ({changed[name]})", style="bold red")
    if name not in record_data:
        return Text("", style="dim")
    value = record_data[name]
    if value is None:
        return Text("null", style="dim")
    return Text(_cell(value))


def _changes(changes: list[Mapping[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for change in changes:
        name = str(change.get("field", ""))
        out[name] = f"{change.get('change', '?')}: {change.get('reason', '?')}"
    return out


def _key(stream: StreamPreview) -> set[str]:
    return {part[0] for part in stream.configured.primary_key if part}


def _header(stream: StreamPreview) -> Text:
    c = stream.configured
    mode = c.sync_mode.value
    if c.cursor_field:
        mode += f" on {'.'.join(c.cursor_field)}"
    if stream.more:
        how = f"first {len(stream.records)} records (more not read)"
    elif stream.stopped:
        how = f"{len(stream.records)} records (stopped)"
    else:
        how = f"{len(stream.records)} records, stream {(stream.status or 'ended').lower()}"
    text = Text()
    text.append(str(c.descriptor), style="bold cyan")
    text.append(f"  {mode} · {how} · {stream.seconds:.2f} s", style="dim")
    return text


def records_table(stream: StreamPreview, width: int) -> Table:
    """The records as a table: a column per field (its name, declared type, key and cursor
    marks), or, when that many columns cannot fit ``width``, a row per field."""
    types = field_types(stream)
    names = list(types) or sorted({k for r in stream.records for k in r.data})
    key, cursor = _key(stream), set(stream.configured.cursor_field[:1])

    def label(name: str) -> Text:
        text = Text(name, style="bold")
        marks = " · ".join(m for m, on in (("pk", name in key), ("cursor", name in cursor)) if on)
        text.append(f"\n{types.get(name, 'any')}" + (f" · {marks}" if marks else ""), style="dim")
        return text

    changed = [_changes(r.changes) for r in stream.records]
    cells = [[_value(r.data, n, c) for n in names] for r, c in zip(stream.records, changed, strict=True)]
    natural = [
        max([*(len(line) for line in label(n).plain.split("\n")), *(len(row[i].plain) for row in cells)])
        for i, n in enumerate(names)
    ]
    if sum(min(w, COMFORTABLE) for w in natural) + 3 * len(names) + 1 <= width:
        widths = fit_widths(natural, width - 3 * len(names) - 1)
        table = Table(expand=False, pad_edge=False)
        for name, w in zip(names, widths, strict=True):
            table.add_column(label(name), overflow="ellipsis", no_wrap=True, width=w)
        for row in cells:
            table.add_row(*row)
        return table
    name_width = min(max(len(n) for n in names), 24)
    type_width = min(max(len(t) for t in types.values()) + 9, 20) if types else 8
    fits = max(1, (width - name_width - type_width - 7) // (MIN_COLUMN + 11))
    shown = stream.records[:fits]
    natural = [name_width, type_width]
    natural += [
        max(len(_value(r.data, n, c).plain) for n in names) for r, c in zip(shown, changed, strict=False)
    ]
    widths = fit_widths(natural, width - 3 * len(natural) - 1)
    table = Table(expand=False, pad_edge=False, caption=_turned_caption(len(stream.records), fits))
    table.add_column("field", no_wrap=True, overflow="ellipsis", width=widths[0])
    table.add_column("type", no_wrap=True, overflow="ellipsis", style="dim", width=widths[1])
    for i, w in enumerate(widths[2:]):
        table.add_column(f"#{i + 1}", overflow="ellipsis", no_wrap=True, width=w)
    for name in names:
        marks = [m for m, on in (("pk", name in key), ("cursor", name in cursor)) if on]
        table.add_row(
            Text(name, style="bold"),
            " ".join([*marks, types.get(name, "any")]),
            *(_value(r.data, name, c) for r, c in zip(shown, changed, strict=False)),
        )
    return table


def fit_widths(natural: list[int], budget: int) -> list[int]:
    """Column widths within ``budget``: columns narrower than a fair share keep their natural
    width, the others share what is left equally (never below ``MIN_COLUMN``)."""
    widths = list(natural)
    wide = sorted(range(len(natural)), key=lambda i: natural[i])
    left = budget
    while wide:
        share = max(MIN_COLUMN, left // len(wide))
        i = wide[0]
        if natural[i] <= share:
            widths[i] = natural[i]
            left -= natural[i]
            wide.pop(0)
            continue
        for j in wide:
            widths[j] = share
        break
    return widths


def _turned_caption(records: int, fits: int) -> str | None:
    if records <= fits:
        return None
    return f"{fits} of {records} records fit this terminal; --json shows them all"


def state_payload(state: Any) -> Any:
    """What a STATE message's ``state`` saves: a stream's ``stream_state``, the ``global`` state,
    or a legacy ``data`` blob (without the message's envelope and stats)."""
    if not isinstance(state, Mapping):
        return state
    kind = state.get("type")
    if kind == "STREAM" and isinstance(state.get("stream"), Mapping):
        return state["stream"].get("stream_state")
    if kind == "GLOBAL" and "global" in state:
        return state["global"]
    if "data" in state:
        return state["data"]
    return {k: v for k, v in state.items() if k not in ("sourceStats", "destinationStats")}


def _error_text(error: SyncError) -> Text:
    kind = f" [{error.failure_type}]" if error.failure_type else ""
    where = f" stream {error.stream}:" if error.stream else ""
    return Text(f"{error.origin} error{kind}:{where} {MASKER.mask(error.message)}", style="bold red")


def stream_renderable(stream: StreamPreview, width: int) -> RenderableType:
    parts: list[RenderableType] = [_header(stream)]
    if stream.records:
        parts.append(records_table(stream, width))
    elif not stream.errors:
        parts.append(Text("no records", style="dim"))
    changes = sum(len(r.changes) for r in stream.records)
    if changes:
        parts.append(Text(f"{changes} value(s) changed by the source (shown in red)", style="red"))
    if stream.state is not None:
        state = MASKER.mask(dumps_exact(state_payload(stream.state)).decode("utf-8"))
        text = Text.assemble(("state a sync would save here: ", "green"), state)
        text.overflow = "fold"
        parts.append(text)
    else:
        parts.append(Text("no state after these records", style="dim"))
    parts.extend(Text(w, style="yellow") for w in stream.warnings)
    parts.extend(_error_text(e) for e in stream.errors)
    return Group(*parts)


def show(result: PreviewResult, console: Console) -> None:
    """Print the preview for people."""
    for error in result.errors:
        console.print(_error_text(error))
        if error.origin == "source" and error.failure_type == "config_error":
            console.print(Text("fix the config and run dbkit preview again", style="dim"))
    if result.check_ok:
        count = len(result.discovered)
        console.print(
            Text.assemble(
                (f"{escape(result.connector)}: ", "bold"),
                ("check succeeded", "green"),
                f" · {count} stream{'s' if count != 1 else ''} discovered",
            )
        )
    for stream in result.streams:
        console.print()
        console.print(stream_renderable(stream, console.width))


def to_json(result: PreviewResult) -> bytes:
    """The preview as one JSON document (masked), for machines."""
    doc = {
        "connector": result.connector,
        "ok": result.ok,
        "limit": result.limit,
        "check": {"ok": result.check_ok},
        "errors": [_error_json(e) for e in result.errors],
        "streams": [_stream_json(s) for s in result.streams],
    }
    return MASKER.mask(dumps_exact(doc).decode("utf-8")).encode("utf-8")


def _error_json(error: SyncError) -> dict[str, Any]:
    out: dict[str, Any] = {"origin": error.origin, "message": error.message}
    if error.failure_type:
        out["failure_type"] = error.failure_type
    if error.stream:
        out["stream"] = error.stream
    return out


def _stream_json(stream: StreamPreview) -> dict[str, Any]:
    c = stream.configured
    return {
        "name": c.stream.name,
        "namespace": c.stream.namespace,
        "sync_mode": c.sync_mode.value,
        "cursor_field": list(c.cursor_field),
        "primary_key": [list(k) for k in c.primary_key],
        "types": field_types(stream),
        "json_schema": dict(c.stream.json_schema),
        "records": [{"data": dict(r.data), "changes": [dict(x) for x in r.changes]} for r in stream.records],
        "state": stream.state,
        "status": stream.status,
        "more": stream.more,
        "stopped": stream.stopped,
        "seconds": round(stream.seconds, 3),
        "warnings": stream.warnings,
        "errors": [_error_json(e) for e in stream.errors],
    }


__all__ = ["declared_type", "records_table", "show", "to_json"]
