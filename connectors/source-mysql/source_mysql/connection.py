"""MySQL and MariaDB connections (PyMySQL): the URL, SSL modes, Airbyte's ``jdbc_url_params``,
the SSH tunnel, session settings, and the classification of driver errors into what a user can
act on.

Values come as the server's text: the driver is given no converters (``CONVERSIONS``), so
every value reaches the type handlers as the text-protocol form (``str``, or ``bytes`` for
binary types) and nothing is rounded or reinterpreted on the way.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.converters  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event

from dbkit import ConfigError, DbkitError
from dbkit.db import Dialect, MySqlConnectionMixin, mysql_code, mysql_reason
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

# MySQL / MariaDB error codes of a source's work (the others: dbkit.db.classify_mysql_error)
_DATABASE_DENIED = 1044
_TABLE_DENIED = frozenset({1142, 1143})
_MISSING_OBJECT = frozenset({1054, 1146})
_BAD_VARIABLE = frozenset({1193, 1231, 1232, 1238})
_NO_SSL = 2026


class MySqlSourceConnection(MySqlConnectionMixin, Dialect[MySqlSourceConfig]):
    """Driver arguments (SSL modes, text results), session settings and error classification of
    source-mysql; put it first in the bases."""

    _cert_dir: Path | None = None
    _plain = False  # preferred SSL, and the server has none

    def close(self) -> None:
        super().close()
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "charset": "utf8mb4",
            "conv": CONVERSIONS,
            "local_infile": False,
            "program_name": "dbkit source-mysql",
            **self.timeout_args(),
        }
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
        if isinstance(exc, pymysql.err.MySQLError):
            code, text, internal = mysql_code(exc), mysql_reason(exc), repr(exc)
            c = self.config
            if code == _DATABASE_DENIED:
                return ConfigError(
                    f"user {c.username!r} may not use database {c.database!r} on {self.where()}: {text}; "
                    f"GRANT SELECT ON `{c.database}`.* TO the user",
                    internal=internal,
                )
            if code in _BAD_VARIABLE:
                return ConfigError(f"{text}: check sessionVariables in jdbc_url_params", internal=internal)
            if code in _TABLE_DENIED:
                return ConfigError(
                    f"{text}: GRANT SELECT on the table (or on `{c.database}`.*) to user {c.username!r}, "
                    "or exclude the table",
                    internal=internal,
                )
            if code in _MISSING_OBJECT:
                return ConfigError(f"{text}; refresh the source schema (discover)", internal=internal)
        return self.classify_server_error(exc, ssl_hint="choose ssl_mode preferred")


def _pem(text: str, what: str) -> str:
    if "-----BEGIN" not in text:
        raise ConfigError(f"the {what} must be PEM text (-----BEGIN CERTIFICATE----- ...)")
    return text


def _encrypted(dbapi_connection: Any) -> bool:
    sock = getattr(dbapi_connection, "_sock", None)
    return isinstance(sock, ssl.SSLSocket)
