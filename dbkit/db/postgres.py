"""PostgreSQL connections for source-postgres and destination-postgres (psycopg 3).

The config fields every PostgreSQL connector shares (:class:`PostgresConnection`), the libpq
arguments they become (SSL modes with certificates given as text, extra parameters), the SSH
tunnel and the classification of psycopg errors into what a user can act on.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import ConfigDict, Field, SecretStr

from dbkit.config import ConnectorConfig, DataLocation, field, secret_field, server_location
from dbkit.db.dialect import Dialect
from dbkit.db.tunnel import NoTunnel, SshTunnel, TunnelMethod, open_tunnel
from dbkit.errors import ConfigError, DbkitError, TransientError

# ---------------------------------------------------------------------------------- config


class _SslBase(ConnectorConfig):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SslDisable(_SslBase):
    """No encryption."""

    model_config = ConfigDict(title="disable", extra="forbid", frozen=True)
    mode: Literal["disable"] = field("disable", title="SSL mode")


class SslAllow(_SslBase):
    """Encrypt only if the server insists."""

    model_config = ConfigDict(title="allow", extra="forbid", frozen=True)
    mode: Literal["allow"] = field("allow", title="SSL mode")


class SslPrefer(_SslBase):
    """Encrypt when the server supports it (no certificate check)."""

    model_config = ConfigDict(title="prefer", extra="forbid", frozen=True)
    mode: Literal["prefer"] = field("prefer", title="SSL mode")


class SslRequire(_SslBase):
    """Always encrypt (no certificate check)."""

    model_config = ConfigDict(title="require", extra="forbid", frozen=True)
    mode: Literal["require"] = field("require", title="SSL mode")


class _SslVerifying(_SslBase):
    ca_certificate: str = field(
        title="CA certificate",
        description="PEM text of the CA that signed the server's certificate.",
        order=1,
    )
    client_certificate: str = field(
        "", title="Client certificate", description="PEM text, for certificate authentication.", order=2
    )
    client_key: SecretStr = secret_field(
        title="Client key",
        description="PEM text of the client certificate's key.",
        default=SecretStr(""),
        order=3,
    )
    client_key_password: SecretStr = secret_field(
        title="Client key password", description="Only for an encrypted key.", default=SecretStr(""), order=4
    )


class SslVerifyCa(_SslVerifying):
    """Always encrypt; the server's certificate must be signed by the given CA."""

    model_config = ConfigDict(title="verify-ca", extra="forbid", frozen=True)
    mode: Literal["verify-ca"] = field("verify-ca", title="SSL mode")


class SslVerifyFull(_SslVerifying):
    """Always encrypt; the certificate must be signed by the CA and name the host."""

    model_config = ConfigDict(title="verify-full", extra="forbid", frozen=True)
    mode: Literal["verify-full"] = field("verify-full", title="SSL mode")


SslMode = Annotated[
    SslDisable | SslAllow | SslPrefer | SslRequire | SslVerifyCa | SslVerifyFull, Field(discriminator="mode")
]

_PARAM_NAME = re.compile(r"^[a-z_]+$")
_RESERVED_PARAMS = {"host", "hostaddr", "port", "dbname", "user", "password", "passfile", "sslmode"}


class PostgresConnection(ConnectorConfig):
    """Connection fields shared by the PostgreSQL connectors (mixed into their config models)."""

    host: str = field(title="Host", description="Host name or address of the PostgreSQL server.", order=0)
    port: int = field(5432, title="Port", ge=1, le=65535, order=1)
    database: str = field(title="Database", order=2)
    username: str = field(title="User", order=3)
    password: SecretStr = secret_field(title="Password", default=SecretStr(""), order=4)
    ssl_mode: SslMode = field(
        SslPrefer(),
        title="SSL mode",
        description="libpq's sslmode; verify-ca and verify-full check the server's certificate.",
        order=10,
    )
    tunnel_method: TunnelMethod = field(
        NoTunnel(), title="SSH tunnel", description="Reach the server through an SSH bastion.", order=11
    )
    connection_parameters: dict[str, str] = field(
        default_factory=dict,
        title="Extra connection parameters",
        description="Other libpq connection parameters, e.g. application_name, connect_timeout, options.",
        order=12,
    )

    def data_location(self) -> DataLocation:
        via = getattr(self.tunnel_method, "tunnel_host", None)
        return DataLocation(server_location("postgresql", self.host, self.port, self.database, via=via))


# ---------------------------------------------------------------------------------- dialect part


