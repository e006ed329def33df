"""A throwaway OpenSSH server on 127.0.0.1, for testing connectors' SSH tunnels for real.

``ssh_server`` (session fixture) starts ``sshd`` from the installed binary with its own host key
and config in a temporary directory, on a free port, and offers key login for ``root`` and
password login for a test user of this process (created, and removed at the end; needs root).
It is skipped with the reason when ``sshd`` is not installed or we are not root
(``scripts/services.sh`` installs ``openssh-server`` for the project's own CI).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
USER_PREFIX = "dbkit-tun"


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    host_key: str  # the server's ed25519 public host key line ("ssh-ed25519 AAAA...")
    host_key_rsa: str  # its RSA host key line (servers usually have several kinds)
    key_user: str
    private_key: str  # OpenSSH private key accepted for key_user
    password_user: str
    password: str
    directory: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


def _create_user(password: str) -> str:
    """A system user of our own process (parallel test workers each get theirs), removed later."""
    user = f"{USER_PREFIX}{os.getpid()}"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}", text=True, check=True)
    return user


def _remove_user(user: str) -> None:
    subprocess.run(["userdel", "--force", user], capture_output=True)


def unavailable_reason() -> str | None:
    if not Path(SSHD).exists():
        return f"{SSHD} is not installed (apt-get install openssh-server; scripts/services.sh does it)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    if os.geteuid() != 0:
        return "a throwaway sshd for tunnel tests needs root (it logs users in)"
    return None


def start_sshd() -> tuple[SshServer, subprocess.Popen[bytes]]:
    directory = Path(tempfile.mkdtemp(prefix="dbkit-sshd-"))
    _keygen(directory / "host_key")
    _keygen(directory / "host_key_rsa", "rsa")
    _keygen(directory / "user_key")
    shutil.copy(directory / "user_key.pub", directory / "authorized_keys")
    password = "pw-" + secrets.token_urlsafe(12)
    user = _create_user(password)
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {directory / "host_key"}
HostKey {directory / "host_key_rsa"}
PidFile {directory / "sshd.pid"}
AuthorizedKeysFile {directory / "authorized_keys"}
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding yes
PermitOpen any
LogLevel ERROR
"""
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"sshd exited at once: {err}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start listening within 15 s")
    server = SshServer(
        host="127.0.0.1",
        port=port,
        host_key=" ".join((directory / "host_key.pub").read_text().split()[:2]),
        host_key_rsa=" ".join((directory / "host_key_rsa.pub").read_text().split()[:2]),
        key_user="root",
        private_key=(directory / "user_key").read_text(),
        password_user=user,
        password=password,
        directory=directory,
    )
    return server, proc


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SshServer]:
    """A running throwaway sshd (see the module doc); skipped with the reason where impossible."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server, proc = start_sshd()
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(server.directory, ignore_errors=True)
        _remove_user(server.password_user)
