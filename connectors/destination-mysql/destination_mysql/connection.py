"""MySQL and MariaDB connections (PyMySQL): the URL, SSL, Airbyte's ``jdbc_url_params``, the SSH
tunnel, session settings, LOAD DATA LOCAL fed from a stream, and driver errors classified into
what a user can act on.

``LOAD DATA LOCAL INFILE`` makes the *server* name the file the client sends. The connections made
here (:class:`StreamingConnection`) never open a file: they answer only the request for the name
of the stream handed to :func:`load_stream`, with that stream's bytes; any other request gets an
empty file.
"""

from __future__ import annotations

import re
import secrets
import ssl
from collections.abc import Iterable
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.connections  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event

from dbkit import ConfigError, DbkitError, TransientError
from dbkit.db import Dialect, SshTunnel, open_tunnel
from destination_mysql.config import MySqlDestinationConfig

SESSION_SQL = (
    "SET SESSION time_zone = '+00:00', "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO', "
    "max_error_count = 1000"
)
"""UTC (DATETIME values are UTC), strict: an INSERT of a value that does not fit fails rather than
being cut (LOAD DATA LOCAL turns such errors into warnings, which the loader reads)."""

# MySQL / MariaDB error codes (server and client)
_LOGIN = frozenset({1045, 1698})
_DENIED = frozenset({1044, 1142, 1143, 1227})
_NO_DATABASE = 1049
_UNREACHABLE = frozenset({2002, 2003})
_UNKNOWN_HOST = 2005
_LOST = frozenset({1040, 1053, 1077, 1078, 1079, 1080, 1152, 1153, 1184, 1927, 2006, 2013, 2055})
_BUSY = frozenset({1205, 1213})
_NO_SSL = 2026
_LOCAL_INFILE_OFF = frozenset({1148, 3948, 4166})
_CONSTRAINT = frozenset({1062, 1451, 1452, 3819, 4025})
_NAME_RESOLUTION = re.compile(
    r"Name or service not known|nodename nor servname|Temporary failure in name resolution|"
    r"No address associated with hostname|getaddrinfo failed|\[Errno -[235]\]",
    re.IGNORECASE,
)


def mysql_code(exc: BaseException) -> int | None:
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def reason(exc: BaseException) -> str:
    text = str(exc.args[1]) if mysql_code(exc) is not None and len(exc.args) > 1 else str(exc)
    return " ".join(text.split()) or type(exc).__name__


# ------------------------------------------------------------------------- LOAD DATA LOCAL


class _StreamingResult(pymysql.connections.MySQLResult):  # type: ignore[misc]
    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn: StreamingConnection = self.connection
        packet = pymysql.connections.LoadLocalPacketWrapper(first_packet)
        name = packet.filename.decode() if isinstance(packet.filename, bytes) else str(packet.filename)
        source, conn._infile = conn._infile, None
        try:
            if source is not None and name == source[0]:
                for chunk in source[1]:
                    view = memoryview(chunk)
                    for start in range(0, len(view), _PACKET):
                        conn.write_packet(view[start : start + _PACKET])
        finally:
            conn.write_packet(b"")  # end of the file
            ok_packet = conn._read_packet()
        if not ok_packet.is_ok_packet():
            raise pymysql.err.OperationalError(2014, "Commands out of sync")
        self._read_ok_packet(ok_packet)


_PACKET = 1 << 20


class StreamingConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """A PyMySQL connection whose LOAD DATA LOCAL reads the stream given to :func:`load_stream`."""

    _infile: tuple[str, Iterable[bytes]] | None = None

    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = _StreamingResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)


def load_stream(cursor: Any, statement: str, chunks: Iterable[bytes]) -> int:
    """Run ``statement`` (a ``LOAD DATA LOCAL INFILE {file} ...`` with ``{file}`` where the quoted
    file name goes) feeding it ``chunks``; returns the warning count."""
    conn = cursor.connection
    if not isinstance(conn, StreamingConnection):
        raise TypeError("LOAD DATA LOCAL needs a connection made by destination-mysql")
    name = f"dbkit-stream-{secrets.token_hex(8)}"
    conn._infile = (name, chunks)
    try:
        cursor.execute(statement.replace("{file}", f"'{name}'"))
    finally:
        conn._infile = None
    result = conn._result
    return int(getattr(result, "warning_count", 0) or 0)


# ------------------------------------------------------------------------- the dialect mixin


