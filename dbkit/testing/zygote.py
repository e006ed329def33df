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
other command, a run whose environment changes what the interpreter decides at start-up
(``PYTHON*``, ``LANG``, ``LC_*``, ``TZ``), or every command when ``DBKIT_TEST_ZYGOTE=0``, is
started with :class:`subprocess.Popen` as before. What a fork cannot give: every run of one test
process has the same string hash seed, and finds the connectors' modules already imported; a test
of either runs with ``DBKIT_TEST_ZYGOTE=0``.

The protocol between a runner and its zygote: one Unix-socket connection per run. The runner sends
a JSON request (entry point, argv, environment, working directory) with the three pipe ends as
``SCM_RIGHTS`` file descriptors; the zygote answers one line with the child's pid, and a second
line with its exit code when the child ends (negative: the signal that ended it, as
:attr:`subprocess.Popen.returncode`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

ENV_VAR = "DBKIT_TEST_ZYGOTE"
"""Set to ``0`` to start every connector run with :class:`subprocess.Popen`."""

_STARTUP_ENV = ("PYTHON", "LANG", "LC_", "TZ")
"""Environment variables (prefixes) the interpreter reads when it starts: a run that changes one
is not forked."""


def _startup_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_ENV) and k != ENV_VAR}


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


@functools.cache
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

    def _read_code(self, timeout: float | None) -> int | None:
        """The exit code once the child ended; None when it has not within ``timeout`` seconds
        (0: do not wait)."""
        if self.returncode is not None:
            return self.returncode
        self._conn.settimeout(timeout)
        try:
            while b"\n" not in self._buffer:
                chunk = self._conn.recv(64)
                if not chunk:
                    raise RuntimeError(f"the zygote went away before child {self.pid} ended")
                self._buffer += chunk
        except (BlockingIOError, TimeoutError):
            return None
        self.returncode = int(self._buffer.split(b"\n", 1)[0])
        self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        return self._read_code(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_code(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        return code


class Zygote:
    """The fork server of this process (started on first use, stopped at exit)."""

    _lock = threading.Lock()
    _instance: Zygote | None = None

    def __init__(self) -> None:
        self.address = f"\0dbkit-zygote-{os.getpid()}-{uuid.uuid4().hex}"  # abstract: no file
        self.startup_env = _startup_env(os.environ)
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "dbkit.testing.zygote", self.address[1:]],
            stdin=subprocess.PIPE,  # the zygote ends when this pipe closes (when this process ends)
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C of the test run is not the zygote's to take
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

    def _connect(self) -> socket.socket:
        # the zygote's imports take about a second; under a heavy load, several
        for _ in range(1200):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(self.address)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
                if self._proc.poll() is not None:
                    raise RuntimeError(f"the zygote exited with {self._proc.returncode}") from None
                threading.Event().wait(0.05)
        raise RuntimeError("the zygote did not start listening within 60 s")

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
        mine: list[int] = []  # the ends this process keeps
        theirs: list[int] = []  # the child's ends: closed here once sent
        conn: socket.socket | None = None
        try:
            out_r, out_w = os.pipe()
            mine.append(out_r)
            theirs.append(out_w)
            err_r, err_w = os.pipe()
            mine.append(err_r)
            theirs.append(err_w)
            if stdin:
                in_r, in_w = os.pipe()
                mine.append(in_w)
            else:
                in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
            theirs.insert(0, in_r)
            conn = self._connect()
            request = json.dumps(
                {"entry": entry, "argv": list(argv), "env": dict(env), "cwd": os.fspath(cwd)}
            ).encode()
            socket.send_fds(conn, [request[:1]], theirs)
            conn.sendall(request[1:] + b"\n")
            buffer = b""
            while b"\n" not in buffer:
                chunk = conn.recv(64)
                if not chunk:
                    raise RuntimeError("the zygote closed the connection without a pid")
                buffer += chunk
            line, rest = buffer.split(b"\n", 1)
            if line.startswith(b"E"):
                raise OSError(f"the zygote could not start {argv[0]}: {line[1:].decode(errors='replace')}")
            pid = int(line)
        except BaseException:
            for fd in mine:
                os.close(fd)
            if conn is not None:
                conn.close()
            raise
        finally:
            for fd in theirs:
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
        zygote = Zygote.get()
        if _startup_env(env) == zygote.startup_env:
            return zygote.spawn(entry, argv, env, cwd, stdin)
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


def _child(request: dict[str, Any], fds: list[int], ready: int) -> None:
    """In the forked child: become the run's process, then run the entry point and leave the
    interpreter as ``python script`` does (``SystemExit`` unwinds to the interpreter's own exit:
    stdio flushed, non-daemon threads joined, atexit handlers, death by SIGINT on an uncaught
    KeyboardInterrupt)."""
    try:
        os.setsid()
        os.close(ready)  # the zygote answers with the pid only now: a kill of the group reaches it
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        argv: list[str] = request["argv"]
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))  # as a script's sys.path[0]
        module, _, attr = str(request["entry"]).partition(":")
        func: Any = importlib.import_module(module)
        for part in attr.split("."):
            func = getattr(func, part)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(1)
    raise SystemExit(func())


