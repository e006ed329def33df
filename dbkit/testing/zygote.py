"""A fork server for connector runs in tests: each run is a fresh process without the import cost.

A connector process spends most of a short test run importing (SQLAlchemy, psycopg, PyMySQL,
pyarrow, the connector's own modules): about 0.5-1 CPU second, where the run itself takes
milliseconds. The test suites start thousands of such runs. The **zygote** is one process per test
process that imports all of that once and then forks a child for each run. The child is a real
process, as the platform would start it: its own pid, session and process group (a SIGKILL of the
group stops it), its stdin, stdout and stderr are the pipes the runner made, its working
directory and environment are the run's, and ``sys.argv`` is the command line. It runs the console
script's entry point and exits with its exit code, as ``python script`` would.

Only a console script of this Python environment is run this way (its entry point is known); any
other command, or every command when ``DBKIT_TEST_ZYGOTE=0``, is started with
:class:`subprocess.Popen` as before.

The protocol between a runner and its zygote: one Unix-socket connection per run. The runner sends
a JSON request (entry point, argv, environment, working directory) with the three pipe ends as
``SCM_RIGHTS`` file descriptors; the zygote answers one line with the child's pid, and a second
line with its exit code when the child ends (negative: the signal that ended it, as
:attr:`subprocess.Popen.returncode`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

ENV_VAR = "DBKIT_TEST_ZYGOTE"
"""Set to ``0`` to start every connector run with :class:`subprocess.Popen`."""

_PRELOAD = (
    "sqlalchemy",
    "psycopg",
    "pymysql",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "msgspec",
    "orjson",
    "jsonschema",
    "dbkit",
    "dbkit.entrypoint",
    "dbkit.source",
    "dbkit.destination",
)


# ------------------------------------------------------------------------------ runner side


def console_entry(executable: str) -> str | None:
    """``module:attr`` of the console script ``executable`` when it belongs to this Python
    environment (it sits next to ``sys.executable``), else None."""
    path = Path(executable)
    if path.parent != Path(sys.executable).parent:
        return None
    for ep in entry_points(group="console_scripts", name=path.name):
        return str(ep.value)
    return None


class ForkedProcess:
    """The parts of :class:`subprocess.Popen` the test runner uses, for a child of the zygote."""

    def __init__(
        self, conn: socket.socket, pid: int, stdin: IO[bytes] | None, stdout: IO[bytes], stderr: IO[bytes]
    ):
        self._conn = conn
        self._buffer = b""
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None

    def _read_code(self, block: bool) -> int | None:
        if self.returncode is not None:
            return self.returncode
        self._conn.setblocking(block)
        try:
            while b"\n" not in self._buffer:
                chunk = self._conn.recv(64)
                if not chunk:
                    raise RuntimeError(f"the zygote went away before child {self.pid} ended")
                self._buffer += chunk
        except BlockingIOError:
            return None
        self.returncode = int(self._buffer.split(b"\n", 1)[0])
        self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        return self._read_code(block=False)

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            self._conn.settimeout(timeout)
            try:
                code = self._read_code(block=True)
            except TimeoutError:
                raise subprocess.TimeoutExpired(str(self.pid), timeout) from None
        else:
            code = self._read_code(block=True)
        assert code is not None
        return code


class Zygote:
    """The fork server of this process (started on first use, stopped at exit)."""

    _lock = threading.Lock()
    _instance: Zygote | None = None

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="dbkit-zygote-")
        self.address = os.path.join(self._dir, "socket")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dbkit.testing.zygote", self.address],
            stdin=subprocess.PIPE,  # the zygote ends when this pipe closes (when this process ends)
            stdout=subprocess.DEVNULL,
        )
        atexit.register(self.stop)

    @classmethod
    def get(cls) -> Zygote:
        with cls._lock:
            if cls._instance is None or cls._instance._proc.poll() is not None:
                cls._instance = Zygote()
            return cls._instance

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        with contextlib.suppress(OSError):
            os.unlink(self.address)
            os.rmdir(self._dir)

    def _connect(self) -> socket.socket:
        deadline = 600  # the zygote's imports take about a second; under load, longer
        for _ in range(deadline):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(self.address)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
                if self._proc.poll() is not None:
                    raise RuntimeError(f"the zygote exited with {self._proc.returncode}") from None
                threading.Event().wait(0.05)
        raise RuntimeError("the zygote did not start listening within 30 s")

    def spawn(
        self,
        entry: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        stdin: bool,
    ) -> ForkedProcess:
        """Fork a child running ``entry`` with ``argv``; its stdout and stderr are pipes, and its
        stdin a pipe when ``stdin`` is true (else /dev/null)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
        try:
            conn = self._connect()
            request = json.dumps(
                {"entry": entry, "argv": list(argv), "env": dict(env), "cwd": os.fspath(cwd)}
            )
            socket.send_fds(conn, [request.encode() + b"\n"], [in_r, out_w, err_w])
            buffer = b""
            while b"\n" not in buffer:
                chunk = conn.recv(64)
                if not chunk:
                    raise RuntimeError("the zygote closed the connection without a pid")
                buffer += chunk
            line, rest = buffer.split(b"\n", 1)
            pid = int(line)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        process = ForkedProcess(
            conn,
            pid,
            os.fdopen(in_w, "wb") if stdin else None,
            os.fdopen(out_r, "rb"),
            os.fdopen(err_r, "rb"),
        )
        process._buffer = rest
        return process


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike[str], stdin: bool
) -> ForkedProcess | subprocess.Popen[bytes]:
    """A connector process for ``argv``: forked by the zygote when it can be, else a Popen.
    Either way in a new session, with stdout and stderr piped."""
    entry = console_entry(argv[0]) if os.environ.get(ENV_VAR, "1") != "0" else None
    if entry is not None:
        return Zygote.get().spawn(entry, argv, env, cwd, stdin)
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


