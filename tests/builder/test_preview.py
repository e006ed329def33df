"""``dbkit preview``: check, discover and a test read of N records per stream, shown as tables or
JSON, without any state file; errors a person can act on; any source (dbkit's by name or URL, or
any command speaking the protocol); stopped after N records whatever the table's size."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rich.console import Console

from dbkit.builder.preview import PreviewResult, run_preview
from dbkit.builder.show import declared_type, fit_widths, show, to_json
from dbkit.cli import main
from dbkit.runner.endpoints import make_endpoint
from dbkit.testing.servers import DatabaseServer, TestDatabase
from tests.builder.conftest import run_dbkit

ROWS = 25


def make_shop(path: Path) -> None:
    """A small SQLite database: a keyed table with a cursor (and one value SQLite keeps as text in
    an INTEGER column, which the source nulls), and a table without key or cursor."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER, note TEXT, updated_at DATETIME)"
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [
                (i, "lots" if i == 2 else i * 10, f"order {i}", f"2024-01-{i:02d} 10:00:00")
                for i in range(1, ROWS + 1)
            ],
        )
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.executemany("INSERT INTO notes VALUES (?)", [("a",), ("b",)])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preview") / "shop.db"
    make_shop(path)
    return path


@pytest.fixture(scope="module")
def previewed(shop: Path) -> PreviewResult:
    """One preview of the shop, limit 3 (the source runs as a subprocess)."""
    return run_preview(make_endpoint(f"sqlite:///{shop}", None, "source", "a URL needs no config"), limit=3)


def by_name(result: PreviewResult, name: str) -> Any:
    return next(s for s in result.streams if s.stream.name == name)


def test_preview_reads_n_records_per_stream_with_types_changes_and_state(previewed: PreviewResult) -> None:
    assert previewed.ok, previewed.errors
    assert [s.stream.name for s in previewed.streams] == ["notes", "orders"]
    orders = by_name(previewed, "orders")
    # incremental on its cursor, as a first sync reads it: (updated_at, id) order
    assert orders.configured.sync_mode.value == "incremental"
    assert [r.data["id"] for r in orders.records] == [1, 2, 3]
    assert orders.more
    assert orders.stopped
    # the value SQLite kept as text in an INTEGER column: nulled, with the reason
    assert orders.records[1].data["qty"] is None
    assert orders.records[1].changes == [
        {"field": "qty", "change": "NULLED", "reason": "SOURCE_SERIALIZATION_ERROR"}
    ]
    # the state after exactly the 3 records shown (the source was asked to checkpoint every 3)
    position = orders.state["stream"]["stream_state"]["position"]
    assert position["after_key"] == [3]
    assert orders.state["sourceStats"]["recordCount"] == 3
    # a small table without key: read to its end, its final state
    notes = by_name(previewed, "notes")
    assert [r.data for r in notes.records] == [{"body": "a"}, {"body": "b"}]
    assert not notes.more
    assert not notes.stopped
    assert notes.status == "COMPLETE"


