"""The test runner's fork server: each run is a process of its own, as a platform would start it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbkit.testing.runner import ConnectorRunner
from dbkit.testing.zygote import ForkedProcess, Zygote, console_entry, spawn

PROBE = "dbkit.testing.zygote:probe"


Probe = tuple[ForkedProcess, dict[str, Any], bytes]


def run_probe(tmp_path: Path, arg: str, stdin: bytes | None = None) -> Probe:
    proc = Zygote.get().spawn(
        PROBE, ["probe-script", arg], {"ONLY_THIS": "1"}, tmp_path, stdin=stdin is not None
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait()
    return proc, json.loads(out) if out else {}, err


def test_a_child_is_its_own_session_with_the_runs_cwd_env_argv_and_pipes(tmp_path: Path) -> None:
    proc, seen, err = run_probe(tmp_path, "0", stdin=b"the input")
    assert proc.returncode == 0
    assert seen["pid"] == proc.pid != os.getpid()
    assert seen["pgid"] == seen["sid"] == proc.pid  # a SIGKILL of the group reaches all of it
    assert seen["cwd"] == str(tmp_path)
    assert seen["argv"] == ["probe-script", "0"]
    assert seen["env"] == {"ONLY_THIS": "1"}  # the run's environment, nothing of the zygote's
    assert seen["stdin"] == "the input"
    assert err == b"to stderr"


def test_exit_codes_are_the_entry_points(tmp_path: Path) -> None:
    assert run_probe(tmp_path, "3")[0].returncode == 3
    proc, _, err = run_probe(tmp_path, "raise")
    assert proc.returncode == 1
    assert b"RuntimeError: a crash in the entry point" in err


def test_a_killed_child_reports_the_signal_and_poll_and_wait_timeout_do_not_block(tmp_path: Path) -> None:
    proc = Zygote.get().spawn(PROBE, ["probe", "sleep"], {}, tmp_path, stdin=False)
    assert proc.stdout.readline().startswith(b"{")  # it has started (its line is flushed)
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert proc.poll() == -signal.SIGKILL


def test_a_kill_right_after_the_spawn_reaches_the_child(tmp_path: Path) -> None:
    # the pid is given only once the child has its own process group
    for _ in range(20):
        proc = Zygote.get().spawn(PROBE, ["probe", "sleep"], {}, tmp_path, stdin=False)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL


def test_an_entry_point_that_cannot_be_imported_prints_why(tmp_path: Path) -> None:
    proc = Zygote.get().spawn("no_such_module_here:run", ["x"], {}, tmp_path, stdin=False)
    err = proc.stderr.read()
    assert proc.wait(timeout=10) == 1
    assert b"ModuleNotFoundError" in err
    assert b"no_such_module_here" in err


def test_a_bad_working_directory_fails_that_run_only(tmp_path: Path) -> None:
    proc = Zygote.get().spawn(PROBE, ["probe", "0"], {}, tmp_path / "missing", stdin=False)
    assert proc.wait(timeout=10) == 1
    assert b"FileNotFoundError" in proc.stderr.read()
    assert run_probe(tmp_path, "0")[0].returncode == 0  # the zygote serves the next run


def test_the_interpreter_exits_as_a_script_does(tmp_path: Path) -> None:
    # SystemExit leaves through the interpreter: an uncaught KeyboardInterrupt is a death by SIGINT
    proc, _, err = run_probe(tmp_path, "interrupt")
    assert proc.returncode == -signal.SIGINT
    assert b"KeyboardInterrupt" in err


def test_a_run_that_changes_interpreter_settings_is_not_forked(tmp_path: Path) -> None:
    script = str(Path(sys.executable).parent / "source-sqlite")
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    proc = spawn([script, "spec"], env=env, cwd=tmp_path, stdin=False)
    assert not isinstance(proc, ForkedProcess)
    proc.communicate()


def test_only_console_scripts_of_this_environment_are_forked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = str(Path(sys.executable).parent / "source-sqlite")
    assert console_entry(script) == "source_sqlite:run"
    assert console_entry("/usr/bin/env") is None
    forked = spawn([script, "spec"], env=dict(os.environ), cwd=tmp_path, stdin=False)
    assert isinstance(forked, ForkedProcess)
    assert b'"SPEC"' in forked.stdout.read()
    assert forked.wait(timeout=30) == 0
    monkeypatch.setenv("DBKIT_TEST_ZYGOTE", "0")
    plain = spawn([script, "spec"], env=dict(os.environ), cwd=tmp_path, stdin=False)
    assert not isinstance(plain, ForkedProcess)
    plain.communicate()


def test_forked_and_plain_runs_print_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forked = ConnectorRunner("source-sqlite", workdir=tmp_path).check(
        {"path": str(tmp_path / "nope" / "x.db")}
    )
    monkeypatch.setenv("DBKIT_TEST_ZYGOTE", "0")
    plain = ConnectorRunner("source-sqlite", workdir=tmp_path).check(
        {"path": str(tmp_path / "nope" / "x.db")}
    )
    assert forked.exit_code == plain.exit_code
    assert forked.connection_status == plain.connection_status
    assert [m["type"] for m in forked.messages] == [m["type"] for m in plain.messages]
