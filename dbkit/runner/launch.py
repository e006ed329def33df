"""Starting connector commands: as child processes (:class:`SubprocessConnector`) or, for
``--in-process``, as threads calling :func:`dbkit.entrypoint.launch` over OS pipes
(:class:`ThreadConnector`). Both exchange exactly the same bytes; :class:`Launcher` picks one
for a connector and passes its config, catalog and state as files in a private directory.

The short commands (``check``, ``discover``: :meth:`Launcher.run`) of a connector whose console
script is this interpreter's own run in threads too: the same code, without the second of CPU
a new interpreter spends importing it (three of them before every sync). ``read`` and
``write`` run in threads under the same condition when records travel as Arrow frames
(:func:`dbkit.runner.runner.in_threads`), else as processes of their own.
``DBKIT_SHORT_COMMANDS=subprocess`` runs all of them as processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from dbkit.entrypoint import Connector, launch
from dbkit.protocol.messages import dumps_exact
from dbkit.runner.output import parse_line
from dbkit.runner.registry import ConnectorNotInstalled, find_executable
from dbkit.runner.request import Endpoint

PIPE_BUFFER = 1 << 20
STDERR_LINES = 200
STOP_GRACE_SECONDS = 10.0


class Running(Protocol):
    """A started connector command: its stdout (and stdin for ``write``)."""

    stdout: IO[bytes]
    stdin: IO[bytes] | None

    def wait(self) -> int: ...

    def terminate(self) -> None:
        """Ask it to stop, without waiting (safe from any thread)."""

    def kill(self) -> None:
        """Make it stop at once, without waiting (safe from any thread)."""

    def stop(self) -> None:
        """Make it stop and wait for it (the main thread's cleanup)."""

    def alive(self) -> bool: ...

    def stderr_lines(self) -> list[str]: ...


def widen(*files: IO[bytes] | None) -> None:
    """Let each pipe hold :data:`PIPE_BUFFER` bytes (Linux; 64 KiB by default): a writer of
    blocks then waits for its reader, and wakes it, a sixteenth as often. Where the system says
    no (another OS, or a lower ``/proc/sys/fs/pipe-max-size``), the pipe stays as it is."""
    try:
        import fcntl  # not on Windows
    except ImportError:
        return
    for f in files:
        if f is not None:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BUFFER)


def _drain(stream: IO[bytes], sink: deque[str]) -> None:
    with contextlib.suppress(OSError, ValueError):
        for raw in stream:
            sink.append(raw.decode("utf-8", "replace").rstrip("\n"))