class PostgresConnectionMixin(Dialect[Any]):
    """URL, libpq arguments, SSH tunnel and error classification for a PostgreSQL dialect.

    Put it before the source or destination dialect base in the class bases.
    """

    _tunnel: SshTunnel | None = None
    _cert_dir: Path | None = None

    @property
    def connection(self) -> PostgresConnection:
        config = self.config
        assert isinstance(config, PostgresConnection)
        return config

    def open(self) -> None:
        c = self.connection
        self._tunnel = open_tunnel(c.tunnel_method, c.host, c.port)

    def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    def _endpoint(self) -> tuple[str, int]:
        if self._tunnel is not None:
            return self._tunnel.local_host, self._tunnel.local_port
        return self.connection.host, self.connection.port

    def sqlalchemy_url(self) -> sa.URL:
        c = self.connection
        host, port = self._endpoint()
        return sa.URL.create(
            "postgresql+psycopg",
            username=c.username,
            password=c.password.get_secret_value() or None,
            host=host,
            port=port,
            database=c.database,
        )

    def describe_target(self) -> str:
        c = self.connection
        via = f" through the SSH tunnel to {c.tunnel_method.tunnel_host}" if self._tunnel is not None else ""  # type: ignore[union-attr]
        return f"PostgreSQL at {c.host}:{c.port}/{c.database}{via}"

    def connect_args(self) -> dict[str, Any]:
        c = self.connection
        args: dict[str, Any] = {"application_name": "dbkit", "connect_timeout": 20}
        for name, value in c.connection_parameters.items():
            if not _PARAM_NAME.match(name) or name in _RESERVED_PARAMS:
                raise ConfigError(
                    f"connection parameter {name!r} cannot be set here (use the dedicated field, "
                    "or a libpq parameter name such as application_name)"
                )
            args[name] = value
        ssl = c.ssl_mode
        args["sslmode"] = ssl.mode
        if isinstance(ssl, SslVerifyCa | SslVerifyFull):
            args["sslrootcert"] = self._write_cert("ca.pem", ssl.ca_certificate)
            if ssl.client_certificate:
                args["sslcert"] = self._write_cert("client.pem", ssl.client_certificate)
            key = ssl.client_key.get_secret_value()
            if key:
                args["sslkey"] = self._write_cert("client.key", key)
            if ssl.client_key_password.get_secret_value():
                args["sslpassword"] = ssl.client_key_password.get_secret_value()
        if self._tunnel is not None and isinstance(ssl, SslVerifyFull):
            # through a tunnel we connect to 127.0.0.1: verify the certificate against the real host
            args["host"] = c.host
            args["hostaddr"] = self._tunnel.local_host
        return args

    def _write_cert(self, name: str, text: str) -> str:
        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="dbkit-pg-ssl-"))
        path = self._cert_dir / name
        path.write_text(text if text.endswith("\n") else text + "\n")
        os.chmod(path, 0o600)  # libpq refuses a key readable by others
        return str(path)

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": self.connect_args()}

    def on_connect(self, dbapi_connection: Any) -> None:
        # a fixed session time zone: timestamptz values are rendered in UTC, whatever the server says
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute("SET DateStyle = 'ISO, YMD'")
            cursor.execute("SET IntervalStyle = 'iso_8601'")
            cursor.execute("SET extra_float_digits = 1")
        dbapi_connection.commit()

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        return classify_postgres_error(exc, self.describe_target())


# ---------------------------------------------------------------------------------- errors

_CONFIG_SQLSTATES = {
    "28000": "the server refused the login",
    "28P01": "password authentication failed",
    "3D000": "the database does not exist",
    "42501": "permission denied",
    "42P01": "a table does not exist",
    "42703": "a column does not exist",
    "3F000": "a schema does not exist",
    "42704": "an object does not exist",
}
_TRANSIENT_SQLSTATE_CLASSES = (
    "08",
    "57",
    "53",
    "40",
)  # connection, operator intervention, resources, rollback
_CONNECT_CONFIG_PATTERNS = (
    ("password authentication failed", "password authentication failed: check the username and password"),
    ("does not exist", "{detail}: check the database and user names"),
    ("no pg_hba.conf entry", "the server's pg_hba.conf does not allow this connection: {detail}"),
    ("failed to resolve host", "the host name does not resolve: check the host"),
    ("could not translate host name", "the host name does not resolve: check the host"),
    # the most specific first: the first pattern found in the text wins
    (
        "server does not support SSL",
        "the server does not support SSL: choose SSL mode (sslmode) disable, allow or prefer",
    ),
    ("certificate", "SSL certificate problem: {detail}"),
    ("SSL", "SSL problem: {detail}"),
)


def classify_postgres_error(exc: BaseException, target: str) -> DbkitError | None:
    """ConfigError for what the user can fix, TransientError for what a retry may fix, else None."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if not isinstance(exc, psycopg.Error):
        return None
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    if state in _CONFIG_SQLSTATES:
        return ConfigError(f"{target}: {first}", internal=repr(exc))
    if state and state.startswith(_TRANSIENT_SQLSTATE_CLASSES):
        return TransientError(f"{target}: {first}", internal=repr(exc))
    if state is None and isinstance(exc, psycopg.OperationalError):
        detail = _connect_detail(text)
        for pattern, message in _CONNECT_CONFIG_PATTERNS:
            if pattern in text:
                return ConfigError(
                    f"cannot connect to {target}: {message.format(detail=detail)}", internal=repr(exc)
                )
        if "connection refused" in text.lower() or "timeout" in text.lower():
            return TransientError(
                f"cannot connect to {target}: {detail} (check the host, port and firewall; the server may be "
                "restarting)",
                internal=repr(exc),
            )
        return TransientError(f"lost the connection to {target}: {detail}", internal=repr(exc))
    return None


def _connect_detail(text: str) -> str:
    """The useful part of a libpq connection error (``FATAL: ...`` or the last line)."""
    for line in text.splitlines():
        if "FATAL:" in line:
            return line.split("FATAL:", 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text
