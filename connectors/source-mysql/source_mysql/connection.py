"""MySQL and MariaDB connections (PyMySQL): the URL, SSL modes, Airbyte's ``jdbc_url_params``,
the SSH tunnel, session settings, and the classification of driver errors into what a user can
act on.

Values come as the server's text: the driver is given no converters (``CONVERSIONS``), so
every value reaches the type handlers as the text-protocol form (``str``, or ``bytes`` for
binary types) and nothing is rounded or reinterpreted on the way.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.converters  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event

from dbkit import ConfigError, DbkitError, TransientError
from dbkit.db import Dialect, SshTunnel, open_tunnel
from source_mysql.config import (
    MySqlSourceConfig,
    SslPreferred,
    SslRequired,
    SslVerifyCa,
    SslVerifyIdentity,
    session_variables,
)
from source_mysql.types import SESSION_SETTINGS

CONVERSIONS: dict[Any, Any] = {
    k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)
}
"""PyMySQL's encoders (how Python values are written into SQL), and no decoder: results stay text."""

# MySQL / MariaDB error codes (server and client)
_LOGIN = frozenset({1045, 1698})
_DATABASE_DENIED = 1044
_NO_DATABASE = 1049
_TABLE_DENIED = frozenset({1142, 1143})
_MISSING_OBJECT = frozenset({1054, 1146})
_UNREACHABLE = frozenset({2002, 2003})
_UNKNOWN_HOST = 2005
_LOST = frozenset({1040, 1053, 1077, 1078, 1079, 1080, 1152, 1153, 1184, 1927, 2006, 2013, 2055})
_BUSY = frozenset({1205, 1213})
_NO_SSL = 2026
_BAD_VARIABLE = frozenset({1193, 1231, 1232, 1238})
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


