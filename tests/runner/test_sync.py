"""``dbkit sync`` SQLite -> SQLite: real connectors (subprocesses or threads), real files, no mocks."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from dbkit import cli
from dbkit.config import MASKER, secret_field
from dbkit.protocol import messages as msg
from dbkit.runner.registry import ConnectorInfo, register, unregister
from dbkit.urls import postgres_url_config
from source_sqlite import SqliteSource, SqliteSourceConfig

FIRST_GENERATION = 1_700_000_000_000
"""A stream's first refresh has a generation of the time in milliseconds (dbkit.runner.plan)."""

RunDbkit = Callable[..., subprocess.CompletedProcess[str]]
SameTables = Callable[[Path, Path, Sequence[str]], None]
TableRows = Callable[..., list[tuple[Any, ...]]]
StateOf = Callable[[Path], dict[str, Any]]
EntryOf = Callable[[dict[str, Any], str], dict[str, Any]]

TABLES = ("customers", "events", "order_items", "settings", "v_active")


# ============================================================================ the source database


def make_source(path: Path) -> None:
    """Five streams: incremental with a PK, incremental with a composite PK, a full refresh table
    with a PK but no cursor, a full refresh log without a PK, and a view."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE customers (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT, signup DATE,
                active BOOLEAN, balance NUMERIC, prefs JSON, avatar BLOB, updated_at DATETIME NOT NULL);
            CREATE TABLE order_items (
                order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, qty INTEGER, price NUMERIC,
                updated_at DATETIME NOT NULL, PRIMARY KEY (order_id, line_no));
            CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT);
            CREATE TABLE events (ts DATETIME, kind TEXT, detail JSON);
            CREATE VIEW v_active AS SELECT id, name, country FROM customers WHERE active = 1;
            """
        )
        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    i,
                    f"Customer {i}",
                    None if i % 17 == 0 else f"c{i}@example.com",
                    None if i % 5 == 0 else ["FR", "US", "JP"][i % 3],
                    f"2023-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                    i % 4 != 0,
                    f"{i * 37 % 10000}.{i % 100:02d}",
                    None if i % 3 == 0 else json.dumps({"n": i, "tags": ["a", "b"][: i % 3]}),
                    None if i % 7 else bytes(range(i % 200, i % 200 + 9)),
                    f"2024-01-{i % 28 + 1:02d} {i % 24:02d}:{i % 60:02d}:00",
                )
                for i in range(1, 301)
            ],
        )
        conn.executemany(
            "INSERT INTO order_items VALUES (?,?,?,?,?)",
            [
                (
                    o,
                    n,
                    o % 5 + n,
                    f"{o % 90 + 1}.{n * 11 % 100:02d}",
                    f"2024-02-{o % 28 + 1:02d} 08:{n:02d}:00",
                )
                for o in range(1, 201)
                for n in range(1, 4)
            ],
        )
        conn.executemany(
            "INSERT INTO settings VALUES (?,?)", [(f"key{i:02d}", f"value {i}") for i in range(20)]
        )
        conn.executemany(
            "INSERT INTO events VALUES (?,?,?)",
            [
                (f"2024-03-01 00:{i // 60 % 60:02d}:{i % 60:02d}", ["view", "click"][i % 2], None)
                for i in range(200)
            ],
        )


