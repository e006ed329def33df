"""``dbkit sync`` stopped by SIGINT (Ctrl-C), SIGTERM and SIGHUP mid-sync, for real: a process
sent the signal, then its exit code, its one summary, no ERROR, no connector process left, the
state file, and a rerun that completes with every row exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dbkit import cli
from dbkit.runner.registry import ConnectorInfo, register, unregister
from dbkit.runner.result import SCHEMA_PATH
from source_sqlite import SqliteSource, SqliteSourceConfig

BIN = Path(sys.executable).parent
ROWS = 3000
CHECKPOINT = 100
RESULT_SCHEMA = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))

# A source that is slow on purpose: source-sqlite run as its child (so that the runner must stop a
# process group, not one process), its output forwarded line by line with a delay; with
# "stall_after_states" it stops forwarding after that many STATE messages (a source stuck in a
# query). It writes its pid, its child's and its helper's to "pid_file".
SLOW = """#!{python}
import json, os, subprocess, sys, time
args = sys.argv[1:]
at = args.index("--config") + 1
config = json.load(open(args[at]))
args[at] += ".real"  # source-sqlite's config: without the keys of this script
mine = ("delay", "stall_after_states", "pid_file")
with open(args[at], "w") as f:
    json.dump({{k: v for k, v in config.items() if k not in mine}}, f)
real = os.path.join(os.path.dirname(sys.executable), "source-sqlite")
if args[0] != "read" or not config.get("delay"):
    os.execv(real, [real, *args])
child = subprocess.Popen([real, *args], stdout=subprocess.PIPE)
# a helper that never notices the end of anything (think of an SSH tunnel): only a stop of the
# whole process group ends it
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(config["pid_file"], "w") as f:
    f.write(f"{{os.getpid()}} {{child.pid}} {{helper.pid}}")
out = sys.stdout.buffer
states = 0
for line in child.stdout:
    out.write(line)
    out.flush()
    if line.startswith(b'{{"type":"STATE"'):
        states += 1
        if states == config.get("stall_after_states"):
            time.sleep(3600)
    time.sleep(config["delay"])
"""


def make_source(path: Path) -> None:
    """``items`` (a key and a cursor: incremental dedup) and ``log`` (no key: full refresh)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, updated_at DATETIME NOT NULL)")
        conn.execute("CREATE TABLE log (at TEXT, line TEXT)")
        conn.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "
            "INSERT INTO items SELECT i, 'item ' || i, '2024-01-01 00:00:00' FROM n"
        )
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
            "INSERT INTO log SELECT '2024-01-02 00:00:00', 'line ' || i FROM n"
        )
        conn.execute("ANALYZE")


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return sorted(conn.execute(query).fetchall())


