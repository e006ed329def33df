"""Drive destination-sqlite the way a platform does, and read back exactly what it stored.

``dest`` (a :class:`Harness`) writes a config and a configured catalog, feeds a list of Airbyte
message lines to ``destination_sqlite.SqliteDestination`` through ``dbkit.entrypoint.launch``
(``write``), and parses what it printed. The builders (``stream``, ``record``, ``state``,
``status`` ...) are exposed as attributes of the ``msgs`` fixture so test modules need no import
from this directory (tests run with ``--import-mode=importlib``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from dbkit.db.types import AirbyteType, json_schema_for
from dbkit.entrypoint import launch
from destination_sqlite import SqliteDestination

Line = bytes | Mapping[str, Any]
META_NAMES = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id")


# ----------------------------------------------------------------------------- message builders


def prop(t: AirbyteType | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(t, Mapping):
        return dict(t)
    return json_schema_for(AirbyteType(t))


def stream(
    name: str,
    properties: Mapping[str, AirbyteType | str | Mapping[str, Any]],
    mode: str = "append",
    *,
    pk: Sequence[str | Sequence[str]] = (),
    cursor: str | None = None,
    namespace: str | None = None,
    generation_id: int | None = None,
    minimum_generation_id: int | None = None,
    sync_id: int | None = None,
    sync_mode: str | None = None,
) -> dict[str, Any]:
    """One configured stream (JSON)."""
    body: dict[str, Any] = {
        "name": name,
        "json_schema": {"type": "object", "properties": {k: prop(v) for k, v in properties.items()}},
        "supported_sync_modes": ["full_refresh", "incremental"],
    }
    if namespace is not None:
        body["namespace"] = namespace
    out: dict[str, Any] = {
        "stream": body,
        "sync_mode": sync_mode or ("full_refresh" if mode == "overwrite" else "incremental"),
        "destination_sync_mode": mode,
    }
    if pk:
        out["primary_key"] = [[k] if isinstance(k, str) else list(k) for k in pk]
    if cursor is not None:
        out["cursor_field"] = [cursor]
    ids = {"generation_id": generation_id, "minimum_generation_id": minimum_generation_id, "sync_id": sync_id}
    out.update({key: value for key, value in ids.items() if value is not None})
    return out


def catalog(*streams: Mapping[str, Any]) -> dict[str, Any]:
    return {"streams": list(streams)}


def record(
    name: str,
    data: Mapping[str, Any],
    emitted_at: int = 1_700_000_000_000,
    *,
    namespace: str | None = None,
    changes: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"stream": name, "data": dict(data), "emitted_at": emitted_at}
    if namespace is not None:
        body["namespace"] = namespace
    if changes is not None:
        body["meta"] = {"changes": list(changes)}
    return {"type": "RECORD", "record": body}


def descriptor(name: str, namespace: str | None = None) -> dict[str, Any]:
    return {"name": name} if namespace is None else {"name": name, "namespace": namespace}


def state(name: str, value: Any, *, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    """A STREAM state; ``extra`` keys (``id``, ``sourceStats``...) go into the state object."""
    body: dict[str, Any] = {
        "type": "STREAM",
        "stream": {"stream_descriptor": descriptor(name, namespace), "stream_state": value},
    }
    body.update(extra)
    return {"type": "STATE", "state": body}


def global_state(shared: Any, streams: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "GLOBAL",
        "global": {
            "shared_state": shared,
            "stream_states": [
                {"stream_descriptor": descriptor(n), "stream_state": s} for n, s in streams.items()
            ],
        },
    }
    body.update(extra)
    return {"type": "STATE", "state": body}


def status(name: str, value: str = "COMPLETE", namespace: str | None = None) -> dict[str, Any]:
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": 1.0,
            "stream_status": {"stream_descriptor": descriptor(name, namespace), "status": value},
        },
    }


def encode(lines: Iterable[Line]) -> bytes:
    out = []
    for line in lines:
        if isinstance(line, bytes):
            out.append(line if line.endswith(b"\n") else line + b"\n")
        else:
            out.append(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(out)


# ----------------------------------------------------------------------------- running and reading


@dataclass
class Result:
    code: int
    messages: list[dict[str, Any]]
    raw: bytes = b""

    @property
    def states(self) -> list[dict[str, Any]]:
        """The echoed state objects (``message["state"]``), in output order."""
        return [m["state"] for m in self.messages if m["type"] == "STATE"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [
            m["trace"]["error"]
            for m in self.messages
            if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
        ]

    @property
    def error(self) -> dict[str, Any]:
        assert len(self.errors) == 1, self.messages
        return self.errors[0]

    def state_values(self) -> list[Any]:
        out = []
        for s in self.states:
            if s["type"] == "STREAM":
                out.append(s["stream"]["stream_state"])
            else:
                out.append(s["global"]["shared_state"])
        return out


def parse_output(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


@dataclass
class Harness:
    tmp_path: Path
    db_path: Path = field(init=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db_path = self.tmp_path / "dest.sqlite"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"path": str(self.db_path), **self.settings, **overrides}

    def files(self, cat: Mapping[str, Any], **config: Any) -> tuple[Path, Path]:
        name = uuid.uuid4().hex[:8]
        cfg_path = self.tmp_path / f"config-{name}.json"
        cat_path = self.tmp_path / f"catalog-{name}.json"
        cfg_path.write_text(json.dumps(self.config(**config)))
        cat_path.write_text(json.dumps(cat))
        return cfg_path, cat_path

    def write(self, cat: Mapping[str, Any], lines: Iterable[Line], **config: Any) -> Result:
        """One ``write`` run in-process; returns its exit code and parsed output."""
        cfg_path, cat_path = self.files(cat, **config)
        out = BytesIO()
        code = launch(
            SqliteDestination(),
            ["write", "--config", str(cfg_path), "--catalog", str(cat_path)],
            stdin=BytesIO(encode(lines)),
            stdout=out,
        )
        return Result(code, parse_output(out.getvalue()), out.getvalue())

    def ok(self, cat: Mapping[str, Any], lines: Iterable[Line], **config: Any) -> Result:
        result = self.write(cat, lines, **config)
        assert result.code == 0, result.messages
        assert not result.errors
        return result

    # ---- reading the database
    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path)

    def tables(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
            ).fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[str]:
        with self.connect() as conn:
            return [r[1] for r in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (table,)).fetchall()]

    def column_types(self, table: str) -> dict[str, str]:
        with self.connect() as conn:
            return {
                r[1]: r[2] for r in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (table,)).fetchall()
            }

    def raw_rows(self, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        with self.connect() as conn:
            conn.row_factory = sqlite3.Row
            sql = f'SELECT * FROM "{table}"'
            if order_by:
                sql += f" ORDER BY {order_by}"
            return [dict(r) for r in conn.execute(sql).fetchall()]

    def rows(self, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        """Data columns only, with the metadata columns checked for consistency."""
        out = []
        for row in self.raw_rows(table, order_by):
            check_meta_columns(row)
            out.append({k: v for k, v in row.items() if k not in META_NAMES})
        return out

    def meta(self, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(r["_airbyte_meta"]) for r in self.raw_rows(table, order_by)]

    def generations(self, table: str, order_by: str | None = None) -> list[int | None]:
        return [r["_airbyte_generation_id"] for r in self.raw_rows(table, order_by)]


def check_meta_columns(row: Mapping[str, Any]) -> None:
    raw_id = row["_airbyte_raw_id"]
    assert str(uuid.UUID(raw_id)) == raw_id
    assert isinstance(row["_airbyte_extracted_at"], str)
    meta = json.loads(row["_airbyte_meta"])
    assert set(meta) == {"changes", "sync_id"}


def extracted_at_text(emitted_at_ms: int) -> str:
    """How ``_airbyte_extracted_at`` is stored for an ``emitted_at`` (ms since the epoch)."""
    import datetime as dt

    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=emitted_at_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def dest(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def msgs() -> SimpleNamespace:
    return SimpleNamespace(
        stream=stream,
        catalog=catalog,
        record=record,
        state=state,
        global_state=global_state,
        status=status,
        encode=encode,
        parse_output=parse_output,
        extracted_at_text=extracted_at_text,
        check_meta_columns=check_meta_columns,
        T=AirbyteType,
    )


class Piped:
    """``write`` in a thread with real pipes for stdin and stdout, so a test can interleave
    sending lines, reading what the destination printed, and looking at the database."""

    def __init__(self, harness: Harness, cat: Mapping[str, Any], **config: Any) -> None:
        import os
        import threading

        cfg_path, cat_path = harness.files(cat, **config)
        in_r, self._in_w = os.pipe()
        self._out_r, out_w = os.pipe()
        self._stdin = os.fdopen(in_r, "rb")
        self._stdout = os.fdopen(out_w, "wb")
        self._pending = b""
        self.messages: list[dict[str, Any]] = []
        self.code: int | None = None

        def run() -> None:
            try:
                self.code = launch(
                    SqliteDestination(),
                    ["write", "--config", str(cfg_path), "--catalog", str(cat_path)],
                    stdin=self._stdin,
                    stdout=self._stdout,
                )
            finally:
                self._stdout.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def send(self, *lines: Line) -> None:
        import os

        data = encode(lines)
        while data:
            data = data[os.write(self._in_w, data) :]

    def next_message(self, timeout: float = 5.0, kind: str | None = "STATE") -> dict[str, Any] | None:
        """The next message printed (of ``kind``, skipping others), or None after ``timeout`` s."""
        import os
        import select
        import time

        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                if line.strip():
                    message = json.loads(line)
                    self.messages.append(message)
                    if kind is None or message["type"] == kind:
                        return message  # type: ignore[no-any-return]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._out_r], [], [], left)
            if ready:
                chunk = os.read(self._out_r, 65536)
                if not chunk:
                    return None
                self._pending += chunk

    def close(self, timeout: float = 10.0) -> int:
        """End the input; wait for the run to finish; returns its exit code."""
        import os

        os.close(self._in_w)
        while self.next_message(timeout=timeout, kind="__none__") is not None:
            pass
        self._thread.join(timeout)
        assert not self._thread.is_alive()
        os.close(self._out_r)
        self._stdin.close()
        assert self.code is not None
        return self.code


@pytest.fixture
def piped(dest: Harness) -> Any:
    """``piped(catalog, **config) -> Piped``; every run is ended at teardown."""
    runs: list[Piped] = []

    def start(cat: Mapping[str, Any], **config: Any) -> Piped:
        run = Piped(dest, cat, **config)
        runs.append(run)
        return run

    yield start
    import contextlib

    for run in runs:
        with contextlib.suppress(OSError):
            run.close()
