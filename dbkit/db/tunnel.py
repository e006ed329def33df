"""SSH tunnels: reach a database through a bastion host, the way Airbyte's connectors do.

:class:`SshTunnel` opens one SSH connection (paramiko) and listens on ``127.0.0.1`` (never on
another interface) on a free port; every connection to that port is forwarded through the SSH
connection to the database's host and port, as seen from the bastion. The database client then
connects to ``127.0.0.1:<local_port>``.

The server's host key is always checked against the key given in the config
(``host_key``: an OpenSSH public key line such as ``ssh-ed25519 AAAA...``, or a known_hosts line).
Without one the tunnel refuses to open and the error shows the key the server presented, so the
user can verify it and paste it: trust on first use is the user's decision, never ours.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import select
import socket
import socketserver
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr

from dbkit.config import ConnectorConfig, field, secret_field
from dbkit.errors import ConfigError, TransientError
from dbkit.threads import context_thread

if TYPE_CHECKING:  # paramiko loads in ~40 ms: only a connector that opens a tunnel pays for it
    import paramiko

BUFFER = 64 * 1024


@dataclass(frozen=True)
class TunnelSettings:
    """Where the bastion is and how to authenticate to it (exactly one of key / password)."""

    host: str
    port: int
    user: str
    host_key: str | None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    password: str | None = None
    connect_timeout: float = 20.0
    keepalive_seconds: int = 30


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_host_key(text: str) -> paramiko.PKey:
    """An OpenSSH public key line (``type base64 [comment]``) or known_hosts line (``host type base64``)."""
    import paramiko

    parts = text.strip().split()
    for i in range(len(parts) - 1):
        kind, blob = parts[i], parts[i + 1]
        if kind.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
            except Exception as exc:
                raise ConfigError(f"the configured SSH host key is not a valid {kind} key: {exc}") from None
    raise ConfigError(
        "the configured SSH host key must be an OpenSSH public key line, e.g. 'ssh-ed25519 AAAA...' "
        "(as in the server's /etc/ssh/ssh_host_*_key.pub or a known_hosts entry)"
    )


def _private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    import paramiko

    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise ConfigError("the SSH private key is encrypted: give its passphrase") from None
        except (paramiko.SSHException, ValueError):
            continue
    hint = " (or the passphrase is wrong)" if passphrase else ""
    raise ConfigError(f"the SSH private key could not be read: OpenSSH or PEM format expected{hint}")


def _no_configured_key_policy() -> paramiko.MissingHostKeyPolicy:
    """Refuse a server whose key is not configured, showing the key it presented."""
    import paramiko

    class NoConfiguredKey(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            presented = f"{key.get_name()} {key.get_base64()}"
            raise ConfigError(
                f"the SSH server {hostname} is not trusted yet: no host key is configured. It presented "
                f"{key.get_name()} {fingerprint(key)}; if that is your server's key, set the tunnel's "
                f"host key to: {presented}"
            )

    return NoConfiguredKey()


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Forwarder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, transport: paramiko.Transport, remote: tuple[str, int]) -> None:
        self.transport = transport
        self.remote = remote
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Forwarder

    def handle(self) -> None:
        peer = self.request.getpeername()
        try:
            channel = self.server.transport.open_channel("direct-tcpip", self.server.remote, peer)
        except Exception:
            return  # the client sees the connection close, and its driver reports it
        try:
            _pump(self.request, channel)
        finally:
            channel.close()


def _pump(sock: socket.socket, channel: Any) -> None:
    while True:
        readable, _, _ = select.select([sock, channel], [], [], 5.0)
        if sock in readable:
            data = sock.recv(BUFFER)
            if not data:
                return
            channel.sendall(data)
        if channel in readable:
            data = channel.recv(BUFFER)
            if not data:
                return
            sock.sendall(data)
        if channel.closed:
            return


class SshTunnel:
    """A running tunnel to ``remote_host:remote_port``; use as a context manager."""

    def __init__(self, settings: TunnelSettings, remote_host: str, remote_port: int) -> None:
        self.settings = settings
        self.remote = (remote_host, remote_port)
        self._client: paramiko.SSHClient | None = None
        self._server: _Forwarder | None = None
        self._thread: threading.Thread | None = None

    @property
    def local_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the tunnel is not open")
        port: int = self._server.server_address[1]
        return port

    @property
    def local_host(self) -> str:
        return "127.0.0.1"

    def open(self) -> SshTunnel:
        import paramiko

        s = self.settings
        expected = parse_host_key(s.host_key) if s.host_key else None
        client = paramiko.SSHClient()
        if expected is not None:
            # known to paramiko: it negotiates this key's type and refuses any other key
            client.get_host_keys().add(_known_host_name(s.host, s.port), expected.get_name(), expected)
        client.set_missing_host_key_policy(_no_configured_key_policy())
        key = _private_key(s.private_key, s.private_key_passphrase) if s.private_key else None
        if key is None and s.password is None:
            raise ConfigError("the SSH tunnel needs a private key or a password")
        try:
            client.connect(
                s.host,
                port=s.port,
                username=s.user,
                pkey=key,
                password=s.password if key is None else None,
                timeout=s.connect_timeout,
                banner_timeout=s.connect_timeout,
                auth_timeout=s.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except ConfigError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            assert expected is not None
            raise ConfigError(
                f"the SSH server {s.host} presented {exc.key.get_name()} {fingerprint(exc.key)}, which is "
                f"not the configured host key ({expected.get_name()} {fingerprint(expected)}): the server "
                "was replaced or someone is in between; check the key with your administrator"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            method = "key" if key is not None else "password"
            raise ConfigError(
                f"the SSH server {s.host}:{s.port} refused user {s.user!r} with the configured {method}"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise TransientError(
                f"could not open the SSH tunnel to {s.host}:{s.port}: {exc}", internal=repr(exc)
            ) from None
        transport = client.get_transport()
        if transport is None:  # pragma: no cover - connect() succeeded
            client.close()
            raise TransientError(f"the SSH connection to {s.host}:{s.port} closed at once")
        transport.set_keepalive(s.keepalive_seconds)
        self._client = client
        self._server = _Forwarder(transport, self.remote)
        self._thread = context_thread(self._server.serve_forever, name="dbkit-ssh-tunnel")
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def __enter__(self) -> SshTunnel:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------- config


class NoTunnel(ConnectorConfig):
    """Connect directly."""

    model_config = ConfigDict(title="No tunnel", extra="forbid", frozen=True)
    tunnel_method: Literal["NO_TUNNEL"] = field("NO_TUNNEL", title="Tunnel method")


class _SshTunnelBase(ConnectorConfig):
    tunnel_host: str = field(
        title="SSH host", description="The bastion host the tunnel goes through.", order=1
    )
    tunnel_port: int = field(22, title="SSH port", ge=1, le=65535, order=2)
    tunnel_user: str = field(title="SSH user", order=3)
    tunnel_host_key: str = field(
        "",
        title="SSH host key",
        description=(
            "The bastion's public host key, as in its /etc/ssh/ssh_host_*_key.pub or a known_hosts line "
            "(e.g. 'ssh-ed25519 AAAA...'). It is always checked; leave empty once to be shown the key "
            "the server presents."
        ),
        order=6,
    )


class SshKeyTunnel(_SshTunnelBase):
    """Through an SSH bastion, logging in with a private key."""

    model_config = ConfigDict(title="SSH tunnel, key authentication", extra="forbid", frozen=True)
    tunnel_method: Literal["SSH_KEY_AUTH"] = field("SSH_KEY_AUTH", title="Tunnel method")
    ssh_key: SecretStr = secret_field(title="SSH private key", description="OpenSSH or PEM format.", order=4)
    ssh_key_passphrase: SecretStr = secret_field(
        title="Private key passphrase",
        description="Only for an encrypted key.",
        default=SecretStr(""),
        order=5,
    )

    def settings(self) -> TunnelSettings:
        return TunnelSettings(
            host=self.tunnel_host,
            port=self.tunnel_port,
            user=self.tunnel_user,
            host_key=self.tunnel_host_key or None,
            private_key=self.ssh_key.get_secret_value(),
            private_key_passphrase=self.ssh_key_passphrase.get_secret_value() or None,
        )


class SshPasswordTunnel(_SshTunnelBase):
    """Through an SSH bastion, logging in with a password."""

    model_config = ConfigDict(title="SSH tunnel, password authentication", extra="forbid", frozen=True)
    tunnel_method: Literal["SSH_PASSWORD_AUTH"] = field("SSH_PASSWORD_AUTH", title="Tunnel method")
    tunnel_user_password: SecretStr = secret_field(title="SSH password", order=4)

    def settings(self) -> TunnelSettings:
        return TunnelSettings(
            host=self.tunnel_host,
            port=self.tunnel_port,
            user=self.tunnel_user,
            host_key=self.tunnel_host_key or None,
            password=self.tunnel_user_password.get_secret_value(),
        )


TunnelMethod = Annotated[NoTunnel | SshKeyTunnel | SshPasswordTunnel, Field(discriminator="tunnel_method")]


def open_tunnel(
    method: NoTunnel | SshKeyTunnel | SshPasswordTunnel, host: str, port: int
) -> SshTunnel | None:
    """Open the configured tunnel to ``host:port`` (None for a direct connection)."""
    if isinstance(method, NoTunnel):
        return None
    return SshTunnel(method.settings(), host, port).open()
