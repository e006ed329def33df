"""What every MySQL/MariaDB connector's connection shares (PyMySQL): the SSH tunnel, the URL, the
timeouts of Airbyte's ``jdbc_url_params``, and the driver errors any such connection can meet,
classified into what a user can act on.

A connector's dialect puts :class:`MySqlConnectionMixin` first in its bases; its config has the
fields Airbyte's MySQL connectors spell ``host``, ``port``, ``database``, ``username``,
``password``, ``tunnel_method`` and a ``jdbc_params()`` method (the parsed ``jdbc_url_params``).
Its own ``classify_error`` handles the codes of its role (grants, LOAD DATA LOCAL, ...) and hands
the rest to :func:`classify_mysql_error`.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa

from dbkit.config import DataLocation, server_location
from dbkit.db.dialect import Dialect
from dbkit.db.tunnel import SshTunnel, open_tunnel
from dbkit.errors import ConfigError, DbkitError, TransientError

# MySQL / MariaDB error codes (server and client) every connection may meet
LOGIN_REFUSED = frozenset({1045, 1698})
NO_DATABASE = 1049
UNREACHABLE = frozenset({2002, 2003})
UNKNOWN_HOST = 2005
LOST = frozenset({1040, 1053, 1077, 1078, 1079, 1080, 1152, 1153, 1184, 1927, 2006, 2013, 2055})
BUSY = frozenset({1205, 1213})
NO_SSL = 2026
_NAME_RESOLUTION = re.compile(
    r"Name or service not known|nodename nor servname|Temporary failure in name resolution|"
    r"No address associated with hostname|getaddrinfo failed|\[Errno -[235]\]",
    re.IGNORECASE,
)


_JDBC_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


def parse_jdbc_params(text: str) -> dict[str, str]:
    """``key1=value1&key2=value2`` (Airbyte's ``jdbc_url_params``) -> a dict; values percent-decoded.
    A part that is not ``key=value``, or a ``connectTimeout``/``socketTimeout`` that is not a number
    of milliseconds, raises ValueError (a config validator's message)."""
    out: dict[str, str] = {}
    for part in text.split("&"):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not _JDBC_KEY.match(key):
            raise ValueError(
                f"{part.split('=', 1)[0]!r} is not a key=value pair; write key1=value1&key2=value2"
            )
        out[key] = urllib.parse.unquote(value.strip())
    for name in ("connectTimeout", "socketTimeout"):
        if name in out and not out[name].isdigit():
            raise ValueError(f"{name} must be a number of milliseconds")
    return out


def mysql_code(exc: BaseException) -> int | None:
    """The MySQL error code of a PyMySQL exception, if it carries one."""
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def mysql_reason(exc: BaseException) -> str:
    """The server's or driver's message of a PyMySQL exception, on one line."""
    text = str(exc.args[1]) if mysql_code(exc) is not None and len(exc.args) > 1 else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def classify_mysql_error(
    exc: BaseException, *, where: str, username: str, database: str, host: str, ssl_hint: str
) -> DbkitError | None:
    """The errors of reaching and logging in to a server, of a lost connection and of lock waits:
    a config_error naming what to fix, or a transient_error; None for anything else (the
    connector decides). ``ssl_hint`` says how to go without SSL in the connector's own terms."""
    if isinstance(exc, DbkitError):
        return exc
    if not isinstance(exc, pymysql.err.MySQLError):
        return None
    code, text, internal = mysql_code(exc), mysql_reason(exc), repr(exc)
    if code in LOGIN_REFUSED:
        return ConfigError(
            f"{where} refused the login of user {username!r}: {text}; check the username and password",
            internal=internal,
        )
    if code == NO_DATABASE:
        return ConfigError(
            f"database {database!r} does not exist on {where} ({text}): check the database name",
            internal=internal,
        )
    if code == UNKNOWN_HOST or (code in UNREACHABLE and _NAME_RESOLUTION.search(text)):
        return ConfigError(
            f"cannot connect to {where}: the host name {host!r} does not resolve; check the host",
            internal=internal,
        )
    if code == NO_SSL:
        return ConfigError(
            f"cannot connect to {where} with SSL ({text}): enable SSL on the server, or {ssl_hint}",
            internal=internal,
        )
    if code in UNREACHABLE:
        return TransientError(
            f"cannot connect to {where}: {text} (check the host, port and firewall; the server may "
            "be restarting)",
            internal=internal,
        )
    if code in LOST:
        return TransientError(f"lost the connection to {where}: {text}", internal=internal)
    if code in BUSY:
        return TransientError(f"{where} is busy (locks held by others): {text}", internal=internal)
    if isinstance(exc, pymysql.err.OperationalError) and code is not None and code >= 2000:
        return TransientError(f"lost the connection to {where}: {text}", internal=internal)
    return None


def mysql_data_location(host: str, port: int, database: str, tunnel_method: object) -> DataLocation:
    """Where a MySQL/MariaDB config's tables live: the server (a database is a namespace there),
    with ``database`` as the namespace of streams that have none."""
    via = getattr(tunnel_method, "tunnel_host", None)
    return DataLocation(server_location("mysql", host, port, via=via), default_namespace=database)


class MySqlConnectionMixin(Dialect[Any]):
    """SSH tunnel, URL and where-am-I of a MySQL/MariaDB connector's dialect; put it first in
    the bases (``open``/``close`` manage the tunnel)."""

    _tunnel: SshTunnel | None = None

    def open(self) -> None:
        c = self.config
        self._tunnel = open_tunnel(c.tunnel_method, c.host, c.port)

    def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def endpoint(self) -> tuple[str, int]:
        """Where the driver connects: the tunnel's local end, or the configured host and port."""
        if self._tunnel is not None:
            return self._tunnel.local_host, self._tunnel.local_port
        return self.config.host, self.config.port

    def sqlalchemy_url(self) -> sa.URL:
        c = self.config
        host, port = self.endpoint()
        return sa.URL.create(
            "mysql+pymysql",
            username=c.username,
            password=c.password.get_secret_value() or None,
            host=host,
            port=port,
            database=c.database,
        )

    def where(self) -> str:
        """The server as the user configured it (and the tunnel's host), for messages."""
        c = self.config
        via = f" through the SSH tunnel to {c.tunnel_method.tunnel_host}" if self._tunnel is not None else ""
        return f"{c.host}:{c.port}{via}"

    def describe_target(self) -> str:
        return f"MySQL/MariaDB at {self.where()}/{self.config.database}"

    def timeout_args(self, *, write: bool = False) -> dict[str, Any]:
        """PyMySQL's timeouts from ``jdbc_url_params`` (``connectTimeout``, ``socketTimeout``, in
        milliseconds as JDBC spells them; a socket timeout also bounds writes when ``write``)."""
        params = self.config.jdbc_params()
        args: dict[str, Any] = {"connect_timeout": 20}
        if "connectTimeout" in params:
            args["connect_timeout"] = max(1, int(params["connectTimeout"]) // 1000)
        if "socketTimeout" in params and int(params["socketTimeout"]) > 0:
            args["read_timeout"] = max(1, int(params["socketTimeout"]) // 1000)
            if write:
                args["write_timeout"] = args["read_timeout"]
        return args

    def classify_server_error(self, exc: BaseException, ssl_hint: str) -> DbkitError | None:
        """:func:`classify_mysql_error` with this connection's names."""
        c = self.config
        return classify_mysql_error(
            exc, where=self.where(), username=c.username, database=c.database, host=c.host, ssl_hint=ssl_hint
        )
