"""The source-mysql config, spelled as Airbyte's source-mysql spells it so that an existing
connection's config switches as it is: ``host``, ``port``, ``database``, ``username``,
``password``, ``ssl_mode`` (``preferred``, ``required``, ``verify_ca``, ``verify_identity``),
``jdbc_url_params``, ``tunnel_method`` (dbkit's SSH tunnel), ``replication_method`` (``STANDARD``
or ``CDC``), plus the read settings every dbkit SQL source has and table include/exclude.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import ConfigDict, Field, SecretStr, field_validator

from dbkit import (
    ConfigError,
    ConnectorConfig,
    DataLocation,
    SourceSettings,
    TableSelection,
    field,
    mysql_ssl_query,
    secret_field,
    server_url_config,
)
from dbkit.db import NoTunnel, TunnelMethod, mysql_data_location, parse_jdbc_params

# ---------------------------------------------------------------------------------- SSL


class _SslBase(ConnectorConfig):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SslPreferred(_SslBase):
    """Encrypt when the server supports it, without checking its certificate."""

    model_config = ConfigDict(title="preferred", extra="forbid", frozen=True)
    mode: Literal["preferred"] = field("preferred", title="SSL mode")


class SslRequired(_SslBase):
    """Always encrypt (a server without SSL is refused), without checking its certificate."""

    model_config = ConfigDict(title="required", extra="forbid", frozen=True)
    mode: Literal["required"] = field("required", title="SSL mode")


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

    model_config = ConfigDict(title="verify_ca", extra="forbid", frozen=True)
    mode: Literal["verify_ca"] = field("verify_ca", title="SSL mode")


class SslVerifyIdentity(_SslVerifying):
    """Always encrypt; the certificate must be signed by the CA and name the host."""

    model_config = ConfigDict(title="verify_identity", extra="forbid", frozen=True)
    mode: Literal["verify_identity"] = field("verify_identity", title="SSL mode")


SslMode = Annotated[SslPreferred | SslRequired | SslVerifyCa | SslVerifyIdentity, Field(discriminator="mode")]

# ---------------------------------------------------------------------------------- replication


class StandardMethod(ConnectorConfig):
    """Full refresh and cursor incremental reads with SELECT."""

    model_config = ConfigDict(title="Scan Changes with User Defined Cursor", extra="forbid", frozen=True)
    method: Literal["STANDARD"] = field("STANDARD", title="Method")


class CdcMethod(ConnectorConfig):
    """Change data capture from the binary log (row format). Accepted here so that an Airbyte
    config loads; reading it is not built yet (check and read say so)."""

    model_config = ConfigDict(title="Read Changes using Binary Log (CDC)", extra="forbid", frozen=True)
    method: Literal["CDC"] = field("CDC", title="Method")
    initial_waiting_seconds: int = field(
        300,
        title="Initial Waiting Time in Seconds (Advanced)",
        description="How long a sync waits for the first change before it ends.",
        ge=120,
        le=3600,
        order=1,
    )
    server_time_zone: str = field(
        "",
        title="Configured server timezone for the MySQL source (Advanced)",
        description="The server's time zone, when its TIMESTAMP values are to be read in another one.",
        order=2,
    )
    invalid_cdc_cursor_position_behavior: Literal["Fail sync", "Re-sync data"] = field(
        "Fail sync",
        title="Invalid CDC position behavior (Advanced)",
        description="What to do when the saved binlog position has been purged from the server.",
        order=3,
    )


ReplicationMethod = Annotated[StandardMethod | CdcMethod, Field(discriminator="method")]

# ---------------------------------------------------------------------------------- the config


def mysql_url_config(url: sa.URL, kind: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port/database[?ssl_mode=VERIFY_IDENTITY&ssl_ca=ca.pem&...]``
    (``dbkit sync --source URL``): MySQL's SSL parameters become ``ssl_mode`` (source-mysql always
    tries encryption: ``DISABLED`` is refused, PREFERRED connects in the clear to a server without
    SSL); the other parameters are config keys."""
    config = server_url_config(url, 3306)
    ssl, query = mysql_ssl_query(url)
    if ssl is not None:
        if ssl["mode"] == "disabled":
            raise ConfigError(
                "source-mysql has no ssl_mode=DISABLED: use PREFERRED (it connects in the clear when "
                "the server has no SSL) or REQUIRED"
            )
        names = {"ca": "ca_certificate", "cert": "client_certificate", "key": "client_key"}
        config["ssl_mode"] = {names.get(k, k): v for k, v in ssl.items()}
    return {**config, **query}