class MySqlConnectionMixin(Dialect[MySqlSourceConfig]):
    """URL, driver arguments, SSH tunnel and error classification; put it first in the bases."""

    _tunnel: SshTunnel | None = None
    _cert_dir: Path | None = None
    _plain = False  # preferred SSL, and the server has none

    # ------------------------------------------------------------------ tunnel and URL
    def open(self) -> None:
        c = self.config
        self._tunnel = open_tunnel(c.tunnel_method, c.host, c.port)

    def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

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

    # ------------------------------------------------------------------ driver arguments
    def connect_args(self) -> dict[str, Any]:
        params = self.config.jdbc_params()
        args: dict[str, Any] = {
            "charset": "utf8mb4",
            "conv": CONVERSIONS,
            "connect_timeout": 20,
            "local_infile": False,
            "program_name": "dbkit source-mysql",
        }
        if "connectTimeout" in params:
            args["connect_timeout"] = max(1, int(params["connectTimeout"]) // 1000)
        if "socketTimeout" in params and int(params["socketTimeout"]) > 0:
            args["read_timeout"] = max(1, int(params["socketTimeout"]) // 1000)
        args["ssl"] = self.ssl_context()
        return args

    def ssl_context(self) -> ssl.SSLContext:
        mode = self.config.ssl_mode
        if isinstance(mode, SslVerifyCa | SslVerifyIdentity):
            context = ssl.create_default_context(cadata=_pem(mode.ca_certificate, "CA certificate"))
            context.check_hostname = isinstance(mode, SslVerifyIdentity)
            if self._tunnel is not None and context.check_hostname:
                raise ConfigError(
                    "ssl_mode verify_identity cannot check the host name through an SSH tunnel "
                    "(the driver connects to 127.0.0.1): use verify_ca"
                )
            if mode.client_certificate:
                cert = self._write("client.pem", mode.client_certificate)
                key_text = mode.client_key.get_secret_value()
                key = self._write("client.key", key_text) if key_text else None
                password = mode.client_key_password.get_secret_value() or None
                try:
                    context.load_cert_chain(cert, key, password)
                except (ssl.SSLError, OSError) as exc:
                    raise ConfigError(f"the client certificate or key cannot be used: {exc}") from None
            return context
        # preferred and required: encrypt without checking the certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _write(self, name: str, text: str) -> str:
        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="dbkit-mysql-ssl-"))
        path = self._cert_dir / name
        path.write_text(text if text.endswith("\n") else text + "\n")
        os.chmod(path, 0o600)
        return str(path)

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": self.connect_args()}

    def engine_events(self, engine: sa.Engine) -> None:
        event.listen(engine, "do_connect", self._connect)

    def _connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        """``preferred``: encrypt when the server can; a server without SSL is connected to in
        the clear (PyMySQL itself refuses it once given an SSL context)."""
        if not isinstance(self.config.ssl_mode, SslPreferred):
            return None
        if self._plain:
            cparams.pop("ssl", None)
            return None
        try:
            return pymysql.connect(*cargs, **cparams)
        except pymysql.err.OperationalError as exc:
            if mysql_code(exc) != _NO_SSL:
                raise
        self._plain = True
        cparams.pop("ssl", None)
        return None

    def on_connect(self, dbapi_connection: Any) -> None:
        """Session settings the values depend on (:data:`SESSION_SETTINGS`), then the user's
        ``sessionVariables``; and for ``required`` and the verifying modes, proof of encryption."""
        mode = self.config.ssl_mode
        verifying = isinstance(mode, SslRequired | SslVerifyCa | SslVerifyIdentity)
        if verifying and not _encrypted(dbapi_connection):
            raise ConfigError(
                f"{self.where()} does not support SSL, and ssl_mode is {mode.mode}: enable SSL on the "
                "server, or choose ssl_mode preferred"
            )
        assignments = [f"{name} = {value}" for name, value in SESSION_SETTINGS]
        extra = self.config.jdbc_params().get("sessionVariables")
        if extra:
            assignments += [f"`{name}` = {value}" for name, value in session_variables(extra)]
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION " + ", ".join(assignments))

    # ------------------------------------------------------------------ errors
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
        if code == _DATABASE_DENIED:
            return ConfigError(
                f"user {c.username!r} may not use database {c.database!r} on {where}: {text}; "
                f"GRANT SELECT ON `{c.database}`.* TO the user",
                internal=internal,
            )
        if code == _NO_DATABASE:
            return ConfigError(
                f"database {c.database!r} does not exist on {where} ({text}): check the database name",
                internal=internal,
            )
        if code == _UNKNOWN_HOST or (code in _UNREACHABLE and _NAME_RESOLUTION.search(text)):
            return ConfigError(
                f"cannot connect to {where}: the host name {c.host!r} does not resolve; check the host",
                internal=internal,
            )
        if code == _NO_SSL:
            return ConfigError(
                f"cannot connect to {where} with SSL ({text}): enable SSL on the server, or choose "
                "ssl_mode preferred",
                internal=internal,
            )
        if code in _BAD_VARIABLE:
            return ConfigError(f"{text}: check sessionVariables in jdbc_url_params", internal=internal)
        if code in _UNREACHABLE:
            return TransientError(
                f"cannot connect to {where}: {text} (check the host, port and firewall; the server may "
                "be restarting)",
                internal=internal,
            )
        if code in _TABLE_DENIED:
            return ConfigError(
                f"{text}: GRANT SELECT on the table (or on `{c.database}`.*) to user {c.username!r}, "
                "or exclude the table",
                internal=internal,
            )
        if code in _MISSING_OBJECT:
            return ConfigError(f"{text}; refresh the source schema (discover)", internal=internal)
        if code in _LOST:
            return TransientError(f"lost the connection to {where}: {text}", internal=internal)
        if code in _BUSY:
            return TransientError(f"{where} is busy (locks held by others): {text}", internal=internal)
        if isinstance(exc, pymysql.err.OperationalError) and code is not None and code >= 2000:
            return TransientError(f"lost the connection to {where}: {text}", internal=internal)
        return None


def _pem(text: str, what: str) -> str:
    if "-----BEGIN" not in text:
        raise ConfigError(f"the {what} must be PEM text (-----BEGIN CERTIFICATE----- ...)")
    return text


def _encrypted(dbapi_connection: Any) -> bool:
    sock = getattr(dbapi_connection, "_sock", None)
    return isinstance(sock, ssl.SSLSocket)