class MySqlConnectionMixin(Dialect[MySqlDestinationConfig]):
    """URL, driver arguments, SSH tunnel and error classification; put it first in the bases."""

    _tunnel: SshTunnel | None = None

    def open(self) -> None:
        c = self.config
        self._tunnel = open_tunnel(c.tunnel_method, c.host, c.port)

    def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def endpoint(self) -> tuple[str, int]:
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
        c = self.config
        via = f" through the SSH tunnel to {c.tunnel_method.tunnel_host}" if self._tunnel is not None else ""  # type: ignore[union-attr]
        return f"{c.host}:{c.port}{via}"

    def describe_target(self) -> str:
        return f"MySQL/MariaDB at {self.where()}/{self.config.database}"

    def connect_args(self) -> dict[str, Any]:
        params = self.config.jdbc_params()
        args: dict[str, Any] = {
            "charset": "utf8mb4",
            "connect_timeout": 20,
            "local_infile": True,
            "program_name": "dbkit destination-mysql",
        }
        if "connectTimeout" in params:
            args["connect_timeout"] = max(1, int(params["connectTimeout"]) // 1000)
        if "socketTimeout" in params and int(params["socketTimeout"]) > 0:
            args["read_timeout"] = args["write_timeout"] = max(1, int(params["socketTimeout"]) // 1000)
        if self.config.ssl:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            args["ssl"] = context
        return args

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": self.connect_args(), "pool_pre_ping": True}

    def engine_events(self, engine: sa.Engine) -> None:
        event.listen(engine, "do_connect", self._connect)

    def _connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return StreamingConnection(*cargs, **cparams)

    def on_connect(self, dbapi_connection: Any) -> None:
        if self.config.ssl and not isinstance(getattr(dbapi_connection, "_sock", None), ssl.SSLSocket):
            raise ConfigError(
                f"{self.where()} does not support SSL, and ssl is on: enable SSL on the server, or turn "
                "ssl off"
            )
        with dbapi_connection.cursor() as cursor:
            cursor.execute(SESSION_SQL)

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        if isinstance(exc, DbkitError):
            return exc
        if not isinstance(exc, pymysql.err.MySQLError):
            return None
        code, text, internal = mysql_code(exc), reason(exc), repr(exc)
        c = self.config
        where = self.where()
        if code in _LOGIN:
            return ConfigError(
                f"{where} refused the login of user {c.username!r}: {text}; check the username and password",
                internal=internal,
            )
        if code == _NO_DATABASE:
            return ConfigError(
                f"database {c.database!r} does not exist on {where} ({text}): create it, or check the "
                "database name",
                internal=internal,
            )
        if code in _DENIED:
            return ConfigError(
                f"user {c.username!r} lacks a privilege on {where}: {text}; GRANT CREATE, DROP, ALTER, "
                f"INDEX, INSERT, UPDATE, DELETE, SELECT, CREATE TEMPORARY TABLES ON `{c.database}`.* "
                "(and on each namespace's database) TO the user",
                internal=internal,
            )
        if code == _UNKNOWN_HOST or (code in _UNREACHABLE and _NAME_RESOLUTION.search(text)):
            return ConfigError(
                f"cannot connect to {where}: the host name {c.host!r} does not resolve; check the host",
                internal=internal,
            )
        if code == _NO_SSL:
            return ConfigError(
                f"cannot connect to {where} with SSL ({text}): enable SSL on the server, or turn ssl off",
                internal=internal,
            )
        if code in _LOCAL_INFILE_OFF:
            return ConfigError(
                f"{where} refuses LOAD DATA LOCAL INFILE ({text}): SET GLOBAL local_infile = 1 on the "
                "server (destination-mysql loads with it)",
                internal=internal,
            )
        if code in _CONSTRAINT:
            return ConfigError(
                f"{self.describe_target()}: a constraint of a destination table refuses the rows: {text}",
                internal=internal,
            )
        if code in _UNREACHABLE:
            return TransientError(
                f"cannot connect to {where}: {text} (check the host, port and firewall; the server may "
                "be restarting)",
                internal=internal,
            )
        if code in _LOST:
            return TransientError(f"lost the connection to {where}: {text}", internal=internal)
        if code in _BUSY:
            return TransientError(f"{where} is busy (locks held by others): {text}", internal=internal)
        if isinstance(exc, pymysql.err.OperationalError) and code is not None and code >= 2000:
            return TransientError(f"lost the connection to {where}: {text}", internal=internal)
        return None
