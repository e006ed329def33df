"""MySQL and MariaDB connections (PyMySQL): the URL, SSL, Airbyte's ``jdbc_url_params``, the SSH
tunnel, session settings, LOAD DATA LOCAL fed from a stream, and driver errors classified into
what a user can act on.

``LOAD DATA LOCAL INFILE`` makes the *server* name the file the client sends. The connections made
here (:class:`StreamingConnection`) never open a file: they answer only the request for the name
of the stream handed to :func:`load_stream`, with that stream's bytes; any other request gets an
empty file.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterable
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.connections  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event

from dbkit import ConfigError, DbkitError
from dbkit.db import Dialect, MySqlConnectionMixin, mysql_code, mysql_reason
from destination_mysql.config import MySqlDestinationConfig

SESSION_SQL = (
    "SET SESSION time_zone = '+00:00', "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO', "
    "max_error_count = 1000"
)
"""UTC (DATETIME values are UTC), strict: an INSERT of a value that does not fit fails rather than
being cut (LOAD DATA LOCAL turns such errors into warnings, which the loader reads)."""

# MySQL / MariaDB error codes of a destination's work (the others: dbkit.db.classify_mysql_error)
_DENIED = frozenset({1044, 1142, 1143, 1227})
_LOCAL_INFILE_OFF = frozenset({1148, 3948, 4166})
_CONSTRAINT = frozenset({1062, 1451, 1452, 3819, 4025})
_NO_DATABASE = 1049


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


class MySqlDestinationConnection(MySqlConnectionMixin, Dialect[MySqlDestinationConfig]):
    """Driver arguments (LOAD DATA LOCAL from a stream), session settings and error
    classification of destination-mysql; put it first in the bases."""

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "charset": "utf8mb4",
            "local_infile": True,
            "program_name": "dbkit destination-mysql",
            **self.timeout_args(write=True),
        }
        if self.config.ssl:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            args["ssl"] = context
        else:
            # PyMySQL's default is "preferred": it would build an SSL context (0.1 s of CPU per
            # process) and encrypt the whole LOAD DATA stream wherever the server offers SSL
            args["ssl_disabled"] = True
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
            if "mariadb" in str(dbapi_connection.get_server_info()).lower():
                # with parallel loads a load sent beside another waits, idle in its transaction,
                # for its turn to commit (MariaDB's own idle-transaction timeout; MySQL has none)
                cursor.execute(
                    "SET SESSION idle_transaction_timeout = 0, idle_write_transaction_timeout = 0, "
                    "idle_readonly_transaction_timeout = 0"
                )

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        if isinstance(exc, pymysql.err.MySQLError):
            code, text, internal = mysql_code(exc), mysql_reason(exc), repr(exc)
            c = self.config
            where = self.where()
            if code == _NO_DATABASE:
                return ConfigError(
                    f"database {c.database!r} does not exist on {where} ({text}): create it, or check "
                    "the database name",
                    internal=internal,
                )
            if code in _DENIED:
                return ConfigError(
                    f"user {c.username!r} lacks a privilege on {where}: {text}; GRANT CREATE, DROP, "
                    f"ALTER, INDEX, INSERT, UPDATE, DELETE, SELECT, CREATE TEMPORARY TABLES ON "
                    f"`{c.database}`.* (and on each namespace's database) TO the user",
                    internal=internal,
                )
            if code in _LOCAL_INFILE_OFF:
                return ConfigError(
                    f"{where} refuses LOAD DATA LOCAL INFILE ({text}): SET GLOBAL local_infile = 1 on "
                    "the server (destination-mysql loads with it)",
                    internal=internal,
                )
            if code in _CONSTRAINT:
                return ConfigError(
                    f"{self.describe_target()}: a constraint of a destination table refuses the rows: {text}",
                    internal=internal,
                )
        return self.classify_server_error(exc, ssl_hint="turn ssl off")