def assert_exactly_the_source(source: Path, warehouse: Path) -> None:
    """Every source row once in the warehouse: none lost, none twice."""
    for table, columns in (("items", "id, name"), ("log", "at, line")):
        expected = rows(source, f"SELECT {columns} FROM {table}")
        actual = rows(warehouse, f"SELECT {columns} FROM {table}")
        assert len(actual) == len(expected), f"{table}: {len(actual)} rows, the source has {len(expected)}"
        assert actual == expected, f"{table}: rows differ"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process still running (a zombie waiting for its reaper is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def acknowledged(state_path: Path, stream: str) -> int:
    """The records of ``stream`` the destination acknowledged, as the state file says (0 before)."""
    try:
        doc = json.loads(state_path.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    for entry in doc["streams"]:
        if entry["stream_descriptor"]["name"] == stream and entry["state"] is not None:
            return int(entry["last_sync"].get("records_acknowledged") or 0)
    return 0


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def slow_sync(tmp_path: Path) -> dict[str, Any]:
    """A source database, the slow source on PATH, its config and the sync's arguments."""
    source, warehouse, state = tmp_path / "source.db", tmp_path / "warehouse.db", tmp_path / "state.json"
    make_source(source)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    slow = bindir / "source-sqlite-slow"
    slow.write_text(SLOW.format(python=sys.executable))
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    destination_config = tmp_path / "destination.json"
    destination_config.write_text(
        json.dumps({"path": str(warehouse), "batch_records": 50, "flush_seconds": 0.1})
    )
    args = [str(BIN / "dbkit"), "sync", "--source", "source-sqlite-slow"]
    args += ["--source-config", str(tmp_path / "source.json"), "--destination", "destination-sqlite"]
    args += ["--destination-config", str(destination_config), "--state-file", str(state), "--no-progress"]
    return {
        "source": source,
        "warehouse": warehouse,
        "state": state,
        "config": tmp_path / "source.json",
        "pids": tmp_path / "pids",
        "args": args,
        "env": {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    }


def source_config(sync: dict[str, Any], **extra: Any) -> None:
    config = {"path": str(sync["source"]), "checkpoint_records": CHECKPOINT, "pid_file": str(sync["pids"])}
    sync["config"].write_text(json.dumps({**config, **extra}))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "stall", "times"),
    [(signal.SIGINT, 130, None, 1), (signal.SIGTERM, 143, 3, 2), (signal.SIGHUP, 129, 3, 1)],
    ids=["SIGINT", "SIGTERM-twice-stuck-source", "SIGHUP-stuck-source"],
)
def test_a_signal_mid_sync_stops_it_with_one_summary_and_the_next_run_resumes(
    slow_sync: dict[str, Any],
    slow_thread_source: str,
    capsys: pytest.CaptureFixture[str],
    signum: int,
    code: int,
    stall: int | None,
    times: int,
) -> None:
    source_config(slow_sync, delay=0.002, stall_after_states=stall)
    state_path = slow_sync["state"]
    runner = subprocess.Popen(
        slow_sync["args"], env=slow_sync["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        # a stuck source: once it is stuck (everything it sent acknowledged), no STATE comes any more
        first = stall * CHECKPOINT if stall else 1
        wait_for(lambda: acknowledged(state_path, "items") >= first, 60, "acknowledged states")
        before = acknowledged(state_path, "items")
        connectors = children(runner.pid)
        wait_for(lambda: slow_sync["pids"].exists() and slow_sync["pids"].read_text() != "", 5, "the pids")
        connectors |= {int(p) for p in slow_sync["pids"].read_text().split()}  # the slow source's children
        assert len(connectors) == 4, connectors  # the destination, the slow source, source-sqlite, helper
        runner.send_signal(signum)
        if times == 2:  # a second signal (while the runner waits for a checkpoint): stop everything now
            time.sleep(0.3)
            runner.send_signal(signum)
        out, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    output = out.decode()
    assert runner.returncode == code, output
    assert output.count("interrupted by " + signal.Signals(signum).name) == 1, output  # one summary
    assert output.count("sync mode") == 1, output
    assert "ERROR" not in output, output
    assert "Traceback" not in output, output
    assert [pid for pid in connectors if alive(pid)] == [], output  # no connector process left

    doc = json.loads(state_path.read_text())  # whole, and with at least what was acknowledged before
    items = next(e for e in doc["streams"] if e["stream_descriptor"]["name"] == "items")
    assert items["finished"] is False
    assert items["state"] is not None
    saved = items["last_sync"]["records_acknowledged"]
    assert before <= saved < ROWS, (before, saved)
    assert rows(slow_sync["warehouse"], "SELECT count(*) FROM items")[0][0] >= saved

    if times == 2:
        assert "again: stopping the connectors now" in output, output
        assert "WARN  destination-sqlite was killed by SIGTERM" in output, output
    elif stall:
        assert "the source sent no checkpoint in time: stopping it" in output

    # the next run (in this process, quicker) resumes from the saved state: every row once
    source_config(slow_sync)
    args = [*slow_sync["args"][1:], "--in-process"]
    assert cli.main(args) == 0, capsys.readouterr().err
    assert_exactly_the_source(slow_sync["source"], slow_sync["warehouse"])
    doc = json.loads(state_path.read_text())
    items = next(e for e in doc["streams"] if e["stream_descriptor"]["name"] == "items")
    assert items["finished"] is True
    assert items["last_sync"]["records_read"] <= ROWS - saved  # resumed, not started over


# A destination that fails after reading a little of its input (its check is destination-sqlite's).
FAILING = """#!{python}
import json, os, sys
args = sys.argv[1:]
real = os.path.join(os.path.dirname(sys.executable), "destination-sqlite")
if args[0] != "write":
    os.execv(real, [real, *args])
for _ in range(20):
    sys.stdin.buffer.readline()
error = {{"message": "disk full (planted)", "failure_type": "system_error"}}
trace = {{"type": "ERROR", "emitted_at": 0, "error": error}}
print(json.dumps({{"type": "TRACE", "trace": trace}}), flush=True)
sys.exit(1)
"""


@pytest.mark.slow
def test_a_failing_destination_leaves_no_source_process_behind(slow_sync: dict[str, Any]) -> None:
    failing = Path(slow_sync["env"]["PATH"].split(os.pathsep)[0]) / "destination-sqlite-failing"
    failing.write_text(FAILING.format(python=sys.executable))
    failing.chmod(failing.stat().st_mode | stat.S_IXUSR)
    source_config(slow_sync, delay=0.002)
    args = list(slow_sync["args"])
    args[args.index("destination-sqlite")] = "destination-sqlite-failing"
    runner = subprocess.Popen(args, env=slow_sync["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: slow_sync["pids"].exists() and slow_sync["pids"].read_text() != "", 60, "the pids")
        source = {int(p) for p in slow_sync["pids"].read_text().split()}  # the slow source, its children
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    output = out.decode()
    assert runner.returncode == 1, output
    assert "ERROR destination error (system_error): disk full (planted)" in output
    assert output.count("Sync 1 FAILED") == 1, output
    assert [pid for pid in source if alive(pid)] == [], output


class SlowConfig(SqliteSourceConfig):
    delay: float = 0.0
    stall_after_states: int | None = None
    stall_seconds: float = 4.5
    pid_file: str | None = None


class SlowSource(SqliteSource):
    """source-sqlite whose every write of output waits ``delay`` seconds (in-process runs), and
    that is stuck for ``stall_seconds`` after ``stall_after_states`` STATE messages."""

    name = "source-sqlite-slow"
    config_model = SlowConfig

    def read(self, config: Any, catalog: Any, state: Any, writer: Any, log: Any) -> Any:
        original = writer._write
        states = 0

        def slow_write(data: bytes) -> None:
            nonlocal states
            time.sleep(config.delay)
            original(data)
            if data.startswith(b'{"type":"STATE"'):
                states += 1
                if states == config.stall_after_states:
                    writer._out.flush()  # (under the writer's lock already)
                    time.sleep(config.stall_seconds)

        writer._write = slow_write
        return super().read(config, catalog, state, writer, log)


@pytest.fixture
def slow_thread_source() -> Iterator[str]:
    """The slow source in threads: ``source-sqlite-slow`` with ``--in-process``."""
    register(ConnectorInfo("source-sqlite-slow", "source", factory=SlowSource))
    yield "source-sqlite-slow"
    unregister("source-sqlite-slow")


@pytest.mark.parametrize(
    "stall", [None, pytest.param(2, marks=pytest.mark.slow)], ids=["stops-at-a-state", "stuck-source"]
)
def test_ctrl_c_in_process_stops_the_threads_and_the_next_run_resumes(
    tmp_path: Path, slow_thread_source: str, capsys: pytest.CaptureFixture[str], stall: int | None
) -> None:
    source, warehouse, state_path = tmp_path / "source.db", tmp_path / "warehouse.db", tmp_path / "state.json"
    make_source(source)
    config = tmp_path / "source.json"
    settings = {"path": str(source), "checkpoint_records": CHECKPOINT, "delay": 0.02}
    config.write_text(json.dumps({**settings, **({"stall_after_states": stall} if stall else {})}))
    destination = tmp_path / "destination.json"
    destination.write_text(json.dumps({"path": str(warehouse), "batch_records": 50, "flush_seconds": 0.1}))
    args = ["sync", "--source", slow_thread_source, "--source-config", str(config)]
    args += ["--destination", "destination-sqlite", "--destination-config", str(destination)]
    args += ["--state-file", str(state_path), "--no-progress", "--in-process", "--protocol", "json"]

    def interrupt_when_acknowledged() -> None:
        first = stall * CHECKPOINT if stall else 1  # stuck: everything it sent acknowledged
        wait_for(lambda: acknowledged(state_path, "items") >= first, 60, "acknowledged states")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the handler runs in the main thread

    handler = signal.getsignal(signal.SIGINT)
    ctrl_c = threading.Thread(target=interrupt_when_acknowledged)
    ctrl_c.start()
    code = cli.main([*args, "--json"])
    ctrl_c.join()
    out, output = capsys.readouterr()
    assert code == 130, output
    assert output.count("interrupted by SIGINT") == 1, output
    doc = json.loads(out)  # --json: the document says which signal stopped the sync
    RESULT_SCHEMA.validate(doc)
    assert (doc["interrupted_by"], doc["ok"]) == ("SIGINT", False), doc
    assert "ERROR" not in output, output
    if stall:  # its output pipe was broken: the pump saw its end, the thread its next write fail
        assert "the source sent no checkpoint in time: stopping it" in output, output
        items = next(
            e
            for e in json.loads(state_path.read_text())["streams"]
            if e["stream_descriptor"]["name"] == "items"
        )
        assert items["last_sync"]["records_read"] == stall * CHECKPOINT  # nothing once it woke up
    assert [t.name for t in threading.enumerate() if t.name.startswith("dbkit")] == []
    assert signal.getsignal(signal.SIGINT) is handler  # given back
    saved = acknowledged(state_path, "items")
    assert 0 < saved < ROWS

    config.write_text(json.dumps({"path": str(source)}))
    assert cli.main(args) == 0, capsys.readouterr().err
    assert_exactly_the_source(source, warehouse)


@pytest.mark.slow
def test_a_second_signal_stops_a_destination_in_a_thread_at_its_next_write(
    tmp_path: Path,
    slow_thread_source: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connectors in threads on the Arrow path (the default between dbkit connectors): a second
    Ctrl-C breaks the destination's output while it loads (a thread cannot be killed); it stops
    at its next write, which the summary shows as a warning, not an error, and the next run
    resumes from what was acknowledged."""
    from destination_sqlite.dialect import SqliteBulkLoader

    load = SqliteBulkLoader.load_batches

    def slow_load(self: Any, *args: Any, **kwargs: Any) -> None:
        time.sleep(1.0)
        load(self, *args, **kwargs)

    monkeypatch.setattr(SqliteBulkLoader, "load_batches", slow_load)
    source, warehouse, state_path = tmp_path / "source.db", tmp_path / "warehouse.db", tmp_path / "state.json"
    make_source(source)
    config = tmp_path / "source.json"
    config.write_text(json.dumps({"path": str(source), "checkpoint_records": CHECKPOINT, "delay": 0.001}))
    destination = tmp_path / "destination.json"
    destination.write_text(json.dumps({"path": str(warehouse), "batch_records": 50, "flush_seconds": 0.1}))
    args = ["sync", "--source", slow_thread_source, "--source-config", str(config)]
    args += ["--destination", "destination-sqlite", "--destination-config", str(destination)]
    args += ["--state-file", str(state_path), "--no-progress", "--in-process"]

    def interrupt_twice() -> None:
        wait_for(lambda: acknowledged(state_path, "items") >= 1, 60, "acknowledged states")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    ctrl_c = threading.Thread(target=interrupt_twice)
    ctrl_c.start()
    code = cli.main([*args, "-v"])
    ctrl_c.join()
    _, output = capsys.readouterr()
    assert "records travel as Arrow frames, between threads of this process" in output, output
    assert code == 130, output
    assert output.count("interrupted by SIGINT") == 1, output
    assert "again: stopping the connectors now" in output, output
    assert "ERROR" not in output, output
    assert "WARN  destination-sqlite exited with code 1" in output, output
    assert [t.name for t in threading.enumerate() if t.name.startswith("dbkit")] == []
    saved = acknowledged(state_path, "items")
    assert 0 < saved < ROWS

    monkeypatch.setattr(SqliteBulkLoader, "load_batches", load)
    config.write_text(json.dumps({"path": str(source)}))
    assert cli.main(args) == 0, capsys.readouterr().err
    assert_exactly_the_source(source, warehouse)