class SubprocessConnector:
    """A connector command as a child process leading a session (and process group) of its own:
    Ctrl-C in a terminal reaches only the runner, and stopping it signals its whole group, so
    that no process it started outlives it."""

    def __init__(self, argv: Sequence[str], with_stdin: bool) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=PIPE_BUFFER,
            start_new_session=True,
        )
        self.pgid = self.proc.pid  # a session leader's group id is its pid
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.stdout: IO[bytes] = self.proc.stdout
        self.stdin: IO[bytes] | None = self.proc.stdin
        widen(self.stdout, self.stdin)
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._drainer = threading.Thread(
            target=_drain, args=(self.proc.stderr, self._stderr), name="dbkit-sync-stderr", daemon=True
        )
        self._drainer.start()

    def wait(self) -> int:
        """Its exit code, once it exited; what is left of its process group is then stopped."""
        code = self.proc.wait()
        self._signal_group(signal.SIGKILL)
        self._drainer.join(timeout=5)
        return code

    def alive(self) -> bool:
        return self.proc.returncode is None

    def terminate(self) -> None:
        """SIGTERM to its process group; returns at once."""
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to its process group; returns at once."""
        if self.proc.returncode is None:
            self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM to its process group, then SIGKILL when it has not exited within a grace
        period; waits for it."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        self._signal_group(signal.SIGKILL)  # any process it left behind

    def _signal_group(self, signum: int) -> None:
        # a group id is not reused while the group has a member; an empty group is gone (ESRCH)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def stderr_lines(self) -> list[str]:
        return list(self._stderr)


class ThreadConnector:
    """A connector command run by :func:`dbkit.entrypoint.launch` in a thread, over OS pipes."""

    def __init__(self, connector: Connector, argv: Sequence[str], with_stdin: bool) -> None:
        out_r, out_w = os.pipe()
        self.stdout: IO[bytes] = os.fdopen(out_r, "rb", PIPE_BUFFER)
        self._child_out: BinaryIO = os.fdopen(out_w, "wb", PIPE_BUFFER)
        self.stdin: IO[bytes] | None = None
        self._child_in: BinaryIO | None = None
        if with_stdin:
            in_r, in_w = os.pipe()
            self._child_in = os.fdopen(in_r, "rb", PIPE_BUFFER)
            self.stdin = os.fdopen(in_w, "wb", PIPE_BUFFER)
        widen(self.stdout, self.stdin)
        self._code = 1
        self._stderr: list[str] = []
        self._output_lock = threading.Lock()  # its output is closed, or broken, once
        self._thread = threading.Thread(
            target=self._main, args=(connector, list(argv)), name=f"dbkit-{argv[0]}", daemon=True
        )
        self._thread.start()

    def _main(self, connector: Connector, argv: list[str]) -> None:
        try:
            self._code = launch(connector, argv, stdin=self._child_in, stdout=self._child_out)
        except SystemExit as exc:
            self._code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            self._code = 1
            self._stderr = traceback.format_exc().splitlines()
        finally:
            with self._output_lock:
                close_quietly(self._child_out, self._child_in)

    def wait(self) -> int:
        self._thread.join()
        return self._code

    def alive(self) -> bool:
        return self._thread.is_alive()

    def terminate(self) -> None:
        """Break its output pipe, from any thread: the reader of its output sees the output end
        at once, and the connector's next write fails (it then stops, as a process whose reader
        went away). A thread cannot be stopped otherwise: one inside a long query stops after it."""
        with self._output_lock:
            if self._child_out.closed:
                return
            fd = self._child_out.fileno()
            broken_r, broken_w = os.pipe()
            os.close(broken_r)
            try:  # the same descriptor number now writes into a pipe nobody reads
                os.dup2(broken_w, fd, inheritable=False)
            finally:
                os.close(broken_w)

    def kill(self) -> None:
        """As :meth:`terminate`: threads cannot be killed."""
        self.terminate()

    def stop(self) -> None:
        """Close our ends of its pipes (call it from the thread that reads them, or once nothing
        does): its next write fails, or its input ends, and ``launch`` returns; then join it."""
        # its input first: a write then sees its input end, commits and closes its output, which
        # lets any thread still reading that output let go of it (closing a file another thread
        # reads waits for that read)
        close_quietly(self.stdin, self.stdout)
        self._thread.join(STOP_GRACE_SECONDS)

    def stderr_lines(self) -> list[str]:
        return list(self._stderr)


class Launcher:
    """Starts commands of one connector, as subprocesses or in threads, with files in ``workdir``."""

    def __init__(self, endpoint: Endpoint, workdir: Path, in_process: bool) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.in_process = in_process
        kind = endpoint.info.kind
        self.config_path = workdir / f"{kind}-config.json"
        write_private(self.config_path, dumps_exact(endpoint.config))
        self.executable: str | None = None
        self._started: list[Running] = []
        self._lock = threading.Lock()
        self.prefix: list[str] = list(endpoint.info.command[1:])
        if not in_process:
            command = endpoint.info.command
            self.executable = find_executable(command[0] if command else endpoint.name)
        else:
            endpoint.info.create()  # fail early, with ConnectorNotInstalled, when it cannot be imported

    def short_in_process(self) -> bool:
        """Whether short commands run in threads here: with ``--in-process``, or when the console
        script found is the one beside this interpreter (the same installation, so the same code)
        of a connector this process can import."""
        if self.in_process:
            return True
        info = self.endpoint.info
        if (
            os.environ.get("DBKIT_SHORT_COMMANDS") == "subprocess"
            or info.module is None
            or info.command
            or self.executable is None
            or Path(self.executable).parent != Path(sys.executable).parent
        ):
            return False
        try:
            info.connector_class()
        except ConnectorNotInstalled:
            return False
        return True

    def start(self, command: str, *extra: str, with_stdin: bool = False, in_process: bool = False) -> Running:
        """Start ``command --config FILE EXTRA...`` (in a thread with ``in_process``, or
        ``--in-process``); the caller reads its stdout to the end (or stops it) and then waits
        for it."""
        argv = [command, "--config", str(self.config_path), *extra]
        running: Running
        if self.in_process or in_process:
            running = ThreadConnector(self.endpoint.info.create(), argv, with_stdin)
        else:
            assert self.executable is not None
            running = SubprocessConnector([self.executable, *self.prefix, *argv], with_stdin)
        with self._lock:
            self._started = [r for r in self._started if r.alive()]
            self._started.append(running)
        return running

    def running(self) -> list[Running]:
        """The commands it started that have not exited yet."""
        with self._lock:
            return [r for r in self._started if r.alive()]

    def terminate_all(self) -> None:
        """Ask every command still running to stop, without waiting (from any thread)."""
        for running in self.running():
            running.terminate()

    def kill_all(self) -> None:
        """Kill every command still running, without waiting (from any thread)."""
        for running in self.running():
            running.kill()

    def stop_all(self) -> None:
        """Stop every command still running and wait for it: no connector process (nor any
        process it started) outlives the sync."""
        for running in self.running():
            running.stop()

    def run(self, command: str, *extra: str) -> tuple[int, list[dict[str, Any]], list[str], list[str]]:
        """Run a short command to its end: (exit code, protocol messages, other stdout lines, stderr)."""
        running = self.start(command, *extra, in_process=self.short_in_process())
        messages: list[dict[str, Any]] = []
        junk: list[str] = []
        try:
            with running.stdout:
                for line in running.stdout:
                    parsed = parse_line(line)
                    if isinstance(parsed, dict):
                        messages.append(parsed)
                    elif line.strip():
                        junk.append(line.decode("utf-8", "replace").rstrip())
        except BaseException:
            running.stop()
            raise
        return running.wait(), messages, junk, running.stderr_lines()


def close_quietly(*ends: IO[bytes] | None) -> None:
    """Close each pipe end that is not None, ignoring one already closed or broken."""
    for end in ends:
        if end is not None:
            with contextlib.suppress(OSError, ValueError):
                end.close()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, readable by this user only (configs hold secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