def serve(address: str) -> None:
    """The zygote's loop: accept run requests, fork, report pids and exit codes."""
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + address)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    selector.register(0, selectors.EVENT_READ, "parent")
    children: dict[int, socket.socket] = {}
    gc.freeze()  # what the zygote imported is shared with every child, never copied by the GC
    zygote = os.getpid()
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "parent":
                    if not os.read(0, 4096):  # the test process ended
                        return None
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    _reap(children)
                else:
                    conn, _ = listener.accept()
                    try:
                        forked = _fork(conn, children)
                    except Exception as exc:  # one bad request or failed fork: that run only
                        with contextlib.suppress(OSError):
                            conn.sendall(b"E%s\n" % str(exc).replace("\n", " ").encode())
                        conn.close()
                        continue
                    if forked is None:  # in the child
                        selector.close()
                        listener.close()
                        for other in children.values():
                            other.close()
                        os.close(wake_r)
                        os.close(wake_w)
                        return _run_child(conn)
            _reap(children)
    finally:
        if os.getpid() == zygote:
            for pid in children:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(OSError):
                    os.waitpid(pid, 0)


_pending: dict[str, Any] = {}


def _fork(conn: socket.socket, children: dict[int, socket.socket]) -> int | None:
    """Read one request from ``conn`` and fork its child; the child's pid (in the zygote, after the
    child has its own session), or None in the child."""
    message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    try:
        while not message.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                raise ValueError("a request without its end")
            message += more
        request = json.loads(message)
        if len(fds) != 3 or not isinstance(request, dict):
            raise ValueError("a request without its three file descriptors")
        for key in ("entry", "argv", "env", "cwd"):
            if key not in request:
                raise ValueError(f"a request without {key!r}")
        sys.stdout.flush()
        sys.stderr.flush()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:
        os.close(ready_r)
        _pending.update(request=request, fds=fds, ready=ready_w)
        return None
    os.close(ready_w)
    for fd in fds:
        os.close(fd)
    os.read(ready_r, 1)  # EOF once the child has its session (or has died)
    os.close(ready_r)
    children[pid] = conn
    with contextlib.suppress(OSError):
        conn.sendall(b"%d\n" % pid)
    return pid


def _run_child(conn: socket.socket) -> None:
    conn.close()
    _child(_pending["request"], _pending["fds"], _pending["ready"])


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
    if sys.argv[1] == "interrupt":
        raise KeyboardInterrupt
    if sys.argv[1] == "sleep":
        sys.stdout.flush()
        threading.Event().wait(60)
    return int(sys.argv[1])


if __name__ == "__main__":
    serve(sys.argv[1])