class MySqlSourceConfig(SourceSettings, TableSelection):
    url_schemes = ("mysql", "mariadb")
    url_config = mysql_url_config

    host: str = field(
        title="Host", description="Host name or address of the MySQL or MariaDB server.", order=0
    )
    port: int = field(3306, title="Port", ge=1, le=65535, order=1)
    database: str = field(
        title="Database", description="The database (schema) to read.", min_length=1, order=2
    )
    username: str = field(title="Username", order=3)
    password: SecretStr = secret_field(title="Password", default=SecretStr(""), order=4)
    jdbc_url_params: str = field(
        "",
        title="JDBC URL Params",
        description=(
            "Extra connection properties, key1=value1&key2=value2, as Airbyte's source-mysql takes "
            "them. Understood: connectTimeout and socketTimeout (milliseconds), sessionVariables "
            "(name=value,... set on every connection), tinyInt1isBit=false (TINYINT(1) read as an "
            "integer). Other JDBC properties are accepted and have no effect (see the README)."
        ),
        order=5,
    )
    ssl_mode: SslMode = field(
        SslPreferred(),
        title="SSL modes",
        description="preferred encrypts when the server can; required always does; verify_ca and "
        "verify_identity also check the server's certificate.",
        order=7,
    )
    tunnel_method: TunnelMethod = field(
        NoTunnel(), title="SSH Tunnel Method", description="Reach the server through an SSH bastion.", order=9
    )
    replication_method: ReplicationMethod = field(
        default_factory=StandardMethod,
        title="Update Method",
        description="Standard reads (full refresh and cursor incremental), or CDC from the binlog "
        "(ROW format, FULL row image; see the README).",
        order=8,
    )
    max_parallel_chunks: int = field(
        2,
        title="Parallel chunks per stream",
        description=(
            "A full refresh of a table with a primary key reads this many key ranges at once, each "
            "on its own connection, under one snapshot (needs the LOCK TABLES grant; at most the "
            "number of CPU cores)."
        ),
        ge=1,
        le=16,
        order=10,
    )

    @field_validator("jdbc_url_params")
    @classmethod
    def _valid_params(cls, value: str) -> str:
        params = parse_jdbc_params(value)
        if "sessionVariables" in params:
            session_variables(params["sessionVariables"])
        return value

    def data_location(self) -> DataLocation:
        return mysql_data_location(self.host, self.port, self.database, self.tunnel_method)

    def jdbc_params(self) -> dict[str, str]:
        return parse_jdbc_params(self.jdbc_url_params)


FIXED_SESSION_VARIABLES = frozenset({"time_zone", "sql_mode", "max_sort_length", "character_set_results"})
"""Session variables the records depend on (see ``source_mysql.types.SESSION_SETTINGS``)."""

_SESSION_VARIABLE = re.compile(r"^\s*@{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.S)


def session_variables(text: str) -> list[tuple[str, str]]:
    """Connector/J's ``sessionVariables`` (``sql_mode='ANSI',wait_timeout=600``) -> (name, value
    text) pairs; a value is a number, a word, or a quoted string (commas inside quotes kept)."""
    out: list[tuple[str, str]] = []
    for item in _split_outside_quotes(text):
        if not item.strip():
            continue
        m = _SESSION_VARIABLE.match(item)
        if m is None:
            raise ValueError(f"sessionVariables: {item.strip()!r} is not name=value")
        name, value = m.group(1), m.group(2)
        if not re.fullmatch(r"-?[0-9.]+|[A-Za-z_][A-Za-z0-9_]*|'(?:[^'\\]|\\.|'')*'", value):
            raise ValueError(
                f"sessionVariables: the value of {name} must be a number, a word or a 'quoted' text"
            )
        if name.lower() in FIXED_SESSION_VARIABLES:
            raise ValueError(
                f"sessionVariables: {name} is set by source-mysql itself (its values depend on it) "
                "and cannot be changed"
            )
        out.append((name, value))
    return out


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = False
    for ch in text:
        if ch == "'":
            quote = not quote
        if ch == "," and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
