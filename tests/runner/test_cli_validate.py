"""``dbkit validate``: real message streams from source-sqlite, and one planted problem at a time."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbkit.cli import main
from dbkit.validate_cli import validate_command

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Messages:
    directory: Path
    lines: list[str]  # a good stream: source-sqlite read of two tables
    configured: Path  # configured catalog
    plain: Path  # catalog as discovered
    message: Path  # a CATALOG message


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> Messages:
    d = tmp_path_factory.mktemp("validate")
    db = d / "src.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, born DATE, updated_at DATETIME);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, total NUMERIC, customer_id INTEGER);
            """
        )
        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?)",
            [(i, f"c{i}", None if i % 3 else "1990-05-17", f"2024-01-0{i} 10:00:00") for i in range(1, 6)],
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?,?,?)", [(i, f"{i}.50", i % 5 + 1) for i in range(1, 4)]
        )
    config = d / "config.json"
    config.write_text(json.dumps({"path": str(db)}))
    discovered = subprocess.run(
        [str(BIN / "source-sqlite"), "discover", "--config", str(config)], capture_output=True, check=True
    ).stdout
    catalog = json.loads(discovered)["catalog"]
    (d / "catalog-message.json").write_bytes(discovered)
    (d / "catalog.json").write_text(json.dumps(catalog))
    configured = {
        "streams": [
            {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
            for s in catalog["streams"]
        ]
    }
    (d / "configured.json").write_text(json.dumps(configured))
    read = subprocess.run(
        [
            str(BIN / "source-sqlite"),
            "read",
            "--config",
            str(config),
            "--catalog",
            str(d / "configured.json"),
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return Messages(
        d, read.splitlines(), d / "configured.json", d / "catalog.json", d / "catalog-message.json"
    )


def _validate(lines: list[str], catalog: Path | None, tmp_path: Path) -> tuple[int, list[str], str]:
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    out, err = io.StringIO(), io.StringIO()
    code = validate_command(str(path), str(catalog) if catalog else None, out, err)
    return code, out.getvalue().splitlines(), err.getvalue()


def _record(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": "RECORD", "record": {"stream": stream, "emitted_at": 1, "data": data}})


def _status(stream: str, status: str) -> str:
    body = {"stream_descriptor": {"name": stream}, "status": status}
    return json.dumps(
        {"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0, "stream_status": body}}
    )


def test_the_good_stream_is_as_expected(messages: Messages) -> None:
    kinds = [json.loads(line)["type"] for line in messages.lines]
    assert kinds.count("RECORD") == 8
    assert json.loads(messages.lines[0])["trace"]["stream_status"]["status"] == "STARTED"
    assert json.loads(messages.lines[1])["record"]["stream"] == "customers"


@pytest.mark.parametrize("catalog", ["configured", "plain", "message"])
def test_a_good_stream_passes_with_any_catalog_form(messages: Messages, tmp_path: Path, catalog: str) -> None:
    code, problems, summary = _validate(messages.lines, getattr(messages, catalog), tmp_path)
    assert problems == []
    assert code == 0
    assert summary.startswith(f"{len(messages.lines)} lines: RECORD 8, STATE 2, TRACE 4; no problems")


def test_a_good_stream_passes_with_the_catalog_inside_it(messages: Messages, tmp_path: Path) -> None:
    lines = [messages.message.read_text().strip(), *messages.lines]
    code, problems, summary = _validate(lines, None, tmp_path)
    assert (code, problems) == (0, [])
    assert "CATALOG 1" in summary


# Each case plants one bad line as line 3 of the good stream (after STARTED and one record).
CASES = {
    "bad json": ('{"type": "RECORD", "record": {"stream": ', "line 3: not JSON: "),
    "unknown type": ('{"type": "RECORDS", "record": {}}', "line 3: unknown message type 'RECORDS'"),
    "record for unknown stream": (
        _record("invoices", {"id": 1}),
        "line 3: record names stream invoices, which is not in the catalog",
    ),
    "record not matching its schema": (
        _record("customers", {"id": "seven", "name": "x"}),
        "line 3: record of customers: id: 'seven' is not of type 'integer'",
    ),
    "record with a malformed date": (
        _record("customers", {"id": 9, "born": "1990-13-45"}),
        "line 3: record of customers: born: '1990-13-45' is not a 'date'",
    ),
    "state for unknown stream": (
        json.dumps(
            {"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "x"}}}}
        ),
        "line 3: state names stream x, which is not in the catalog",
    ),
    "status STARTED twice": (_status("customers", "STARTED"), "line 3: stream customers STARTED twice"),
    "status COMPLETE before STARTED": (
        _status("orders", "COMPLETE"),
        "line 3: stream orders COMPLETE without STARTED, or after its final status",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_reported_with_its_line(messages: Messages, tmp_path: Path, case: str) -> None:
    bad, expected = CASES[case]
    lines = [*messages.lines[:2], bad, *messages.lines[2:]]
    code, problems, summary = _validate(lines, messages.configured, tmp_path)
    assert code == 1
    assert problems[0].startswith(expected)  # the JSON case goes on with the parser's own words
    if case == "status COMPLETE before STARTED":  # then orders' real STARTED comes after a final status
        started = next(i + 1 for i, line in enumerate(lines) if '"orders"' in line and '"STARTED"' in line)
        assert problems[1:] == [f"line {started}: stream orders STARTED twice"]
    else:
        assert len(problems) == 1, problems
    assert "problem" in summary


def test_a_record_after_its_stream_completed(messages: Messages, tmp_path: Path) -> None:
    lines = [*messages.lines, _record("customers", {"id": 99})]
    code, problems, _ = _validate(lines, messages.configured, tmp_path)
    assert code == 1
    assert problems == [f"line {len(lines)}: record for stream customers after its COMPLETE status"]


def test_several_problems_are_all_reported_in_order(messages: Messages, tmp_path: Path) -> None:
    lines = ["not json", *messages.lines, '{"type": "NOPE"}']
    code, problems, summary = _validate(lines, messages.configured, tmp_path)
    assert code == 1
    assert [p.split(":")[0] for p in problems] == ["line 1", f"line {len(lines)}"]
    assert summary.rstrip().endswith("2 problems")


def test_the_console_script_reads_stdin_and_files(messages: Messages, tmp_path: Path) -> None:
    good = "".join(line + "\n" for line in messages.lines)
    ok = subprocess.run(
        [str(BIN / "dbkit"), "validate", "--catalog", str(messages.configured)],
        input=good,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ok.returncode, ok.stdout) == (0, "")
    assert "RECORD 8" in ok.stderr
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text(good + _record("customers", {"id": "x"}) + "\n")
    bad = subprocess.run(
        [str(BIN / "dbkit"), "validate", "--catalog", str(messages.configured), str(bad_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"line {len(messages.lines) + 1}: record for stream customers after its COMPLETE status",
        f"line {len(messages.lines) + 1}: record of customers: id: 'x' is not of type 'integer'",
    ]
    assert "2 problems" in bad.stderr


def test_an_unreadable_catalog_or_file_exits_2(
    messages: Messages, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"streams": [{"stream": {"name": "a"}, "sync_mode": "sideways"}]}')
    assert main(["validate", "--catalog", str(broken), str(tmp_path / "none.jsonl")]) == 2
    assert "cannot use the catalog" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