def test_the_table_shows_types_marks_changes_and_state(previewed: PreviewResult) -> None:
    out = io.StringIO()
    show(previewed, Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert "check succeeded · 2 streams discovered" in text
    assert "integer · pk" in text
    assert "timestamp_without_timezone · cursor" in text
    assert "null (NULLED: SOURCE_SERIALIZATION_ERROR)" in text
    assert "1 value(s) changed by the source" in text
    assert 'state a sync would save here: {"v":1,"mode":"incremental"' in text
    assert "first 3 records (more not read)" in text
    assert max(len(line) for line in text.splitlines()) <= 120


def test_a_narrow_terminal_turns_the_table(previewed: PreviewResult) -> None:
    """Fields become rows when their columns cannot fit; nothing is wider than the terminal."""
    out = io.StringIO()
    show(previewed, Console(file=out, width=44, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 44
    assert "field" in text
    assert "#1" in text
    assert "records fit this terminal; --json shows them all" in " ".join(text.split())


def test_json_output(previewed: PreviewResult) -> None:
    doc = json.loads(to_json(previewed))
    assert doc["ok"] is True
    assert doc["limit"] == 3
    orders = next(s for s in doc["streams"] if s["name"] == "orders")
    assert orders["types"] == {
        "id": "integer",
        "qty": "integer",
        "note": "string",
        "updated_at": "timestamp_without_timezone",
    }
    assert orders["primary_key"] == [["id"]]
    assert orders["cursor_field"] == ["updated_at"]
    assert [r["data"]["note"] for r in orders["records"]] == ["order 1", "order 2", "order 3"]
    assert orders["records"][1]["changes"][0]["change"] == "NULLED"
    assert orders["more"] is True


def test_declared_types_and_widths() -> None:
    assert declared_type({"type": ["string", "null"], "format": "date"}) == "date"
    assert declared_type({"type": "string", "airbyte_type": "timestamp_with_timezone"}) == (
        "timestamp_with_timezone"
    )
    assert declared_type({"type": ["string", "null"], "contentEncoding": "base64"}) == "binary"
    assert declared_type({"type": "array", "items": {"type": "integer"}}) == "array<integer>"
    assert declared_type({}) == "any"
    # narrow columns keep their width, wide ones share the rest
    assert fit_widths([5, 40, 60], 60) == [5, 27, 27]
    assert fit_widths([5, 6], 60) == [5, 6]


def test_the_command_touches_no_state_file(shop: Path, tmp_path: Path) -> None:
    """``dbkit preview --json`` in a fresh directory: the preview, exit 0, and no file written
    (no state file, no connector files left behind); the source is read in full refresh too."""
    before = set(os.listdir(tmp_path))
    done = run_dbkit(
        "preview", "--source", f"sqlite:///{shop}", "--streams", "orders", "--limit", "5",
        "--full-refresh", "--json", "--in-process", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (orders,) = doc["streams"]
    assert orders["sync_mode"] == "full_refresh"
    assert [r["data"]["id"] for r in orders["records"]] == [1, 2, 3, 4, 5]
    assert orders["state"]["stream"]["stream_state"]["after"] == [5]
    assert set(os.listdir(tmp_path)) == before
    assert not list(shop.parent.glob("*state*"))


def test_bad_inputs_are_errors_a_person_can_act_on(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def preview(*args: str) -> tuple[int, str, str]:
        code = main(["preview", "--in-process", *args])
        out, err = capsys.readouterr()
        return code, out, err

    # a stream the source does not have: the ones it has are named
    code, out, _ = preview("--source", f"sqlite:///{shop}", "--streams", "nope")
    assert code == 1
    assert "unknown stream(s) nope; the source has: notes, orders" in " ".join(out.split())
    # a missing database file: check fails with the reason, and discover with a config_error
    missing = tmp_path / "missing.db"
    code, out, _ = preview("--source", f"sqlite:///{missing}", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["check"]["ok"] is False
    assert doc["streams"] == []
    assert any("does not exist" in e["message"] for e in doc["errors"]), doc["errors"]
    assert {e.get("failure_type") for e in doc["errors"]} >= {"config_error"}
    assert not missing.exists()
    # usage mistakes: exit 2, with what to do
    code, _, err = preview("--source", "source-sqlite")
    assert code == 2
    assert "give its config with --config FILE, or use a URL" in err
    code, _, err = preview("--source", "nosuchdb://x/y")
    assert code == 2
    assert "no source connector handles nosuchdb:// URLs" in err
    with pytest.raises(SystemExit) as exited:
        main(["preview", "--source", f"sqlite:///{shop}", "--limit", "0"])
    assert exited.value.code == 2
    assert "0 is not at least 1" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_failed_connection_shows_its_failure_type_and_no_secret(
    postgres_server: DatabaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "pr3view-s3cret-pw"
    server = postgres_server
    url = f"postgresql://{server.user}:{secret}@{server.host}:{server.port}/no_such_db"
    assert main(["preview", "--in-process", "--source", url]) == 1
    out, err = capsys.readouterr()
    text = " ".join(out.split())
    assert "source error [config_error]" in text
    assert "connection check failed" in text
    assert 'database "no_such_db" does not exist' in text
    assert text.count('no_such_db" does not exist') == 1  # discover's same error is not repeated
    assert secret not in out + err


FAKE = '''#!{python}
"""A source that is not a dbkit connector: it speaks the protocol; one stream never ends, the
other fails to read."""
import json, sys, itertools

def out(message):
    sys.stdout.write(json.dumps(message) + "\\n")
    sys.stdout.flush()

command = sys.argv[1]
schema = {{"type": "object", "properties": {{"n": {{"type": "integer"}}, "word": {{"type": "string"}}}}}}
if command == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}})
elif command == "check":
    out({{"type": "CONNECTION_STATUS", "connectionStatus": {{"status": "SUCCEEDED"}}}})
elif command == "discover":
    streams = [
        {{"name": name, "json_schema": schema, "supported_sync_modes": ["full_refresh"]}}
        for name in ("broken", "endless")
    ]
    out({{"type": "CATALOG", "catalog": {{"streams": streams}}}})
elif command == "read":
    with open(sys.argv[sys.argv.index("--catalog") + 1]) as f:
        (configured,) = json.load(f)["streams"]
    if configured["stream"]["name"] == "broken":
        text = "table broken: permission denied; grant SELECT on it"
        error = {{"message": text, "failure_type": "config_error"}}
        out({{"type": "TRACE", "trace": {{"type": "ERROR", "emitted_at": 0, "error": error}}}})
        sys.exit(1)
    for n in itertools.count(1):
        data = {{"n": n, "word": "w%d" % n}}
        out({{"type": "RECORD", "record": {{"stream": "endless", "data": data, "emitted_at": 0}}}})
        if n % 2 == 0:
            state = {{"stream_descriptor": {{"name": "endless"}}, "stream_state": {{"n": n}}}}
            out({{"type": "STATE", "state": {{"type": "STREAM", "stream": state}}}})
'''


def test_any_command_speaking_the_protocol(tmp_path: Path) -> None:
    """A console script that is not a dbkit connector: the stream that never ends is stopped after
    N records, with its last state within them; the one that fails shows its error, and the
    preview exits 1."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "source-endless"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "c.json").write_text("{}")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    started = time.monotonic()
    done = run_dbkit(
        "preview", "--source", "source-endless", "--config", "c.json", "--limit", "5", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # one stream failed
    assert time.monotonic() - started < 60
    broken, stream = json.loads(done.stdout)["streams"]
    assert broken["records"] == []
    assert broken["errors"] == [
        {
            "origin": "source",
            "message": "table broken: permission denied; grant SELECT on it",
            "failure_type": "config_error",
        }
    ]
    assert stream["errors"] == []
    assert [r["data"]["n"] for r in stream["records"]] == [1, 2, 3, 4, 5]
    assert stream["state"]["stream"]["stream_state"] == {"n": 4}
    assert stream["more"] is True
    assert stream["types"] == {"n": "integer", "word": "string"}


BIG = 1_000_000


def _tuples_read(conn: Any, table: str) -> int:
    """Rows the server read from ``table`` (sequential + index fetches), once the statistics of
    the source's finished sessions arrived (they are sent when a session ends)."""
    for _ in range(50):
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables "
            "WHERE relname = %s",
            (table,),
        ).fetchone()
        if row and row[0]:
            return int(row[0])
        time.sleep(0.2)
    raise AssertionError(f"no statistics for {table}")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_million_row_table_previews_as_fast_as_ten_rows(postgres_db: TestDatabase) -> None:
    """The source is stopped after N records: on the real PostgreSQL, a 1,000,000-row table's
    preview reads a few dozen rows of it (the server's own statistics say so) and takes about the
    time of a 10-row table's, read incrementally (on an indexed cursor) and as a full refresh."""
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload, "
            "timestamptz '2024-01-01' + g * interval '1 second' AS updated_at "
            f"FROM generate_series(1, {BIG}) g"
        )
        conn.execute("ALTER TABLE big ADD PRIMARY KEY (id)")
        conn.execute("CREATE INDEX ON big (updated_at, id)")
        conn.execute("CREATE TABLE small AS SELECT * FROM big WHERE id <= 10")
        conn.execute("ALTER TABLE small ADD PRIMARY KEY (id)")
        conn.execute("ANALYZE")
        # this session's statistics of the DDL above (two full scans of the big table) are sent at
        # most once a second: send them now, or they could arrive after the reset below
        conn.execute("SELECT pg_stat_force_next_flush()")
        source = make_endpoint(postgres_db.url, None, "source", "a URL needs no config")
        for full_refresh in (False, True):
            conn.execute("SELECT pg_stat_reset()")
            result = run_preview(
                source, streams=["public.big", "public.small"], limit=10, full_refresh=full_refresh
            )
            assert result.ok, result.errors
            big, small = by_name(result, "big"), by_name(result, "small")
            assert [r.data["id"] for r in big.records] == list(range(1, 11))
            assert big.more
            assert len(small.records) == 10
            assert not small.more
            stream_state = big.state["stream"]["stream_state"]
            if full_refresh:
                assert stream_state["after"] == ["10"]
            else:
                assert stream_state["position"]["after_key"] == ["10"]
            read = _tuples_read(conn, "big")
            assert read < BIG // 20, f"the preview read {read} rows of the big table"
            # generous: the machine is shared, and both reads start a process
            assert big.seconds < 3 * small.seconds + 5, (big.seconds, small.seconds)
