"""``dbkit sync --json``: one JSON document on stdout, valid against the schema shipped in the
package, for a sync that succeeds, one that fails, one that partly fails and a usage error."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dbkit import cli
from dbkit.runner.registry import ConnectorInfo, registered
from dbkit.runner.result import SCHEMA_PATH
from source_sqlite import SqliteSource, SqliteSourceConfig

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def make_source(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, updated_at DATETIME NOT NULL);
            CREATE TABLE notes (body TEXT);
            """
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(i, f"item {i}", f"2024-01-01 00:00:{i:02d}") for i in range(30)],
        )
        conn.executemany("INSERT INTO notes VALUES (?)", [("a",), ("b",)])


def valid(text: str) -> dict[str, Any]:
    """The one JSON document of ``text`` (nothing before or after it), checked against the schema."""
    doc: dict[str, Any] = json.loads(text)
    VALIDATOR.validate(doc)
    for key in ("started_at", "ended_at"):
        assert dt.datetime.fromisoformat(doc[key]).tzinfo is not None
    return doc


def test_the_schema_is_a_valid_json_schema_shipped_in_the_package() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))
    assert SCHEMA_PATH.is_relative_to(Path(cli.__file__).parent)  # inside the dbkit package


def test_a_successful_sync_prints_only_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout holds the document and nothing else; the summary goes to stderr."""
    make_source(tmp_path / "source.db")
    args = ["sync", "--json", "--source", f"sqlite:///{tmp_path / 'source.db'}", "--destination"]
    args += [f"sqlite:///{tmp_path / 'wh.db'}", "--state-file", str(tmp_path / "state.json")]
    code = cli.main([*args, "--in-process", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = valid(out)
    assert (doc["status"], doc["ok"], doc["sync_id"], doc["errors"]) == ("succeeded", True, 1, [])
    assert doc["state_file"] == str(tmp_path / "state.json")
    assert doc["totals"] == {
        "streams": 2,
        "streams_finished": 2,
        "records_read": 32,
        "records_acknowledged": 32,
    }
    items = next(s for s in doc["streams"] if s["name"] == "items")
    assert (items["mode"], items["status"], items["finished"]) == ("incremental dedup", "COMPLETE", True)
    assert (items["records_read"], items["records_acknowledged"]) == (30, 30)
    assert "items" in err  # the summary still goes to stderr
    assert (doc["source_exit"], doc["destination_exit"]) == (0, 0)


def test_a_sync_that_cannot_start_prints_a_failed_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Pw-json-41-hidden"
    config = tmp_path / "dest.json"
    config.write_text(json.dumps({"path": str(tmp_path / "wh.db"), "password": secret}))
    args = ["sync", "--json", "--source", f"sqlite:///{tmp_path / 'missing.db'}", "--destination"]
    args += [
        "destination-sqlite",
        "--destination-config",
        str(config),
        "--state-file",
        str(tmp_path / "s.json"),
    ]
    code = cli.main([*args, "--in-process", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = valid(out)
    assert (doc["status"], doc["sync_id"], doc["streams"], doc["totals"]["streams"]) == (
        "failed",
        None,
        [],
        0,
    )
    assert "connection check failed: cannot open SQLite database" in doc["errors"][0]["message"]
    assert secret not in out + err


class DroppingConfig(SqliteSourceConfig):
    drop_before_read: str = "notes"


class DroppingSource(SqliteSource):
    """source-sqlite that drops a table after discover, just before it reads: that stream fails."""

    name = "source-sqlite-dropping-json"
    config_model = DroppingConfig

    def read(self, config: Any, catalog: Any, state: Any, writer: Any, log: Any) -> Any:
        with closing(sqlite3.connect(config.path)) as conn:
            conn.execute(f'DROP TABLE "{config.drop_before_read}"')
        return super().read(config, catalog, state, writer, log)


@pytest.fixture
def dropping_source() -> Iterator[str]:
    with registered(ConnectorInfo(DroppingSource.name, "source", factory=DroppingSource)):
        yield DroppingSource.name


def test_a_partly_failed_sync_says_which_stream_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dropping_source: str
) -> None:
    make_source(tmp_path / "source.db")
    config = tmp_path / "source.json"
    config.write_text(json.dumps({"path": str(tmp_path / "source.db"), "drop_before_read": "notes"}))
    args = ["sync", "--json", "--source", dropping_source, "--source-config", str(config), "--destination"]
    args += [f"sqlite:///{tmp_path / 'wh.db'}", "--state-file", str(tmp_path / "s.json")]
    code = cli.main([*args, "--in-process", "--no-progress"])
    doc = valid(capsys.readouterr().out)
    assert code == 1
    assert (doc["status"], doc["ok"]) == ("partial", False)
    by_name = {s["name"]: s for s in doc["streams"]}
    assert (by_name["items"]["finished"], by_name["items"]["errors"]) == (True, [])
    notes = by_name["notes"]
    assert (notes["status"], notes["finished"]) == ("INCOMPLETE", False)
    assert notes["errors"][0]["failure_type"] == "config_error"
    assert "table not found" in notes["errors"][0]["message"]
    assert doc["totals"]["streams_finished"] == 1
    assert notes["errors"][0] in doc["errors"]


def test_a_usage_error_prints_a_failed_document_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Url-pass-58"
    args = [
        "sync",
        "--json",
        "--source",
        f"postgresql://u:{secret}@127.0.0.1:1/db",
        "--destination",
        "nowhere",
    ]
    code = cli.main([*args, "--state-file", str(tmp_path / "s.json"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2
    doc = valid(out)
    assert (doc["status"], doc["errors"][0]["failure_type"]) == ("failed", "config_error")
    assert (
        "--destination nowhere: give its config with --destination-config FILE" in doc["errors"][0]["message"]
    )
    assert secret not in out + err


def test_the_readme_example_follows_the_schema() -> None:
    readme = (Path(cli.__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```json\n(\{\n  \"version\": 1.*?)```", readme, flags=re.S)
    doc = valid(example)
    assert doc["status"] == "partial"
