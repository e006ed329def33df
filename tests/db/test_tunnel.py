"""SSH tunnels through a real, throwaway OpenSSH server to the local PostgreSQL service."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from dbkit.db.tunnel import SshTunnel, TunnelSettings
from dbkit.errors import ConfigError, TransientError
from dbkit.testing.servers import DatabaseServer
from dbkit.testing.sshd import SshServer

pytestmark = pytest.mark.postgres


def _query_through(tunnel: SshTunnel, server: DatabaseServer) -> int:
    with psycopg.connect(
        host=tunnel.local_host,
        port=tunnel.local_port,
        user=server.user,
        dbname="postgres",
        connect_timeout=10,
    ) as conn:
        value = conn.execute("SELECT 41 + 1").fetchone()
        assert value is not None
        return int(value[0])


def _settings(ssh: SshServer, **overrides: object) -> TunnelSettings:
    base: dict[str, object] = {
        "host": ssh.host,
        "port": ssh.port,
        "user": ssh.key_user,
        "host_key": ssh.host_key,
        "private_key": ssh.private_key,
    }
    base.update(overrides)
    return TunnelSettings(**base)  # type: ignore[arg-type]


def test_key_tunnel_reaches_the_database(ssh_server: SshServer, postgres_server: DatabaseServer) -> None:
    with SshTunnel(_settings(ssh_server), postgres_server.host, postgres_server.port) as tunnel:
        assert tunnel.local_host == "127.0.0.1"
        assert _query_through(tunnel, postgres_server) == 42
        # several connections at once share the one SSH connection
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(lambda _: _query_through(tunnel, postgres_server), range(8))) == [42] * 8


def test_a_configured_rsa_key_is_used_though_the_server_prefers_another(
    ssh_server: SshServer, postgres_server: DatabaseServer
) -> None:
    """A server has several host keys; the configured one (here RSA) is the one negotiated."""
    with SshTunnel(
        _settings(ssh_server, host_key=ssh_server.host_key_rsa), postgres_server.host, postgres_server.port
    ) as tunnel:
        assert _query_through(tunnel, postgres_server) == 42


def test_password_tunnel_reaches_the_database(ssh_server: SshServer, postgres_server: DatabaseServer) -> None:
    settings = _settings(
        ssh_server, user=ssh_server.password_user, private_key=None, password=ssh_server.password
    )
    with SshTunnel(settings, postgres_server.host, postgres_server.port) as tunnel:
        assert _query_through(tunnel, postgres_server) == 42


def test_the_local_end_listens_on_loopback_only(
    ssh_server: SshServer, postgres_server: DatabaseServer
) -> None:
    with SshTunnel(_settings(ssh_server), postgres_server.host, postgres_server.port) as tunnel:
        addresses = {
            a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None) if a[0] == socket.AF_INET
        }
        for address in addresses - {"127.0.0.1"}:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((address, tunnel.local_port)) != 0, f"reachable on {address}"


def test_no_host_key_refuses_and_shows_the_key_to_trust(ssh_server: SshServer) -> None:
    with pytest.raises(ConfigError) as caught:
        SshTunnel(_settings(ssh_server, host_key=None), "127.0.0.1", 5432).open()
    assert ssh_server.host_key in caught.value.message
    assert "SHA256:" in caught.value.message


def test_a_different_host_key_is_refused(ssh_server: SshServer) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    with pytest.raises(ConfigError, match="not the configured host key"):
        SshTunnel(_settings(ssh_server, host_key=other), "127.0.0.1", 5432).open()


def test_a_wrong_password_is_a_config_error_without_the_password(ssh_server: SshServer) -> None:
    settings = _settings(ssh_server, user=ssh_server.password_user, private_key=None, password="wrong-pw-42")
    with pytest.raises(ConfigError) as caught:
        SshTunnel(settings, "127.0.0.1", 5432).open()
    assert "refused" in caught.value.message
    assert "wrong-pw-42" not in caught.value.message


def test_an_unreachable_bastion_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = TunnelSettings("127.0.0.1", port, "root", host_key=None, password="x", connect_timeout=3)
    with pytest.raises(TransientError, match="could not open the SSH tunnel"):
        SshTunnel(settings, "127.0.0.1", 5432).open()


def test_malformed_keys_are_config_errors(ssh_server: SshServer) -> None:
    with pytest.raises(ConfigError, match="OpenSSH public key line"):
        SshTunnel(_settings(ssh_server, host_key="not a key"), "127.0.0.1", 5432).open()
    with pytest.raises(ConfigError, match="private key could not be read"):
        SshTunnel(_settings(ssh_server, private_key="garbage"), "127.0.0.1", 5432).open()