def change_source(path: Path) -> dict[str, int]:
    """Inserts, updates with a newer cursor, and an update of the no-cursor table; returns the
    rows each incremental stream must read next."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO customers (id, name, active, balance, updated_at) VALUES (?,?,?,?,?)",
            [(300 + i, f"New {i}", 1, "0.10", "2024-06-01 12:00:00") for i in range(1, 4)],
        )
        conn.execute(
            "UPDATE customers SET name = 'Renamed', updated_at = '2024-06-02 00:00:00' WHERE id IN (7, 8)"
        )
        conn.executemany(
            "INSERT INTO order_items VALUES (?,?,?,?,?)",
            [(201, 1, 1, "9.99", "2024-06-03 00:00:00"), (201, 2, 2, "19.99", "2024-06-03 00:00:00")],
        )
        conn.execute("UPDATE settings SET value = 'changed' WHERE key = 'key03'")
        conn.executemany("INSERT INTO events VALUES (?,?,?)", [("2024-06-04 00:00:00", "new", "{}")] * 5)
    return {"customers": 5, "order_items": 2}


def max_cursor(path: Path, table: str) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute(f'SELECT max(updated_at) FROM "{table}"').fetchone()[0])


def count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "source": tmp_path / "source.db",
        "warehouse": tmp_path / "warehouse.db",
        "state": tmp_path / "state.json",
    }
    make_source(out["source"])
    return out


def run_sync(
    mode: str, args: list[str], cwd: Path, dbkit: RunDbkit, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``dbkit sync ARGS --no-progress``: as a process (connectors as subprocesses,
    ``--subprocess``) or, for ``in-process``, through :func:`dbkit.cli.main` in this process
    (connectors in threads)."""
    if mode == "subprocess":
        done = dbkit("sync", *args, "--no-progress", "--subprocess", cwd=cwd)
        return done.returncode, done.stdout + done.stderr
    capsys.readouterr()
    code = cli.main(["sync", *args, "--no-progress", "--in-process"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("flags", "placement"),
    [
        ([], "Arrow frames, between threads of this process"),
        (["--subprocess"], "Arrow frames, between processes"),
        (["--protocol", "json"], "JSON lines, between processes"),
        (["--protocol", "json", "--in-process"], "JSON lines, between threads of this process"),
    ],
)
def test_the_arrow_path_between_dbkit_connectors_runs_in_threads_unless_told(
    flags: list[str],
    placement: str,
    files: dict[str, Path],
    tmp_path: Path,
    dbkit: RunDbkit,
    same_tables: SameTables,
) -> None:
    """By default read and write run in threads of the sync's process when records travel as
    Arrow frames between dbkit connectors of this installation; as subprocesses on the JSON
    path or with ``--subprocess``; the copy is the same either way."""
    args = [
        "--source", f"sqlite:///{files['source']}",
        "--destination", f"sqlite:///{files['warehouse']}",
        "--state-file", str(files["state"]),
    ]  # fmt: skip
    done = dbkit("sync", *args, "--no-progress", "-v", *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"records travel as {placement}" in done.stdout + done.stderr
    same_tables(files["source"], files["warehouse"], TABLES)


def test_in_process_and_subprocess_are_exclusive(
    files: dict[str, Path], tmp_path: Path, dbkit: RunDbkit
) -> None:
    args = ["--source", f"sqlite:///{files['source']}", "--destination", f"sqlite:///{files['warehouse']}"]
    done = dbkit("sync", *args, "--in-process", "--subprocess", cwd=tmp_path)
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr


def test_a_full_refresh_after_the_state_file_is_deleted_replaces_the_tables(
    files: dict[str, Path], tmp_path: Path, dbkit: RunDbkit, same_tables: SameTables
) -> None:
    """Deleting the state file starts over: the next full refresh replaces every table (a new
    generation no earlier sync used), rather than resuming a generation whose rows the
    destination holds and loading the rows next to them."""
    args = [
        "--source", f"sqlite:///{files['source']}",
        "--destination", f"sqlite:///{files['warehouse']}",
        "--state-file", str(files["state"]), "--full-refresh", "--no-progress",
    ]  # fmt: skip
    for _ in range(2):
        files["state"].unlink(missing_ok=True)
        done = dbkit("sync", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        same_tables(files["source"], files["warehouse"], TABLES)  # every row once
    for table in TABLES:
        assert count(files["warehouse"], table) == count(files["source"], table)


# ============================================================================ two consecutive syncs


@pytest.mark.parametrize("mode", ["subprocess", "in-process"])
def test_two_syncs_copy_everything_then_only_the_changes(
    mode: str,
    files: dict[str, Path],
    tmp_path: Path,
    dbkit: RunDbkit,
    capsys: pytest.CaptureFixture[str],
    same_tables: SameTables,
    state_of: StateOf,
    entry_of: EntryOf,
) -> None:
    source, warehouse, state_path = files["source"], files["warehouse"], files["state"]
    args = [
        "--source", f"sqlite:///{source}?checkpoint_records=50",
        "--destination", f"sqlite:///{warehouse}",
        "--state-file", str(state_path),
    ]  # fmt: skip
    code, output = run_sync(mode, args, tmp_path, dbkit, capsys)
    assert code == 0, output
    same_tables(source, warehouse, TABLES)

    first = state_of(state_path)
    assert (first["sync_count"], first["source"], first["destination"]) == (
        1,
        {"connector": "source-sqlite", "path": str(source.resolve())},
        {"connector": "destination-sqlite", "path": str(warehouse.resolve())},
    )
    customers = entry_of(first, "customers")
    assert customers["sync_mode"] == "incremental"
    assert customers["destination_sync_mode"] == "append_dedup"
    assert customers["cursor_field"] == ["updated_at"]
    assert (customers["generation_id"], customers["finished"]) == (0, True)
    assert customers["state"]["mode"] == "incremental"
    assert customers["state"]["position"]["cursor"] == max_cursor(source, "customers")
    assert customers["last_sync"]["records_read"] == customers["last_sync"]["records_acknowledged"] == 300
    assert entry_of(first, "order_items")["destination_sync_mode"] == "append_dedup"
    generations = {}
    for name in ("events", "settings", "v_active"):  # no cursor: full refresh into overwrite
        entry = entry_of(first, name)
        assert (entry["sync_mode"], entry["destination_sync_mode"]) == ("full_refresh", "overwrite")
        generations[name] = entry["generation_id"]
        assert generations[name] >= FIRST_GENERATION  # one no earlier state file reached
        assert entry["state"]["complete"] is True
        assert entry["last_sync"]["records_acknowledged"] == count(source, name)
    assert "customers                COMPLETE  300 records read" in output

    expected = change_source(source)
    code, output = run_sync(mode, args, tmp_path, dbkit, capsys)
    assert code == 0, output
    same_tables(source, warehouse, TABLES)

    second = state_of(state_path)
    assert second["sync_count"] == 2
    for name, rows in expected.items():  # incremental streams read only the new and changed rows
        last = entry_of(second, name)["last_sync"]
        assert (last["sync_id"], last["records_read"], last["records_acknowledged"]) == (2, rows, rows)
        assert entry_of(second, name)["generation_id"] == 0
    for name in ("events", "settings", "v_active"):  # full refresh: everything, a new generation
        entry = entry_of(second, name)
        assert entry["last_sync"]["records_read"] == count(source, name)
        assert entry["generation_id"] == generations[name] + 1
        assert airbyte_generations(warehouse, name) == [generations[name] + 1]
    assert airbyte_generations(warehouse, "customers") == [0]
    assert entry_of(second, "customers")["state"]["position"]["cursor"] == "2024-06-02 00:00:00"
    assert "customers                COMPLETE  5 records read" in output
    assert "Traceback" not in output


def airbyte_generations(db: Path, table: str) -> list[int]:
    with closing(sqlite3.connect(db)) as conn:
        return [
            r[0] for r in conn.execute(f'SELECT DISTINCT _airbyte_generation_id FROM "{table}" ORDER BY 1')
        ]


def test_streams_option_and_full_refresh(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    state_of: StateOf,
    entry_of: EntryOf,
    rows_of: TableRows,
) -> None:
    source, warehouse, state_path = files["source"], files["warehouse"], files["state"]
    base = ["sync", "--source", f"sqlite:///{source}", "--destination", f"sqlite:///{warehouse}"]
    base += ["--state-file", str(state_path), "--in-process", "--no-progress"]
    assert cli.main([*base, "--streams", "customers,settings"]) == 0
    doc = state_of(state_path)
    assert sorted(e["stream_descriptor"]["name"] for e in doc["streams"]) == ["customers", "settings"]
    with closing(sqlite3.connect(warehouse)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"customers", "settings"} <= tables
    assert "events" not in tables

    assert cli.main([*base, "--streams", "customers", "--full-refresh"]) == 0
    entry = entry_of(state_of(state_path), "customers")
    assert (entry["sync_mode"], entry["destination_sync_mode"]) == ("full_refresh", "overwrite")
    generation = entry["generation_id"]
    assert generation == 1  # the stream's entry says 0 (incremental): the next one
    assert entry["last_sync"]["records_read"] == 300
    assert entry_of(state_of(state_path), "settings")["last_sync"]["sync_id"] == 1  # not part of sync 2
    assert rows_of(warehouse, "customers", source) == rows_of(source, "customers")

    # back to incremental: the full-refresh state is not a cursor position, so it reads everything
    assert cli.main([*base, "--streams", "customers"]) == 0
    entry = entry_of(state_of(state_path), "customers")
    assert (entry["sync_mode"], entry["generation_id"], entry["last_sync"]["records_read"]) == (
        "incremental",
        generation,
        300,
    )

    capsys.readouterr()
    assert cli.main([*base, "--streams", "customers,nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown stream(s) nope; the source has: customers, events, order_items, settings, v_active" in err


# ============================================================================ failures and resuming

KILLER = """#!{python}
# A source that is killed (SIGKILL) right after it forwarded N STATE messages of one stream.
# Its own config keys are removed before the real source-sqlite sees the config.
import json, os, signal, subprocess, sys

args = sys.argv[1:]
at = args.index("--config") + 1
config = json.load(open(args[at]))
kill_stream = config.pop("kill_stream", None)
kill_after = config.pop("kill_after_states", 0)
token = config.pop("api_token", None)
real = args[at] + ".real.json"
json.dump(config, open(real, "w"))
args[at] = real
real_source = os.path.join(os.path.dirname(sys.executable), "source-sqlite")
if args[0] != "read" or not kill_after:
    os.execv(real_source, [real_source, *args])
print("starting the read with api token " + str(token), file=sys.stderr, flush=True)
out = sys.stdout.buffer
log = {{"type": "LOG", "log": {{"level": "INFO", "message": "token=" + str(token)}}}}
out.write(json.dumps(log).encode() + b"\\n")
child = subprocess.Popen([real_source, *args], stdout=subprocess.PIPE)
seen = 0
for line in child.stdout:
    out.write(line)
    message = json.loads(line)
    if message["type"] == "STATE" and message["state"]["stream"]["stream_descriptor"]["name"] == kill_stream:
        seen += 1
        if seen >= kill_after:
            out.flush()
            child.kill()
            os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_source_resumes_from_the_last_acknowledged_state(
    files: dict[str, Path],
    tmp_path: Path,
    dbkit: RunDbkit,
    same_tables: SameTables,
    state_of: StateOf,
    entry_of: EntryOf,
) -> None:
    source, warehouse, state_path = files["source"], files["warehouse"], files["state"]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    killer = bindir / "source-sqlite-killer"
    killer.write_text(KILLER.format(python=sys.executable))
    killer.chmod(killer.stat().st_mode | stat.S_IXUSR)
    token = "tok-8c1f-planted-secret"
    config = tmp_path / "killer.json"
    config.write_text(
        json.dumps(
            {
                "path": str(source),
                "checkpoint_records": 50,
                "kill_stream": "events",
                "kill_after_states": 2,
                "api_token": token,
            }
        )
    )
    args = ["sync", "--source", "source-sqlite-killer", "--source-config", str(config)]
    args += ["--destination", f"sqlite:///{warehouse}", "--state-file", str(state_path), "--no-progress"]
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}

    done = dbkit(*args, cwd=tmp_path, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "source-sqlite-killer was killed by SIGKILL" in output
    assert "input ended without a COMPLETE status for stream(s) events" in output  # the destination's word
    assert "Traceback" not in output
    assert token not in output  # a key named like a secret is masked even for an unknown connector
    assert "token=****" in output

    first = state_of(state_path)
    customers, events = entry_of(first, "customers"), entry_of(first, "events")
    assert customers["finished"] is True  # read before events, complete and acknowledged
    assert events["finished"] is False
    generation = events["generation_id"]
    assert generation >= FIRST_GENERATION
    assert events["state"] == {"v": 1, "mode": "full_refresh", "by": ["rowid"], "after": [100]}
    assert events["last_sync"]["records_acknowledged"] == 100
    assert events["last_sync"]["status"] == "STARTED"
    for name in ("order_items", "settings", "v_active"):  # never reached
        assert entry_of(first, name)["last_sync"]["status"] == "NOT_STARTED"
        assert entry_of(first, name)["state"] is None
    same_tables(source, warehouse, ["customers"])
    with closing(sqlite3.connect(warehouse)) as conn:
        # the refresh is half done; with no table to keep visible, a first refresh loads into the
        # table itself (dbkit.destination.generations), and the next attempt goes on there
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "events_airbyte_tmp" not in names
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 100

    config.write_text(json.dumps({"path": str(source), "checkpoint_records": 50}))
    done = dbkit(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    same_tables(source, warehouse, TABLES)  # no row missing, none twice
    second = state_of(state_path)
    events = entry_of(second, "events")
    assert events["generation_id"] == generation  # the same: the interrupted refresh was resumed
    assert events["last_sync"]["records_read"] == 100  # only the rows after the saved position
    assert entry_of(second, "customers")["last_sync"]["records_read"] == 0
    assert entry_of(second, "order_items")["last_sync"]["records_read"] == 600


class DroppingConfig(SqliteSourceConfig):
    drop_before_read: str | None = None


class DroppingSource(SqliteSource):
    """source-sqlite, except that it drops a table after discover, just before it reads."""

    name = "source-sqlite-dropping"
    config_model = DroppingConfig

    def read(self, config: Any, catalog: Any, state: Any, writer: Any, log: Any) -> Any:
        if config.drop_before_read:
            with closing(sqlite3.connect(config.path)) as conn:
                conn.execute(f'DROP TABLE "{config.drop_before_read}"')
        return super().read(config, catalog, state, writer, log)


@pytest.fixture
def dropping_source() -> Iterator[str]:
    register(ConnectorInfo("source-sqlite-dropping", "source", factory=DroppingSource))
    yield "source-sqlite-dropping"
    unregister("source-sqlite-dropping")


def test_a_table_dropped_mid_sync_fails_that_stream_only(
    files: dict[str, Path],
    tmp_path: Path,
    dropping_source: str,
    capsys: pytest.CaptureFixture[str],
    same_tables: SameTables,
    state_of: StateOf,
    entry_of: EntryOf,
) -> None:
    source, warehouse, state_path = files["source"], files["warehouse"], files["state"]
    with closing(sqlite3.connect(source)) as conn:
        settings_rows = conn.execute("SELECT key, value FROM settings").fetchall()
    config = tmp_path / "dropping.json"
    config.write_text(json.dumps({"path": str(source), "drop_before_read": "settings"}))
    args = ["sync", "--source", dropping_source, "--source-config", str(config), "--destination"]
    args += [f"sqlite:///{warehouse}", "--state-file", str(state_path), "--in-process", "--no-progress"]

    capsys.readouterr()
    assert cli.main(args) == 1
    output = "".join(capsys.readouterr())
    assert "source error (config_error) [stream settings]: stream settings: table not found" in output
    assert "Traceback" not in output
    first = state_of(state_path)
    settings = entry_of(first, "settings")
    generation = settings["generation_id"]
    assert (settings["finished"], settings["state"], settings["last_sync"]["status"]) == (
        False,
        None,
        "INCOMPLETE",
    )
    for name in ("customers", "events", "order_items", "v_active"):
        assert entry_of(first, name)["finished"] is True
    same_tables(source, warehouse, ["customers", "events", "order_items", "v_active"])

    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT)")
        conn.executemany("INSERT INTO settings VALUES (?,?)", settings_rows)
    config.write_text(json.dumps({"path": str(source)}))
    assert cli.main(args) == 0
    same_tables(source, warehouse, TABLES)
    settings = entry_of(state_of(state_path), "settings")
    assert (settings["finished"], settings["generation_id"]) == (
        True,
        generation + 1,
    )  # nothing to resume: a new generation
    assert airbyte_generations(warehouse, "settings") == [generation + 1]


def test_a_failed_check_stops_the_sync_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_path = tmp_path / "state.json"
    source, warehouse = f"sqlite:///{tmp_path / 'missing.db'}", f"sqlite:///{tmp_path / 'w.db'}"
    code = cli.main(
        [
            "sync",
            "--source",
            source,
            "--destination",
            warehouse,
            "--state-file",
            str(state_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"connection check failed: cannot open SQLite database {tmp_path / 'missing.db'}" in err
    assert "the sync did not start" in err
    assert not state_path.exists()


# ============================================================================ secrets


class SecretConfig(SqliteSourceConfig):
    password: SecretStr = secret_field(title="Password")


class CarelessSource(SqliteSource):
    """source-sqlite with a password it prints unmasked (as a careless connector might)."""

    name = "source-sqlite-careless"
    config_model = SecretConfig

    def read(self, config: Any, catalog: Any, state: Any, writer: Any, log: Any) -> Any:
        secret = config.password.get_secret_value()
        writer.write(msg.log("WARN", f"connected with password {secret}"))  # bypasses the masker
        writer.write(msg.trace_error(f"not really an error, but it shows {secret}", "system_error"))
        return super().read(config, catalog, state, writer, log)


def test_secrets_never_appear_in_the_output(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], state_of: StateOf
) -> None:
    register(ConnectorInfo("source-sqlite-careless", "source", factory=CarelessSource))
    try:
        secret = "pw-Zx81-never-print-me"
        config = tmp_path / "careless.json"
        config.write_text(json.dumps({"path": str(files["source"]), "password": secret}))
        endpoint = cli.endpoint("source-sqlite-careless", str(config), "source")
        assert MASKER.mask(f"x {secret} y") == "x **** y"  # registered from the config model's secret field
        assert endpoint.config["password"] == secret
        capsys.readouterr()
        args = ["sync", "--source", "source-sqlite-careless", "--source-config", str(config)]
        args += ["--destination", f"sqlite:///{files['warehouse']}", "--state-file", str(files["state"])]
        code = cli.main([*args, "--in-process", "-v", "--no-progress"])
        output = "".join(capsys.readouterr())
        assert code == 1  # the planted TRACE ERROR fails the sync
        assert "connected with password ****" in output
        assert "not really an error, but it shows ****" in output
        assert secret not in output
        assert secret not in files["state"].read_text()
        assert state_of(files["state"])["sync_count"] == 1
    finally:
        unregister("source-sqlite-careless")


def test_a_connector_that_is_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered connector whose package is absent: a clear error, and no secret in it."""
    from dbkit.runner import registry

    missing = registry.ConnectorInfo(
        "source-nowhere",
        "source",
        "dbkit_no_such_module",
        schemes=("nowhere",),
        url_config=postgres_url_config,
    )
    monkeypatch.setattr(registry, "KNOWN", [*registry.KNOWN, missing])
    secret = "pg-Pass-77-not-shown"
    for extra in ([], ["--in-process"]):
        args = ["sync", "--source", f"nowhere://app:{secret}@127.0.0.1:1/shop?schema=sales"]
        args += ["--destination", f"sqlite:///{tmp_path / 'w.db'}", "--state-file", str(tmp_path / "s.json")]
        code = cli.main([*args, "--no-progress", *extra])
        err = capsys.readouterr().err
        assert code == 1
        assert "connector source-nowhere is not installed" in err
        assert secret not in err
    assert not (tmp_path / "s.json").exists()


# ============================================================================ state file identity


def test_a_state_file_of_another_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reusing a state file for another source or destination database would skip rows that were
    never synced to it: the sync refuses, naming both."""
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, updated_at DATETIME)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"2024-01-0{i} 00:00:00") for i in (1, 2, 3)])
    state_path = tmp_path / "state.json"

    def sync(source: Path, warehouse: Path) -> tuple[int, str]:
        code = cli.main(
            [
                "sync",
                "--source",
                f"sqlite:///{source}",
                "--destination",
                f"sqlite:///{warehouse}",
                "--state-file",
                str(state_path),
                "--no-progress",
                "--in-process",
            ]
        )
        return code, capsys.readouterr().err

    code, _ = sync(src, tmp_path / "first.db")
    assert code == 0
    saved = orjson.loads(state_path.read_bytes())
    assert saved["source"] == {"connector": "source-sqlite", "path": str(src.resolve())}
    # the same source into another warehouse: refused, and the other warehouse is not touched
    code, err = sync(src, tmp_path / "second.db")
    assert code == 1
    assert "belongs to a sync whose destination is destination-sqlite" in err
    assert str(tmp_path / "first.db") in err
    assert str(tmp_path / "second.db") in err
    assert not (tmp_path / "second.db").exists()
    # another source with the same tables into the first warehouse: refused too
    other = tmp_path / "other.db"
    other.write_bytes(src.read_bytes())
    code, err = sync(other, tmp_path / "first.db")
    assert code == 1
    assert "belongs to a sync whose source is source-sqlite" in err
    # the state file is unchanged by the refused syncs
    assert orjson.loads(state_path.read_bytes()) == saved


def test_paths_with_url_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'#', '?', '%' and spaces in SQLite paths name the files they name (configs and encoded URLs)."""
    folder = tmp_path / "we ird#dir" / "q?x%41"
    folder.mkdir(parents=True)
    src, warehouse = folder / "s.db", folder / "w.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
    (tmp_path / "s.json").write_bytes(orjson.dumps({"path": str(src)}))
    (tmp_path / "d.json").write_bytes(orjson.dumps({"path": str(warehouse)}))
    code = cli.main(
        [
            "sync",
            "--source",
            "source-sqlite",
            "--source-config",
            str(tmp_path / "s.json"),
            "--destination",
            "destination-sqlite",
            "--destination-config",
            str(tmp_path / "d.json"),
            "--state-file",
            str(tmp_path / "st.json"),
            "--no-progress",
            "--in-process",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT id, v FROM t").fetchall() == [(1, "a")]
    encoded = urllib.parse.quote(str(folder))
    code = cli.main(
        [
            "sync",
            "--source",
            f"sqlite:///{encoded}/s.db",
            "--destination",
            f"sqlite:///{encoded}/w2.db",
            "--state-file",
            str(tmp_path / "st2.json"),
            "--no-progress",
            "--in-process",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".db") == ["s.db", "w.db", "w2.db"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "d.json",
        "s.json",
        "st.json",
        "st2.json",
        "we ird#dir",
    ]


def test_stream_names_are_shown_as_text_not_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "s.db"
    with sqlite3.connect(src) as conn:
        conn.execute('CREATE TABLE "we[/b]ird [bold]x" (id INTEGER PRIMARY KEY)')
        conn.execute('INSERT INTO "we[/b]ird [bold]x" VALUES (1)')
    code = cli.main(
        [
            "sync",
            "--source",
            f"sqlite:///{src}",
            "--destination",
            f"sqlite:///{tmp_path / 'w.db'}",
            "--state-file",
            str(tmp_path / "st.json"),
            "--no-progress",
            "--in-process",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "we[/b]ird [bold]x" in err, "the name is printed as it is"
