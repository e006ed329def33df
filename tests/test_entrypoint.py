"""The entrypoint, end to end: the real console scripts on SQLite, their failures, and secret masking.

Every stdout line of every run must validate against the official ``AirbyteMessage`` model and
pass :class:`StreamValidator`; a stack trace may only travel inside a TRACE message.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from airbyte_protocol.models import AirbyteMessage
from jsonschema import Draft7Validator
from pydantic import SecretStr, model_validator

from dbkit.config import MASK, secret_field
from dbkit.entrypoint import launch
from dbkit.protocol import ConfiguredCatalog, loads_exact, parse_configured_catalog, validate_lines
from dbkit.protocol.messages import dumps_exact
from destination_sqlite import SqliteDestination
from source_sqlite import SqliteSource, SqliteSourceConfig, SqliteSourceDialect

BIN = Path(sys.executable).parent
SOURCE = BIN / "source-sqlite"
DESTINATION = BIN / "destination-sqlite"


# ------------------------------------------------------------------------------ running


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [loads_exact(line) for line in self.stdout.splitlines()]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.of("RECORD")]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of("STATE")]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of("TRACE") if m["trace"]["type"] == "ERROR"]

    def statuses(self, stream: str) -> list[str]:
        return [
            m["trace"]["stream_status"]["status"]
            for m in self.of("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS"
            and m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]


def run(script: Path, *args: str | Path, stdin: bytes | None = None) -> Run:
    assert script.exists(), f"console script {script} is not installed"
    done = subprocess.run(
        [str(script), *map(str, args)], input=stdin, capture_output=True, timeout=60, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def assert_protocol(result: Run, catalog: ConfiguredCatalog | None = None) -> None:
    """Only valid protocol lines on stdout, no traceback outside a TRACE, nothing on stderr."""
    lines = result.stdout.splitlines()
    assert result.stdout == b"" or result.stdout.endswith(b"\n")
    for raw in lines:
        message = loads_exact(raw)
        AirbyteMessage.model_validate(message)
        outside = copy.deepcopy(message)
        if outside["type"] == "TRACE" and outside["trace"]["type"] == "ERROR":
            outside["trace"]["error"].pop("stack_trace", None)
        assert "Traceback (most recent call last)" not in json.dumps(outside, default=str), raw
    problems = validate_lines(lines, catalog)
    assert problems == [], [str(p) for p in problems]
    assert result.stderr == ""


def assert_failed(result: Run, failure_type: str, *words: str) -> dict[str, Any]:
    """Exit 1 and exactly one TRACE error, of ``failure_type``, whose message says every one of ``words``."""
    assert result.code == 1, result
    errors = result.errors
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["failure_type"] == failure_type, error
    for word in words:
        assert word in error["message"], (word, error["message"])
    return error


def write_json(path: Path, document: Any) -> Path:
    path.write_bytes(dumps_exact(document))
    return path


# ------------------------------------------------------------------------------ the database

USERS = [
    (1, "ann", "2024-01-01 10:00:00", 1.5, b"\x00\xff"),
    (2, "bob", "2024-01-02 10:00:00", None, None),
    (3, "cy", "2024-01-02 10:00:00", "12345678901234567890", b""),  # a tie on the cursor
]
EVENTS = [(1, "login", "2024-01-01T00:00:00+02:00"), (2, "logout", "2024-01-01T01:00:00Z")]
NOTES = [("first",), ("second",), ("first",)]


def make_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, updated_at TIMESTAMP, score NUMERIC,
                                photo BLOB);
            CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TIMESTAMPTZ);
            CREATE TABLE notes (body TEXT);
            """
        )
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", USERS)
        conn.executemany("INSERT INTO events VALUES (?, ?, ?)", EVENTS)
        conn.executemany("INSERT INTO notes VALUES (?)", NOTES)
    conn.close()
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A source database, its config and its discovered catalog (read-only for the tests)."""
    root = tmp_path_factory.mktemp("entrypoint")
    db = make_database(root / "source.db")
    config = write_json(root / "source.json", {"path": str(db)})
    discovered = run(SOURCE, "discover", "--config", config)
    assert discovered.code == 0, discovered
    assert_protocol(discovered)
    (catalog,) = discovered.of("CATALOG")
    return {"db": db, "config": config, "streams": catalog["catalog"]["streams"]}


def configured(
    streams: list[dict[str, Any]], modes: dict[str, tuple[str, str]], **per_stream: dict[str, Any]
) -> dict[str, Any]:
    """A configured catalog of the named streams: name -> (sync_mode, destination_sync_mode)."""
    by_name = {s["name"]: s for s in streams}
    items = []
    for name, (sync_mode, destination_mode) in modes.items():
        item = {"stream": by_name[name], "sync_mode": sync_mode, "destination_sync_mode": destination_mode}
        item.update(per_stream.get(name, {}))
        items.append(item)
    return {"streams": items}


ALL_FULL = {
    "users": ("full_refresh", "append"),
    "events": ("full_refresh", "append"),
    "notes": ("full_refresh", "append"),
}


# ------------------------------------------------------------------------------ spec / check / discover


@pytest.mark.parametrize("script", [SOURCE, DESTINATION], ids=["source", "destination"])
def test_spec(script: Path) -> None:
    result = run(script, "spec")
    assert result.code == 0
    assert_protocol(result)
    (spec,) = result.of("SPEC")
    assert len(result.messages) == 1
    schema = spec["spec"]["connectionSpecification"]
    Draft7Validator.check_schema(schema)
    assert schema["required"] == ["path"]
    assert Draft7Validator(schema).is_valid({"path": "x.db"})
    assert not Draft7Validator(schema).is_valid({"path": "x.db", "nope": 1})


def test_check_source_and_destination(workspace: dict[str, Any], tmp_path: Path) -> None:
    source = run(SOURCE, "check", "--config", workspace["config"])
    destination = run(
        DESTINATION, "check", "--config", write_json(tmp_path / "d.json", {"path": str(tmp_path / "d.db")})
    )
    for result in (source, destination):
        assert result.code == 0
        assert_protocol(result)
        assert [m["connectionStatus"] for m in result.of("CONNECTION_STATUS")] == [{"status": "SUCCEEDED"}]


def test_discover(workspace: dict[str, Any]) -> None:
    streams = {s["name"]: s for s in workspace["streams"]}
    assert set(streams) == {"users", "events", "notes"}
    users = streams["users"]
    assert users["source_defined_primary_key"] == [["id"]]
    assert users["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert set(users["json_schema"]["properties"]) == {"id", "name", "updated_at", "score", "photo"}
    assert users["json_schema"]["properties"]["photo"]["contentEncoding"] == "base64"
    assert "source_defined_primary_key" not in streams["notes"]


# ------------------------------------------------------------------------------ read


def test_read_full_refresh(workspace: dict[str, Any], tmp_path: Path) -> None:
    document = configured(workspace["streams"], ALL_FULL)
    catalog = write_json(tmp_path / "catalog.json", document)
    result = run(SOURCE, "read", "--config", workspace["config"], "--catalog", catalog)
    assert result.code == 0, result.errors
    assert_protocol(result, parse_configured_catalog(document))
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for record in result.records:
        by_stream.setdefault(record["stream"], []).append(record["data"])
    assert by_stream["users"][0] == {
        "id": 1,
        "name": "ann",
        "updated_at": "2024-01-01T10:00:00",
        "score": 1.5,
        "photo": "AP8=",
    }
    assert [u["id"] for u in by_stream["users"]] == [1, 2, 3]
    assert len(by_stream["events"]) == 2
    assert sorted(n["body"] for n in by_stream["notes"]) == ["first", "first", "second"]
    for stream in ("users", "events", "notes"):
        assert result.statuses(stream) == ["STARTED", "COMPLETE"]
    assert all(isinstance(s["sourceStats"]["recordCount"], float) for s in result.states)
    assert sum(s["sourceStats"]["recordCount"] for s in result.states) == 8


def test_read_full_refresh_resumes_from_a_checkpoint(workspace: dict[str, Any], tmp_path: Path) -> None:
    config = write_json(tmp_path / "c.json", {"path": str(workspace["db"]), "checkpoint_records": 1})
    document = configured(workspace["streams"], {"users": ("full_refresh", "append")})
    catalog = write_json(tmp_path / "catalog.json", document)
    first = run(SOURCE, "read", "--config", config, "--catalog", catalog)
    assert first.code == 0
    assert_protocol(first, parse_configured_catalog(document))
    checkpoint = first.states[0]  # taken after the first record
    assert checkpoint["stream"]["stream_state"].get("complete") is not True
    state = write_json(tmp_path / "state.json", [checkpoint])
    resumed = run(SOURCE, "read", "--config", config, "--catalog", catalog, "--state", state)
    assert resumed.code == 0
    assert_protocol(resumed, parse_configured_catalog(document))
    assert [r["data"]["id"] for r in resumed.records] == [2, 3]
    done = write_json(tmp_path / "done.json", [first.states[-1]])
    again = run(SOURCE, "read", "--config", config, "--catalog", catalog, "--state", done)
    assert [r["data"]["id"] for r in again.records] == [1, 2, 3]  # a finished refresh starts over


def test_read_incremental_with_and_without_state(workspace: dict[str, Any], tmp_path: Path) -> None:
    db = shutil.copy(workspace["db"], tmp_path / "source.db")
    config = write_json(tmp_path / "c.json", {"path": str(db)})
    document = configured(
        workspace["streams"],
        {"users": ("incremental", "append_dedup"), "events": ("full_refresh", "append")},
        users={"cursor_field": ["updated_at"], "primary_key": [["id"]]},
    )
    catalog = write_json(tmp_path / "catalog.json", document)
    parsed = parse_configured_catalog(document)

    first = run(SOURCE, "read", "--config", config, "--catalog", catalog)
    assert first.code == 0
    assert_protocol(first, parsed)
    assert [r["data"]["id"] for r in first.records if r["stream"] == "users"] == [1, 2, 3]

    with sqlite3.connect(db) as conn:
        # 4 sits at the saved cursor value (a tie with 2 and 3), 5 after it
        conn.execute("INSERT INTO users VALUES (4, 'dee', '2024-01-02 10:00:00', 4, NULL)")
        conn.execute("INSERT INTO users VALUES (5, 'eve', '2024-01-03 10:00:00', 5, NULL)")
    conn.close()
    state = write_json(tmp_path / "state.json", first.states)
    second = run(SOURCE, "read", "--config", config, "--catalog", catalog, "--state", state)
    assert second.code == 0
    assert_protocol(second, parsed)
    assert [r["data"]["id"] for r in second.records if r["stream"] == "users"] == [4, 5]
    assert len([r for r in second.records if r["stream"] == "events"]) == 2  # full refresh: everything

    third = run(
        SOURCE,
        "read",
        "--config",
        config,
        "--catalog",
        catalog,
        "--state",
        write_json(tmp_path / "s2.json", second.states),
    )
    assert third.code == 0
    assert [r for r in third.records if r["stream"] == "users"] == []


# ------------------------------------------------------------------------------ write


def test_write_append_overwrite_dedup(workspace: dict[str, Any], tmp_path: Path) -> None:
    modes = {
        "users": ("incremental", "append_dedup"),
        "events": ("full_refresh", "append"),
        "notes": ("full_refresh", "overwrite"),
    }
    document = configured(
        workspace["streams"], modes, users={"cursor_field": ["updated_at"], "primary_key": [["id"]]}
    )
    catalog = write_json(tmp_path / "catalog.json", document)
    parsed = parse_configured_catalog(document)
    read = run(SOURCE, "read", "--config", workspace["config"], "--catalog", catalog)
    assert read.code == 0
    assert_protocol(read, parsed)
    for stream in modes:
        assert read.statuses(stream)[-1] == "COMPLETE"  # the input carries COMPLETE for every stream

    dest_db = tmp_path / "dest.db"
    dest_config = write_json(tmp_path / "dest.json", {"path": str(dest_db)})
    for attempt in (1, 2):
        written = run(DESTINATION, "write", "--config", dest_config, "--catalog", catalog, stdin=read.stdout)
        assert written.code == 0, (attempt, written.errors)
        assert_protocol(written, parsed)
        echoed = written.states
        assert len(echoed) == len(read.states)
        for sent, echo in zip(read.states, echoed, strict=True):
            assert {k: v for k, v in echo.items() if k != "destinationStats"} == sent
            assert isinstance(echo["destinationStats"]["recordCount"], float)
            assert echo["destinationStats"]["recordCount"] == sent["sourceStats"]["recordCount"]

        with sqlite3.connect(dest_db) as conn:
            users = conn.execute("SELECT id, name FROM users ORDER BY id").fetchall()
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            notes = conn.execute("SELECT count(*) FROM notes").fetchone()[0]
            meta_columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        conn.close()
        assert users == [(1, "ann"), (2, "bob"), (3, "cy")]  # deduplicated on id
        assert events == 2 * attempt  # appended
        assert notes == 3  # overwritten
        assert {
            "_airbyte_raw_id",
            "_airbyte_extracted_at",
            "_airbyte_meta",
            "_airbyte_generation_id",
        } <= meta_columns


# ------------------------------------------------------------------------------ failures
#
# Each case runs in-process through ``launch`` (fast, every variant), and the cases marked
# ``console`` also run through the real console scripts, concurrently.


@dataclass(frozen=True)
class Case:
    id: str
    script: Path
    build: Callable[[dict[str, Any], Path], list[str | Path]]  # writes its input files, returns argv
    check: Callable[[Run, list[dict[str, Any]]], None]  # (result, discovered streams)
    console: bool = False
    stdin: bytes | None = None


def _expect_trace(failure_type: str, *words: str) -> Callable[[Run, Any], None]:
    """One TRACE error and nothing else: the inputs are refused before any I/O."""

    def check(result: Run, streams: Any) -> None:
        assert_protocol(result)
        error = assert_failed(result, failure_type, *words)
        assert "stack_trace" not in error  # the user's mistake needs no stack trace
        assert len(result.messages) == 1

    return check


def _expect_failed_status(*words: str) -> Callable[[Run, Any], None]:
    def check(result: Run, streams: Any) -> None:
        assert result.code == 0
        assert_protocol(result)
        (status,) = [m["connectionStatus"] for m in result.of("CONNECTION_STATUS")]
        assert status["status"] == "FAILED"
        for word in words:
            assert word in status["message"], (word, status["message"])
        assert result.errors == []

    return check


def _config(text: str | None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "config.json"
        if text is not None:
            path.write_text(text.replace("{tmp}", str(tmp)))
        return path

    return make


BAD_CONFIGS: list[tuple[str, str | None, list[str]]] = [
    # (id, config file text or None for a missing file, words the message must say)
    ("missing-file", None, ["config file", "config.json does not exist"]),
    ("not-json", '{"path": "x.db",', ["config file", "is not valid JSON"]),
    ("not-object", '["x.db"]', ["config: expected a JSON object"]),
    ("missing-field", "{}", ["config is invalid: path: required field is missing"]),
    ("wrong-type", '{"path": 5}', ["config is invalid: path: Input should be a valid string"]),
    ("unknown-field", '{"path": "x.db", "paht": "y"}', ["config is invalid: paht: unknown field"]),
    ("null-field", '{"path": null}', ["config is invalid: path: Input should be a valid string"]),
    (
        "out-of-range",
        '{"path": "x.db", "max_concurrent_streams": 0}',
        ["max_concurrent_streams: Input should be greater than or equal to 1"],
    ),
]


def _catalog_file(tmp: Path, document: Any) -> Path:
    path = tmp / "catalog.json"
    if isinstance(document, str):
        path.write_text(document)
    elif document is not None:
        write_json(path, document)
    return path


def _read_argv(
    catalog: Callable[[list[dict[str, Any]]], Any], state: str | None = None
) -> Callable[[dict[str, Any], Path], list[str | Path]]:
    def build(ws: dict[str, Any], tmp: Path) -> list[str | Path]:
        argv: list[str | Path] = [
            "read",
            "--config",
            ws["config"],
            "--catalog",
            _catalog_file(tmp, catalog(ws["streams"])),
        ]
        if state is not None:
            path = tmp / "state.json"
            path.write_text(state)
            argv += ["--state", path]
        return argv

    return build


def _malformed_catalog(streams: list[dict[str, Any]]) -> dict[str, Any]:
    document = configured(streams, ALL_FULL)
    document["streams"][1]["sync_mode"] = "sometimes"
    return document


def _all_full(streams: list[dict[str, Any]]) -> dict[str, Any]:
    return configured(streams, ALL_FULL)


def _users_only(streams: list[dict[str, Any]]) -> dict[str, Any]:
    return configured(streams, {"users": ("full_refresh", "append")})


def _with_ghost(streams: list[dict[str, Any]]) -> dict[str, Any]:
    document = configured(
        streams, {"users": ("full_refresh", "append"), "events": ("full_refresh", "append")}
    )
    ghost = copy.deepcopy(document["streams"][0])
    ghost["stream"]["name"] = "ghost"
    document["streams"].insert(1, ghost)
    return document


def _notes_incremental(streams: list[dict[str, Any]]) -> dict[str, Any]:
    return configured(streams, {"notes": ("incremental", "append"), "users": ("full_refresh", "append")})


def _check_ghost(result: Run, streams: list[dict[str, Any]]) -> None:
    assert_protocol(result, parse_configured_catalog(_with_ghost(streams)))
    error = assert_failed(
        result, "config_error", "stream ghost", "table not found", "refresh the source schema"
    )
    assert error["stream_descriptor"] == {"name": "ghost"}
    assert "stack_trace" in error  # a failure inside the read carries its trace, inside the TRACE
    assert result.statuses("ghost") == ["STARTED", "INCOMPLETE"]
    assert result.statuses("users") == ["STARTED", "COMPLETE"]
    assert result.statuses("events") == ["STARTED", "COMPLETE"]
    assert {r["stream"] for r in result.records} == {"users", "events"}
    assert len(result.records) == 5


def _check_no_cursor(result: Run, streams: list[dict[str, Any]]) -> None:
    assert_protocol(result, parse_configured_catalog(_notes_incremental(streams)))
    error = assert_failed(
        result,
        "config_error",
        "stream notes is configured as incremental but has no cursor field",
        "choose one of: body",
    )
    assert error["stream_descriptor"] == {"name": "notes"}
    assert result.statuses("notes") == ["STARTED", "INCOMPLETE"]
    assert result.statuses("users") == ["STARTED", "COMPLETE"]


def _check_ignored_state(result: Run, streams: list[dict[str, Any]]) -> None:
    assert result.code == 0
    assert_protocol(result, parse_configured_catalog(_users_only(streams)))
    assert [r["data"]["id"] for r in result.records] == [1, 2, 3]
    logs = [m["log"]["message"] for m in result.of("LOG") if m["log"]["level"] == "WARN"]
    assert logs == ["the state names stream(s) not in the configured catalog, ignored: gone, main.users"]


IGNORED_STATE = json.dumps(
    [
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "gone"}, "stream_state": {"x": 1}}},
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "users", "namespace": "main"}, "stream_state": {}},
        },
    ]
)


def _missing_db_config(ws: dict[str, Any], tmp: Path) -> list[str | Path]:
    return ["check", "--config", write_json(tmp / "c.json", {"path": str(tmp / "nowhere" / "missing.db")})]


def _write_malformed(ws: dict[str, Any], tmp: Path) -> list[str | Path]:
    dest = write_json(tmp / "dest.json", {"path": str(tmp / "dest.db")})
    return ["write", "--config", dest, "--catalog", _catalog_file(tmp, _malformed_catalog(ws["streams"]))]


def _with_config(command: str, text: str | None) -> Callable[[dict[str, Any], Path], list[str | Path]]:
    """argv of ``command`` with the given config file text (and a valid catalog where one is needed)."""

    def build(ws: dict[str, Any], tmp: Path) -> list[str | Path]:
        argv: list[str | Path] = [command, "--config", _config(text)(tmp)]
        if command in ("read", "write"):
            argv += ["--catalog", _catalog_file(tmp, _all_full(ws["streams"]))]
        return argv

    return build


CASES: list[Case] = [
    *[
        Case(
            f"read-config-{name}",
            SOURCE,
            _with_config("read", text),
            _expect_trace("config_error", *words),
            console=name in ("missing-file", "not-json", "missing-field", "wrong-type", "unknown-field"),
        )
        for name, text, words in BAD_CONFIGS
    ],
    *[
        Case(
            f"discover-config-{name}",
            SOURCE,
            _with_config("discover", text),
            _expect_trace("config_error", *words),
        )
        for name, text, words in BAD_CONFIGS
    ],
    *[
        Case(
            f"check-config-{name}",
            SOURCE,
            _with_config("check", text),
            _expect_failed_status(*words),
            console=name == "unknown-field",
        )
        for name, text, words in BAD_CONFIGS
    ],
    *[
        Case(
            f"destination-{command}-config-{name}",
            DESTINATION,
            _with_config(command, text),
            _expect_trace("config_error", *words) if command == "write" else _expect_failed_status(*words),
            stdin=b"",
        )
        for name, text, words in BAD_CONFIGS
        for command in ("check", "write")
        if name != "out-of-range"  # a source setting
    ],
    Case(
        "catalog-missing",
        SOURCE,
        _read_argv(lambda s: None),
        _expect_trace("config_error", "catalog file", "does not exist"),
    ),
    Case(
        "catalog-not-json",
        SOURCE,
        _read_argv(lambda s: "{not json"),
        _expect_trace("config_error", "catalog file", "is not valid JSON"),
    ),
    Case(
        "catalog-streams-object",
        SOURCE,
        _read_argv(lambda s: {"streams": {}}),
        _expect_trace("config_error", "catalog: streams: expected an array"),
    ),
    Case(
        "catalog-sync-mode",
        SOURCE,
        _read_argv(_malformed_catalog),
        _expect_trace(
            "config_error",
            "catalog: streams[1].sync_mode: 'sometimes' is not one of full_refresh, incremental",
        ),
        console=True,
    ),
    Case(
        "state-not-json",
        SOURCE,
        _read_argv(_all_full, "[{"),
        _expect_trace("config_error", "state file", "is not valid JSON"),
    ),
    Case(
        "state-legacy",
        SOURCE,
        _read_argv(_all_full, json.dumps({"cursor": 5})),
        _expect_trace(
            "config_error", "legacy (untyped) state is not supported", "reset the connection state"
        ),
    ),
    Case(
        "state-no-name",
        SOURCE,
        _read_argv(
            _all_full,
            json.dumps(
                [{"type": "STREAM", "stream": {"stream_descriptor": {"name": ""}, "stream_state": {}}}]
            ),
        ),
        _expect_trace("config_error", "state: [0].stream.stream_descriptor.name must be a non-empty string"),
        console=True,
    ),
    Case(
        "state-mixed",
        SOURCE,
        _read_argv(
            _all_full,
            json.dumps(
                [
                    {"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}}},
                    {"type": "GLOBAL", "global": {}},
                ]
            ),
        ),
        _expect_trace("config_error", "[1]: STREAM and GLOBAL states cannot be mixed"),
    ),
    Case(
        "state-for-unknown-stream",
        SOURCE,
        _read_argv(_users_only, IGNORED_STATE),
        _check_ignored_state,
        console=True,
    ),
    Case("table-missing", SOURCE, _read_argv(_with_ghost), _check_ghost, console=True),
    Case(
        "incremental-without-cursor", SOURCE, _read_argv(_notes_incremental), _check_no_cursor, console=True
    ),
    Case(
        "check-missing-database",
        SOURCE,
        _missing_db_config,
        _expect_failed_status("SQLite database", "nowhere/missing.db"),
        console=True,
    ),
    Case(
        "write-malformed-catalog",
        DESTINATION,
        _write_malformed,
        _expect_trace("config_error", "catalog: streams[1].sync_mode"),
        console=True,
        stdin=b"",
    ),
]


def _connector(script: Path) -> Any:
    return SqliteSource() if script == SOURCE else SqliteDestination()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_failure_in_process(
    case: Case, workspace: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = case.build(workspace, tmp_path)
    out = io.BytesIO()
    stdin = io.BytesIO(case.stdin) if case.stdin is not None else None
    code = launch(_connector(case.script), [str(a) for a in argv], stdin=stdin, stdout=out)
    captured = capfd.readouterr()
    assert captured.out == ""
    case.check(Run(code, out.getvalue(), captured.err), workspace["streams"])


CONSOLE_CASES = [c for c in CASES if c.console]


def test_failures_through_the_console_scripts(workspace: dict[str, Any], tmp_path: Path) -> None:
    """The same failures, each in its own process (run side by side: they are independent)."""
    jobs = []
    for case in CONSOLE_CASES:
        directory = tmp_path / case.id
        directory.mkdir()
        jobs.append((case, case.build(workspace, directory)))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: run(job[0].script, *job[1], stdin=job[0].stdin), jobs))
    for (case, _), result in zip(jobs, results, strict=True):
        try:
            case.check(result, workspace["streams"])
        except AssertionError as exc:
            raise AssertionError(f"{case.id}: {exc}") from exc


# ------------------------------------------------------------------------------ secrets (in-process)


class SecretSourceConfig(SqliteSourceConfig):
    password: SecretStr = secret_field(title="Password")

    @model_validator(mode="after")
    def _refuse(self) -> SecretSourceConfig:
        if self.path.endswith("refused.db"):
            raise ValueError(f"the server refused password {self.password.get_secret_value()}")
        return self


def _planted_dsn(password: str) -> str:
    return f"postgresql://app:{urllib.parse.quote(password)}@db.internal:5432/app"  # "/" left as is


def _sqlalchemy_dsn(password: str) -> str:
    url = sa.URL.create("postgresql+psycopg", "app", password, "db.internal", 5432, "app")
    return url.render_as_string(hide_password=False)  # escapes only ":", "@" and "/"


class LeakyDialect(SqliteSourceDialect):
    """Puts the password everywhere a careless driver or connector could."""

    def _secret(self) -> str:
        return str(cast(SecretSourceConfig, self.config).password.get_secret_value())

    def list_tables(self, conn: Any) -> Any:
        pw = self._secret()
        logging.getLogger("leaky.driver").warning(
            "connecting to %s with password=%s (%r)", _planted_dsn(pw), pw, pw
        )
        logging.getLogger("leaky.pool").info("engine url %s", _sqlalchemy_dsn(pw))
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # every time, not once per location
            warnings.warn(
                f"legacy authentication for {urllib.parse.quote_plus(pw)}", UserWarning, stacklevel=1
            )
        return super().list_tables(conn)

    def check_readable(self, conn: Any) -> None:
        super().check_readable(conn)
        pw = self._secret()
        raise sqlite3.OperationalError(
            f'connection to server at "db.internal" failed: FATAL: password "{pw}" rejected '
            f"(dsn {_planted_dsn(pw)})"
        )

    def record_encoder(self, table: Any, t: Any, columns: Any) -> Any:
        pw = self._secret()
        if table.name == "events":  # an unexpected error quoting the secret
            raise ValueError(f"cannot decode with key {pw!r} / {urllib.parse.quote_plus(pw)}")
        if table.name == "notes":  # a driver error the dialect classifies (ConfigError)
            raise sqlite3.OperationalError(f"unable to open database file postgresql://app:{pw}@h/db")
        return super().record_encoder(table, t, columns)


class LeakySource(SqliteSource):
    name = "source-leaky"
    config_model = SecretSourceConfig
    dialect_class = LeakyDialect


def _forms(secret: str) -> set[str]:
    return {
        secret,
        urllib.parse.quote(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        secret.replace("@", "%40").replace(":", "%3A").replace("/", "%2F"),
    }


@pytest.fixture
def secret() -> str:
    return f"p@ss:w/rd 12 {uuid.uuid4().hex[:8]}"  # unique: the masker is process-wide


def launch_leaky(argv: Sequence[str | Path], capfd: pytest.CaptureFixture[str], secret: str) -> Run:
    out = io.BytesIO()
    code = launch(LeakySource(), [str(a) for a in argv], stdout=out)
    captured = capfd.readouterr()
    result = Run(code, out.getvalue(), captured.err)
    for text in (result.stdout.decode(), captured.out, captured.err):
        leaked = [form for form in _forms(secret) if form in text]
        assert leaked == [], (leaked, text)
    return result


def _leaky_workspace(tmp_path: Path, secret: str) -> tuple[Path, Path]:
    db = make_database(tmp_path / "leaky.db")
    config = write_json(tmp_path / "leaky.json", {"path": str(db), "password": secret})
    return db, config


def test_secret_never_printed_by_spec_check_discover(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], secret: str
) -> None:
    _, config = _leaky_workspace(tmp_path, secret)

    spec = launch_leaky(["spec"], capfd, secret)
    assert spec.code == 0
    assert_protocol(spec)
    props = spec.of("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
    assert props["password"]["airbyte_secret"] is True

    check = launch_leaky(["check", "--config", config], capfd, secret)
    assert_protocol(check)
    assert check.code == 1  # an unclassified driver error is a system error: FAILED status and a TRACE
    (status,) = [m["connectionStatus"] for m in check.of("CONNECTION_STATUS")]
    assert status["status"] == "FAILED"
    assert f'password "{MASK}" rejected' in status["message"]
    assert f"postgresql://app:{MASK}@db.internal" in status["message"]
    error = assert_failed(check, "system_error")
    assert MASK in error["stack_trace"]
    assert MASK in error["internal_message"]

    discover = launch_leaky(["discover", "--config", config], capfd, secret)
    assert discover.code == 0
    assert_protocol(discover)
    logs = [m["log"]["message"] for m in discover.of("LOG")]
    assert any(
        f"postgresql://app:{MASK}@db.internal:5432/app with password={MASK} ('{MASK}')" in m for m in logs
    ), logs
    assert any("legacy authentication for " + MASK in m for m in logs), logs  # a Python warning, as a LOG
    assert f"leaky.pool: engine url postgresql+psycopg://app:{MASK}@db.internal:5432/app" in logs


def test_secret_never_printed_by_read(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], secret: str, workspace: dict[str, Any]
) -> None:
    _, config = _leaky_workspace(tmp_path, secret)
    document = configured(workspace["streams"], ALL_FULL)
    catalog = write_json(tmp_path / "catalog.json", document)
    result = launch_leaky(["read", "--config", config, "--catalog", catalog], capfd, secret)
    assert_protocol(result, parse_configured_catalog(document))
    assert result.code == 1
    assert result.statuses("users") == ["STARTED", "COMPLETE"]
    assert result.statuses("events") == ["STARTED", "INCOMPLETE"]
    assert result.statuses("notes") == ["STARTED", "INCOMPLETE"]
    errors = {e["stream_descriptor"]["name"]: e for e in result.errors}
    assert errors["events"]["failure_type"] == "system_error"
    assert f"cannot decode with key '{MASK}' / {MASK}" in errors["events"]["message"]
    assert errors["notes"]["failure_type"] == "config_error"
    assert f"postgresql://app:{MASK}@h/db" in errors["notes"]["message"]
    assert MASK in errors["notes"]["internal_message"]
    assert len(result.records) == 3


INVALID_WITH_SECRET: list[tuple[str, dict[str, Any] | str, str]] = [
    (
        "validator-quotes-it",
        {"path": "{dir}/refused.db", "password": "{pw}"},
        "the server refused password " + MASK,
    ),
    ("wrong-type-elsewhere", {"path": 5, "password": "{pw}"}, "path: Input should be a valid string"),
    (
        "secret-in-unknown-field",
        {"path": "x.db", "password": "{pw}", "passwd": "{pw}"},
        "passwd: unknown field",
    ),
    ("secret-wrong-type", {"path": "x.db", "password": ["{pw}"]}, "password: Input should be a valid string"),
    ("not-json", '{"path": "x.db", "password": "{pw}"', "is not valid JSON"),
]


@pytest.mark.parametrize(
    ("document", "words"), [c[1:] for c in INVALID_WITH_SECRET], ids=[c[0] for c in INVALID_WITH_SECRET]
)
@pytest.mark.parametrize("command", ["check", "discover", "read"])
def test_secret_never_printed_for_invalid_config(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    secret: str,
    command: str,
    document: dict[str, Any] | str,
    words: str,
) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    text = text.replace("{pw}", json.dumps(secret)[1:-1]).replace("{dir}", str(tmp_path))
    config = tmp_path / "config.json"
    config.write_text(text)
    catalog = write_json(tmp_path / "catalog.json", {"streams": []})
    argv: list[str | Path] = [command, "--config", config]
    if command == "read":
        argv += ["--catalog", catalog]
    result = launch_leaky(argv, capfd, secret)
    assert_protocol(result)
    if command == "check":
        assert result.code == 0
        (status,) = [m["connectionStatus"] for m in result.of("CONNECTION_STATUS")]
        assert status["status"] == "FAILED"
        assert words in status["message"]
    else:
        assert_failed(result, "config_error", words)


def test_secret_never_printed_when_later_inputs_fail(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], secret: str, workspace: dict[str, Any]
) -> None:
    _, config = _leaky_workspace(tmp_path, secret)
    bad_catalog = write_json(tmp_path / "catalog.json", {"streams": [{"stream": {"name": secret}}]})
    result = launch_leaky(["read", "--config", config, "--catalog", bad_catalog], capfd, secret)
    assert_protocol(result)
    assert_failed(result, "config_error", "streams[0].stream.json_schema: is required")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cursor": secret}))
    good_catalog = write_json(
        tmp_path / "good.json", configured(workspace["streams"], {"users": ("full_refresh", "append")})
    )
    result = launch_leaky(
        ["read", "--config", config, "--catalog", good_catalog, "--state", state], capfd, secret
    )
    assert_protocol(result)
    assert_failed(result, "config_error", "legacy (untyped) state is not supported")


# ------------------------------------------------------------------------------ bugs in a connector


class BrokenSpecSource(SqliteSource):
    name = "source-broken-spec"

    def spec(self) -> dict[str, Any]:
        raise RuntimeError("spec generation blew up")


class CrashingConfig(SqliteSourceConfig):
    @model_validator(mode="after")
    def _crash(self) -> CrashingConfig:
        raise TypeError("a bug in a validator")  # not a ValueError: pydantic lets it through


class CrashingConfigSource(SqliteSource):
    name = "source-crashing-config"
    config_model = CrashingConfig


@pytest.mark.parametrize(
    ("connector", "command", "code", "status"),
    [
        pytest.param(BrokenSpecSource(), "spec", 1, None, id="spec"),
        pytest.param(CrashingConfigSource(), "discover", 1, None, id="config-discover"),
        pytest.param(CrashingConfigSource(), "check", 1, "FAILED", id="config-check"),
    ],
)
def test_a_bug_is_a_system_error_with_its_trace(
    connector: Any,
    command: str,
    code: int,
    status: str | None,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = write_json(tmp_path / "c.json", {"path": "x.db"})
    out = io.BytesIO()
    argv = [command] if command == "spec" else [command, "--config", str(config)]
    result = Run(launch(connector, argv, stdout=out), out.getvalue(), capfd.readouterr().err)
    assert result.code == code
    assert_protocol(result)
    error = assert_failed(result, "system_error", "unexpected error:")
    assert "Traceback (most recent call last)" in error["stack_trace"]
    statuses = [m["connectionStatus"]["status"] for m in result.of("CONNECTION_STATUS")]
    assert statuses == ([status] if status else [])
