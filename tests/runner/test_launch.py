"""Short commands (check, discover) of a connector installed beside this interpreter run in
threads of the sync's process, with the same result as a subprocess gives."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from dbkit.runner.launch import PIPE_BUFFER, Launcher, SubprocessConnector, ThreadConnector, close_quietly
from dbkit.runner.registry import ConnectorInfo, lookup
from dbkit.runner.request import Endpoint
from source_sqlite import SqliteSource


def sqlite_endpoint(tmp_path: Path) -> Endpoint:
    path = tmp_path / "source.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    info = lookup("source-sqlite")
    assert info is not None
    return Endpoint(info, {"path": str(path)})


def started_kinds(launcher: Launcher, command: str) -> tuple[type, list[dict[str, object]]]:
    kinds: list[type] = []
    start = launcher.start

    def spy(*args: object, **kwargs: object) -> object:
        running = start(*args, **kwargs)  # type: ignore[arg-type]
        kinds.append(type(running))
        return running

    launcher.start = spy  # type: ignore[method-assign,assignment]
    code, messages, junk, _ = launcher.run(command)
    assert (code, junk) == (0, [])
    return kinds[0], messages


def test_check_and_discover_run_in_threads_with_the_subprocess_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = sqlite_endpoint(tmp_path)
    results = {}
    for mode in ("thread", "subprocess"):
        if mode == "subprocess":
            monkeypatch.setenv("DBKIT_SHORT_COMMANDS", "subprocess")
        workdir = tmp_path / mode
        workdir.mkdir()
        launcher = Launcher(endpoint, workdir, in_process=False)
        assert launcher.short_in_process() is (mode == "thread")
        for command in ("check", "discover"):
            kind, messages = started_kinds(launcher, command)
            assert kind is (ThreadConnector if mode == "thread" else SubprocessConnector)
            results[mode, command] = [m for m in messages if m.get("type") != "LOG"]
    for command in ("check", "discover"):
        assert results["thread", command] == results["subprocess", command]
    assert results["thread", "check"] == [
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    ]


def test_a_connector_of_another_installation_or_without_a_module_runs_as_a_process(tmp_path: Path) -> None:
    endpoint = sqlite_endpoint(tmp_path)
    launcher = Launcher(endpoint, tmp_path, in_process=False)
    launcher.executable = "/elsewhere/bin/source-sqlite"  # found on PATH, not beside this Python
    assert not launcher.short_in_process()
    factory = ConnectorInfo("source-sqlite", "source", factory=SqliteSource)  # no module: tests' own
    launcher = Launcher(Endpoint(factory, endpoint.config), tmp_path, in_process=False)
    assert not launcher.short_in_process()


def _pipes_may_hold_a_block() -> bool:
    try:
        allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return False
    return hasattr(fcntl, "F_GETPIPE_SZ") and (allowed >= PIPE_BUFFER or os.geteuid() == 0)


@pytest.mark.skipif(not _pipes_may_hold_a_block(), reason="this system keeps pipes below 1 MiB")
def test_the_pipes_of_a_sync_hold_a_block(tmp_path: Path) -> None:
    """A source's output and a destination's input hold ``PIPE_BUFFER`` bytes, not Linux's 64 KiB
    (where ``/proc/sys/fs/pipe-max-size`` allows it, as it does by default)."""
    launcher = Launcher(sqlite_endpoint(tmp_path), tmp_path, in_process=False)
    for in_process in (False, True):
        running = launcher.start("spec", with_stdin=True, in_process=in_process)
        try:
            assert running.stdin is not None
            for pipe in (running.stdout, running.stdin):
                assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BUFFER
        finally:
            close_quietly(running.stdin)
            with running.stdout:
                running.stdout.read()
            running.wait()
