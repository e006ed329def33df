"""The destination-mysql config, spelled as Airbyte's destination-mysql spells it so that an
existing connection's config switches as it is: ``host``, ``port``, ``database``, ``username``,
``password``, ``ssl``, ``jdbc_url_params``, ``tunnel_method``; plus the flush policy every dbkit
SQL destination has and how CDC deletions land.

Namespaces map to databases (MySQL has no schemas distinct from databases): a stream without a
namespace lands in ``database``; a stream with namespace ``ns`` in the database ``ns`` (created
when missing).
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import SecretStr, field_validator

from dbkit import (
    ConfigError,
    DataLocation,
    DestinationSettings,
    field,
    mysql_ssl_query,
    secret_field,
    server_url_config,
)
from dbkit.db import NoTunnel, TunnelMethod, mysql_data_location, parse_jdbc_params


def mysql_url_config(url: sa.URL, kind: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port/database[?ssl_mode=REQUIRED&batch_records=...]`` (``dbkit
    sync --destination URL``): the query's parameters are config keys. A URL connects without SSL
    unless it says ``ssl_mode=REQUIRED`` (or ``ssl=true``), as the mysql client does with a server
    that has none. destination-mysql encrypts or not (``ssl``) and does not check the server's
    certificate: ``PREFERRED`` and the verifying modes are refused."""
    config: dict[str, Any] = {**server_url_config(url, 3306), "ssl": False}
    ssl, query = mysql_ssl_query(url)
    if ssl is not None:
        if ssl["mode"] not in ("disabled", "required"):
            raise ConfigError(
                f"destination-mysql takes ssl_mode=REQUIRED or DISABLED, not {ssl['mode'].upper()}: it "
                "encrypts (without checking the server's certificate) or connects in the clear"
            )
        config["ssl"] = ssl["mode"] == "required"
    return {**config, **query}


class MySqlDestinationConfig(DestinationSettings):
    url_schemes = ("mysql", "mariadb")
    url_config = mysql_url_config

    host: str = field(
        title="Host", description="Host name or address of the MySQL or MariaDB server.", order=0
    )
    port: int = field(3306, title="Port", ge=1, le=65535, order=1)
    database: str = field(
        title="Database",
        description="The database of the streams that have no namespace; a stream's namespace names "
        "the database it lands in (created when missing).",
        min_length=1,
        max_length=64,
        order=2,
    )
    username: str = field(title="User", min_length=1, order=3)
    password: SecretStr = secret_field(title="Password", default=SecretStr(""), order=4)
    ssl: bool = field(
        True,
        title="SSL Connection",
        description="Encrypt the connection (the server's certificate is not checked); a server "
        "without SSL is refused. Off: connect in the clear.",
        order=5,
    )
    jdbc_url_params: str = field(
        "",
        title="JDBC URL Params",
        description=(
            "Extra connection properties, key1=value1&key2=value2, as Airbyte's destination-mysql "
            "takes them. Understood: connectTimeout and socketTimeout (milliseconds); other JDBC "
            "properties are accepted and have no effect."
        ),
        order=6,
    )
    tunnel_method: TunnelMethod = field(
        NoTunnel(), title="SSH Tunnel Method", description="Reach the server through an SSH bastion.", order=7
    )
    cdc_deletion_mode: Literal["hard_delete", "soft_delete"] = field(
        "hard_delete",
        title="CDC deletion mode",
        description="hard_delete removes a row deleted at the source; soft_delete keeps it with "
        "_ab_cdc_deleted_at set.",
        order=20,
    )

    @field_validator("jdbc_url_params")
    @classmethod
    def _valid_params(cls, value: str) -> str:
        parse_jdbc_params(value)
        return value

    def data_location(self) -> DataLocation:
        return mysql_data_location(self.host, self.port, self.database, self.tunnel_method)

    def jdbc_params(self) -> dict[str, str]:
        return parse_jdbc_params(self.jdbc_url_params)