# ------------------------------------------------------------------------------ zygote side


def _preload() -> None:
    for name in _PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    modules: set[str] = set()
    for ep in entry_points(group="dbkit.connectors"):
        modules.add(ep.value.split(":")[0])
    for module in sorted(modules):
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _child(entry: str, argv: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> None:
    """In the forked child: become the run's process and never return."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        module, _, attr = entry.partition(":")
        func: Any = importlib.import_module(module)
        for part in attr.split("."):
            func = getattr(func, part)
        try:
            result = func()
            code = _exit_code(SystemExit(result))
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def serve(address: str) -> None:
    """The zygote's loop: accept run requests, fork, report pids and exit codes."""
    _preload()
    os.environ.pop(ENV_VAR, None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address + ".tmp")
    os.rename(address + ".tmp", address)  # runners connect only once it listens
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    selector.register(0, selectors.EVENT_READ, "parent")
    children: dict[int, socket.socket] = {}
    import gc

    gc.freeze()  # what the zygote imported is shared with every child, never copied by the GC
    while True:
        for key, _ in selector.select():
            if key.data == "parent":
                if not os.read(0, 4096):  # the test process ended
                    for pid in children:
                        with contextlib.suppress(OSError):
                            os.killpg(pid, signal.SIGKILL)
                    return
            elif key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                _reap(children)
            else:
                conn, _ = listener.accept()
                try:
                    message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
                    while not message.endswith(b"\n"):
                        more = conn.recv(1 << 20)
                        if not more:
                            break
                        message += more
                    request = json.loads(message)
                except (OSError, ValueError):
                    conn.close()
                    continue
                if len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    conn.close()
                    for other in children.values():
                        other.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request["entry"], request["argv"], request["env"], request["cwd"], fds)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                with contextlib.suppress(OSError):
                    conn.sendall(b"%d\n" % pid)
        _reap(children)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
            conn.close()


def probe() -> int:
    """An entry point for the zygote's own tests: prints what the child is (pid, process group,
    session, working directory, argv, environment, stdin), then exits with ``argv[1]``."""
    sys.stdout.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "sid": os.getsid(0),
                "cwd": os.getcwd(),
                "argv": sys.argv,
                "env": dict(os.environ),
                "stdin": sys.stdin.read(),
            }
        )
        + "\n"
    )
    sys.stderr.write("to stderr")
    if sys.argv[1] == "raise":
        raise RuntimeError("a crash in the entry point")
    if sys.argv[1] == "sleep":
        sys.stdout.flush()
        threading.Event().wait(60)
    return int(sys.argv[1])


if __name__ == "__main__":
    serve(sys.argv[1])
