"""Helpers for the source framework tests: a SQLite file, its catalog, and in-process reads.

``sqlite_db`` gives a :class:`SqliteDb` on a fresh file. ``SqliteDb.read`` runs the real
connector through ``dbkit.entrypoint.launch`` (``read --config --catalog --state``) and returns
a :class:`Read` with the parsed messages; every output line is checked against the official
Airbyte protocol models and dbkit's own stream validator (records conform to their schema).
``make_db`` builds one outside a test function's fixtures (for hypothesis tests).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from airbyte_protocol.models import AirbyteMessage

import source_sqlite
from dbkit.entrypoint import launch
from dbkit.protocol import loads_exact, parse_configured_catalog, validate_lines
from dbkit.protocol.messages import exact_default

Json = dict[str, Any]


def row_key(data: Mapping[str, Any]) -> str:
    """A record's data as canonical text (for multiset comparisons)."""
    return json.dumps(data, sort_keys=True)


def multiset(rows: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(row_key(r) for r in rows)


@dataclass
class Read:
    """The outcome of one ``read``: exit code and every message, parsed."""

    rc: int
    messages: list[Json]

    def of(self, kind: str) -> list[Json]:
        return [m for m in self.messages if m["type"] == kind]

    def record_messages(self, stream: str | None = None) -> list[Json]:
        return [m["record"] for m in self.of("RECORD") if stream is None or m["record"]["stream"] == stream]

    def records(self, stream: str | None = None) -> list[Json]:
        return [r["data"] for r in self.record_messages(stream)]

    def state_messages(self, stream: str | None = None) -> list[Json]:
        """The ``state`` payloads (AirbyteStateMessage), ready to be handed back as input state."""
        return [
            m["state"]
            for m in self.of("STATE")
            if stream is None or m["state"]["stream"]["stream_descriptor"]["name"] == stream
        ]

    def states(self, stream: str | None = None) -> list[Json]:
        """The per-stream state blobs."""
        return [s["stream"]["stream_state"] for s in self.state_messages(stream)]

    def timeline(self, stream: str) -> list[tuple[str, Json]]:
        """``("RECORD", data)`` and ``("STATE", state message)`` of one stream, in output order."""
        out: list[tuple[str, Json]] = []
        for m in self.messages:
            if m["type"] == "RECORD" and m["record"]["stream"] == stream:
                out.append(("RECORD", m["record"]["data"]))
            elif m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == stream:
                out.append(("STATE", m["state"]))
        return out

    def checkpoints(self, stream: str) -> Iterator[tuple[list[Json], Json]]:
        """For each STATE of ``stream``: (records emitted before it, the state message)."""
        before: list[Json] = []
        for kind, payload in self.timeline(stream):
            if kind == "RECORD":
                before.append(payload)
            else:
                yield list(before), payload

    def statuses(self, stream: str) -> list[str]:
        return [
            m["trace"]["stream_status"]["status"]
            for m in self.of("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS"
            and m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]

    def errors(self) -> list[Json]:
        return [m["trace"]["error"] for m in self.of("TRACE") if m["trace"]["type"] == "ERROR"]

    def estimates(self) -> list[Json]:
        return [m["trace"]["estimate"] for m in self.of("TRACE") if m["trace"]["type"] == "ESTIMATE"]

    def logs(self, level: str | None = None) -> list[str]:
        return [m["log"]["message"] for m in self.of("LOG") if level is None or m["log"]["level"] == level]


def parse_output(raw: bytes, catalog: Json | None = None) -> list[Json]:
    """Parse protocol lines, checking each against the protocol models and dbkit's validator."""
    lines = raw.splitlines()
    parsed_catalog = parse_configured_catalog(catalog) if catalog is not None else None
    problems = validate_lines(lines, parsed_catalog)
    assert not problems, [str(p) for p in problems[:5]]
    messages = []
    for line in lines:
        AirbyteMessage.model_validate(orjson.loads(line))
        messages.append(loads_exact(line))  # numbers as they were written: every digit
    return messages


class SqliteDb:
    """A SQLite file with the source's config, catalog and reads around it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "source.db"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = OFF")  # test data need not survive a power cut
        self._files = itertools.count()

    # ------------------------------------------------------------------ data
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def script(self, sql: str) -> None:
        self.conn.executescript(sql)

    def insert(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        marks = ", ".join("?" * len(rows[0]))
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params))

    def table(self, name: str) -> list[Json]:
        """Every row of a table or view as a dict (the values a record of it should carry)."""
        cursor = self.conn.execute(f'SELECT * FROM "{name}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    multiset = staticmethod(multiset)
    row_key = staticmethod(row_key)

    # ------------------------------------------------------------------ protocol
    def config(self, **settings: Any) -> Json:
        return {"path": str(self.path), **settings}

    def _write(self, what: str, document: Any) -> str:
        file = self.directory / f"{what}-{next(self._files)}.json"
        file.write_bytes(orjson.dumps(document, default=exact_default))
        return str(file)

    def run(self, *argv: str) -> tuple[int, bytes]:
        out = BytesIO()
        rc = launch(source_sqlite.SqliteSource(), list(argv), stdout=out)
        return rc, out.getvalue()

    def discover(self, **settings: Any) -> dict[str, Json]:
        rc, raw = self.run("discover", "--config", self._write("config", self.config(**settings)))
        messages = parse_output(raw)
        assert rc == 0, messages
        catalogs = [m["catalog"] for m in messages if m["type"] == "CATALOG"]
        assert len(catalogs) == 1, messages
        return {s["name"]: s for s in catalogs[0]["streams"]}

    def configure(
        self,
        name: str,
        mode: str = "full_refresh",
        cursor: str | None = None,
        columns: Sequence[str] | None = None,
        stream: Json | None = None,
    ) -> Json:
        """A configured stream for table ``name`` (discovered now unless ``stream`` is given)."""
        stream = dict(stream if stream is not None else self.discover()[name])
        if columns is not None:
            schema = dict(stream["json_schema"])
            schema["properties"] = {c: schema["properties"][c] for c in columns}
            stream["json_schema"] = schema
        configured: Json = {
            "stream": stream,
            "sync_mode": mode,
            "destination_sync_mode": "append",
        }
        if cursor is not None:
            configured["cursor_field"] = [cursor]
        return configured

    def read(
        self,
        streams: Sequence[Json] | Json,
        state: Sequence[Json] | None = None,
        **settings: Any,
    ) -> Read:
        catalog = {"streams": [streams] if isinstance(streams, Mapping) else list(streams)}
        argv = [
            "read",
            "--config",
            self._write("config", self.config(**settings)),
            "--catalog",
            self._write("catalog", catalog),
        ]
        if state is not None:
            argv += ["--state", self._write("state", list(state))]
        rc, raw = self.run(*argv)
        return Read(rc, parse_output(raw, catalog))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqliteDb]:
    db = SqliteDb(tmp_path)
    yield db
    db.conn.close()


@pytest.fixture(scope="session")
def make_db() -> Iterator[Callable[[], SqliteDb]]:
    """A factory of fresh databases, usable inside hypothesis tests (no function-scoped fixture)."""
    made: list[SqliteDb] = []
    with tempfile.TemporaryDirectory(prefix="dbkit-source-") as root:
        counter = itertools.count()

        def make() -> SqliteDb:
            directory = Path(root) / str(next(counter))
            directory.mkdir()
            db = SqliteDb(directory)
            made.append(db)
            if len(made) > 4:  # keep only a few connections open
                made.pop(0).conn.close()
            return db

        yield make
        for db in made:
            db.conn.close()
