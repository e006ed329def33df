"""Running a throwaway server process from locally installed binaries.

A LocalServerProcess owns a temporary directory and (once started) one server process in its own
process group. Closing it stops the process (its stop signal, a wait, then SIGKILL to the group) and
removes the directory. Every live one is closed at interpreter exit; a run that died without running
atexit handlers (SIGKILL, os._exit) leaves an owner file behind, and the next run's first
LocalServerProcess reaps such leftovers.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DIR_PREFIX = "dbkit-server-"
OWNER_FILE = "dbkit-owner.json"
LOG_TAIL_LINES = 40


class LocalServerError(RuntimeError):
    """A throwaway server could not be set up or started; the message carries the log tail."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


@dataclass(frozen=True)
class RunAs:
    """An OS user to run server commands as (used when we are root)."""

    user: str
    uid: int
    gid: int
    home: str


def run_as_when_root(os_user: str) -> RunAs | None:
    """``os_user`` when this process is root, None otherwise; LookupError when root and no such user."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd  # POSIX only; imported here so this module imports anywhere

    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise LookupError(
            f"running as root and there is no {os_user!r} OS user to run the server as"
        ) from None
    return RunAs(user=os_user, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (callers retry if something takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail_file(path: Path, lines: int = LOG_TAIL_LINES, *, start: int = 0) -> str:
    """The last ``lines`` lines of ``path`` from byte offset ``start`` (empty when unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _process_kwargs(run_as: RunAs | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    environ = dict(os.environ if env is None else env)
    kwargs: dict[str, Any] = {"env": environ}
    if run_as is not None:
        environ.update(HOME=run_as.home, USER=run_as.user, LOGNAME=run_as.user)
        kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
    return kwargs


def run_checked(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> None:
    """Run a setup command (initdb, install-db) with its output appended to ``log_path``."""
    args = [os.fspath(arg) for arg in argv]
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        try:
            completed = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                timeout=timeout,
                check=False,
                **_process_kwargs(run_as, env),
            )
        except subprocess.TimeoutExpired:
            raise LocalServerError(
                f"{args[0]} did not finish within {timeout:g}s; last lines of {log_path}:\n"
                + tail_file(log_path, start=start)
            ) from None
    if completed.returncode != 0:
        raise LocalServerError(
            f"{' '.join(args)} exited with code {completed.returncode}; last lines of {log_path}:\n"
            + tail_file(log_path, start=start)
        )


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _temp_base(for_other_user: bool) -> Path:
    base = Path(tempfile.gettempdir())
    # Unix socket paths are limited to ~107 bytes, and another OS user must be able to reach the dir.
    too_long = len(str(base)) > 60
    unreachable = for_other_user and not _world_traversable(base)
    if (too_long or unreachable) and Path("/tmp").is_dir():  # noqa: S108 - a fallback base, not a file
        return Path("/tmp")  # noqa: S108
    return base


class LocalServerProcess:
    """A temporary directory plus the server process started from it."""

    def __init__(self, label: str, *, run_as: RunAs | None = None) -> None:
        _reap_stale_once()
        base = _temp_base(run_as is not None)
        self.label = label
        self.run_as = run_as
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{label}-", dir=base))
        self.log_path = self.workdir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_signal = signal.SIGTERM
        self._closed = False
        self._lock = threading.Lock()
        try:
            if run_as is not None:
                os.chown(self.workdir, run_as.uid, run_as.gid)
            self._write_owner_file()
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        _register(self)

    # -- state -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def closed(self) -> bool:
        return self._closed

    def log_tail(self, lines: int = LOG_TAIL_LINES, *, start: int = 0) -> str:
        return tail_file(self.log_path, lines, start=start)

    def _log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def _write_owner_file(self) -> None:
        owner = {
            "owner_pid": os.getpid(),
            "hostname": socket.gethostname(),
            "server_pid": self.pid,
            "stop_signal": int(self._stop_signal),
        }
        (self.workdir / OWNER_FILE).write_text(json.dumps(owner))

    # -- running ---------------------------------------------------------------------------------

    def run_setup(self, argv: Sequence[str | os.PathLike[str]], *, timeout: float = 120.0) -> None:
        """Run a one-off setup command as the server's user, logging next to the server log."""
        run_checked(
            argv, log_path=self.workdir / "setup.log", run_as=self.run_as, cwd=self.workdir, timeout=timeout
        )

    def start(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the server process (its output goes to ``log_path``)."""
        if self._closed:
            raise RuntimeError(f"{self.workdir} is closed")
        if self.running:
            raise RuntimeError(f"a server is already running from {self.workdir}")
        self._stop_signal = stop_signal
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [os.fspath(arg) for arg in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                process_group=0,  # own group: a terminal's Ctrl-C reaches us, and we stop it cleanly
                **_process_kwargs(self.run_as, env),
            )
        self._write_owner_file()

    def wait_until_ready(
        self,
        probe: Callable[[], object],
        *,
        timeout: float,
        what: str,
        log_start: int = 0,
    ) -> None:
        """Call ``probe`` until it stops raising; fail early if the process exits, or at ``timeout``."""
        process = self._process
        if process is None:
            raise RuntimeError("wait_until_ready before start")
        deadline = time.monotonic() + timeout
        delay = 0.05
        last_error: Exception | None = None
        while True:
            code = process.poll()
            if code is not None:
                tail = self.log_tail(start=log_start)
                raise LocalServerError(
                    f"{what} exited with code {code} before accepting connections;"
                    f" last lines of {self.log_path}:\n{tail}",
                    port_in_use="already in use" in tail.lower(),
                )
            try:
                probe()
            except Exception as exc:
                last_error = exc
            else:
                return
            if time.monotonic() >= deadline:
                raise LocalServerError(
                    f"{what} did not accept connections within {timeout:g}s (last error: {last_error});"
                    f" last lines of {self.log_path}:\n{self.log_tail(start=log_start)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def start_on_free_port(
        self,
        build_argv: Callable[[int], Sequence[str | os.PathLike[str]]],
        probe: Callable[[int], object],
        *,
        what: str,
        timeout: float,
        stop_signal: signal.Signals = signal.SIGTERM,
        attempts: int = 3,
    ) -> int:
        """Start on a free port and wait until ready, retrying when another process grabbed the port."""
        for attempt in range(1, attempts + 1):
            port = free_port()
            log_start = self._log_size()
            self.start(build_argv(port), stop_signal=stop_signal)
            try:
                self.wait_until_ready(
                    functools.partial(probe, port), timeout=timeout, what=what, log_start=log_start
                )
            except LocalServerError as exc:
                self.stop()
                if exc.port_in_use and attempt < attempts:
                    logger.info("port %d was taken before %s could bind it; retrying", port, what)
                    continue
                raise
            return port
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the process: its stop signal, up to ``timeout`` seconds, then SIGKILL to its group."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(self._stop_signal)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %d) did not stop within %.0fs; killing it", self.label, process.pid, timeout
            )
            # The leader is not reaped yet, so its pid (= the group id) cannot have been reused.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def close(self) -> None:
        """Stop the process and remove the directory (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            _unregister(self)

    def __repr__(self) -> str:
        return f"<LocalServerProcess {self.label} pid={self.pid} dir={self.workdir}>"


# -- registry: stop everything at exit ---------------------------------------------------------------

_live: dict[int, LocalServerProcess] = {}
_live_lock = threading.Lock()


def _register(proc: LocalServerProcess) -> None:
    with _live_lock:
        _live[id(proc)] = proc


def _unregister(proc: LocalServerProcess) -> None:
    with _live_lock:
        _live.pop(id(proc), None)


def close_all_local_servers() -> None:
    """Stop and remove every LocalServerProcess of this interpreter that is still open."""
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        try:
            proc.close()
        except Exception as exc:  # keep going: the others must stop too
            logger.warning("could not close %r: %s", proc, exc)


atexit.register(close_all_local_servers)


# -- reaping leftovers of runs that died without atexit ----------------------------------------------

_reaped = False
_reap_lock = threading.Lock()


def _reap_stale_once() -> None:
    global _reaped
    with _reap_lock:
        if _reaped:
            return
        _reaped = True
    try:
        reap_stale_servers()
    except Exception as exc:  # reaping is a courtesy; never fail a test run over it
        logger.warning("could not reap stale dbkit servers: %s", exc)


def _cmdline_mentions(pid: int, text: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return text.encode() in cmdline


def reap_stale_servers(base: Path | None = None) -> list[Path]:
    """Stop servers and remove directories left by dbkit runs whose process is gone.

    Only directories named ``dbkit-server-*`` holding an owner file written on this host are
    considered, and a server pid is signalled only if its command line names that directory.
    """
    removed: list[Path] = []
    hostname = socket.gethostname()
    bases = {base} if base is not None else {_temp_base(False), _temp_base(True)}
    candidates = sorted(path for each in bases for path in each.glob(f"{DIR_PREFIX}*"))
    for directory in candidates:
        try:
            owner = json.loads((directory / OWNER_FILE).read_text())
            owner_pid = int(owner["owner_pid"])
            server_pid = owner.get("server_pid")
            stop_signal = int(owner.get("stop_signal", signal.SIGTERM))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner.get("hostname") != hostname or owner_pid == os.getpid() or _pid_alive(owner_pid):
            continue
        if isinstance(server_pid, int) and _cmdline_mentions(server_pid, str(directory)):
            logger.info("stopping stale server pid %d left in %s", server_pid, directory)
            with contextlib.suppress(ProcessLookupError):
                os.kill(server_pid, stop_signal)
            deadline = time.monotonic() + 10
            while _pid_alive(server_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _cmdline_mentions(server_pid, str(directory)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server_pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed
