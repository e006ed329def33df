"""Database URLs -> raw connector configs, for ``dbkit sync --source URL``.

A URL is read by SQLAlchemy's parser (:func:`parse_url`, the reading source-sql's ``url`` gets
too): ``scheme://user:password@host:port/database?key=value&...``. The password runs to the
``@`` before the host, so it may hold ``/ ? # :`` as they are; an ``@`` in it (or in the user
name), a ``%`` and spaces must be percent-encoded, and a URL with more than one ``@`` is refused
with an error that says how, quoting nothing of the URL.

A connector's config model declares the URL schemes it takes (``url_schemes``) and turns such a
URL into a raw config (``url_config``, a :data:`UrlMapper`), usually with one of these helpers:

- :func:`sqlite_url_config`: ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db``
  (what follows the third slash is the path) -> ``{"path": ...}``;
- :func:`server_url_config`: ``scheme://user:pass@host:port/db`` -> ``host``, ``port``,
  ``database``, ``username``, ``password``;
- :func:`postgres_url_config`: the same, plus what libpq's URLs say: ``sslmode`` and the
  certificate files (``sslrootcert``, ``sslcert``, ``sslkey``, ``sslpassword``) as ``ssl_mode``,
  every other libpq parameter (``application_name``, ``connect_timeout``, ``options``,
  ``sslcrl``, ...) in ``connection_parameters``, and ``schema`` / ``schemas`` (a list for a
  source, exactly one for a destination);
- :func:`mysql_ssl_query`: MySQL's SSL parameters (``ssl_mode``, ``ssl_ca``, ``ssl_cert``,
  ``ssl_key``; ``ssl-mode`` and ``sslMode`` spellings too) read and checked, for a MySQL
  connector to map onto its config.

Every other query parameter becomes a config key (:func:`url_query`): its value is read as JSON
when it parses (``?checkpoint_records=500``), else kept as text; a key given more than once is a
list. :func:`check_url_config` (which ``dbkit sync`` applies) then refuses a key the connector's
config does not have, naming it, and reads ``a,b`` (or a repeated key) as a list where the
setting is a list (``?schemas=a,b``, ``?include_tables=orders*&include_tables=items``).

Every function raises :class:`~dbkit.errors.ConfigError` for a malformed URL, and no message
quotes a URL's password.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from dbkit.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.engine import URL

UrlMapper = Callable[["URL", str], dict[str, Any]]
"""``(url, kind) -> raw config``, ``url`` a SQLAlchemy URL, ``kind`` ``"source"`` or ``"destination"``."""

PERCENT_ENCODING = (
    "percent-encode the special characters of the user name and password (@ as %40, : in the "
    "user name as %3A, % as %25, a space as %20), and every '@' in the host, database or "
    "parameters (%40). To encode a password without showing it: "
    "python3 -c 'import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), safe=\"\"))'"
)
"""How to write a URL that SQLAlchemy's parser reads unambiguously (quoted in errors)."""


# ================================================================================= parsing


def parse_url(text: str) -> URL:
    """``text`` read by SQLAlchemy's URL parser, refusing what it would misread.

    Raises ConfigError (quoting nothing of the URL) when the text is no URL, its port is not a
    number, or it holds an ``@`` besides the one that ends ``user:password``: the parser would
    end the password at the first ``@`` and take the rest of it for the host (an ``@`` in the
    user name, host, database or parameters is refused for the same reason). A URL with neither
    user-info nor host (a file: ``sqlite:///a@b.db``) may hold any.
    """
    import sqlalchemy as sa

    head, sep, _ = text.partition("://")
    label = f"the {head} URL" if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", head) else "the URL"
    try:
        url = sa.make_url(text)
    except ValueError:  # a port that is not a number
        raise ConfigError(
            f"{label}'s port is not a number, or the URL is misread: {PERCENT_ENCODING}"
        ) from None
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"{label} is not a SQLAlchemy URL (dialect+driver://user:password@host:port/database)"
            + (f"; {PERCENT_ENCODING}" if text.count("@") > 1 else "")
        ) from None
    if _stray_at(text, url):
        raise ConfigError(f"{label} holds an '@' besides the one that ends user:password: {PERCENT_ENCODING}")
    return url


def _stray_at(text: str, url: URL) -> bool:
    """Whether ``text`` holds an ``@`` other than the one SQLAlchemy reads as the end of
    ``user:password`` (its user name runs to a ``:`` or ``/``, its password to the next ``@``)."""
    rest = text.partition("://")[2]
    end = _userinfo_end(rest)
    if end is None and url.host is None:
        return False
    ats = rest.count("@")
    return ats > 1 or (ats == 1 and (end is None or "@" in rest[end:]))


def _userinfo_end(rest: str) -> int | None:
    """Where SQLAlchemy's user-info (``user[:password]@``) ends in ``rest``, or None."""
    i = 0
    while i < len(rest) and rest[i] not in ":/@":
        i += 1
    if i < len(rest) and rest[i] == ":":
        at = rest.find("@", i)
        return None if at < 0 else at + 1
    if i < len(rest) and rest[i] == "@":
        return i + 1
    return None


# ================================================================================= query


def _json_or_text(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def url_query(url: URL) -> dict[str, Any]:
    """The URL's query parameters as config keys: each value JSON when it parses, else text; a
    key given more than once a list of its values."""
    out: dict[str, Any] = {}
    for key, value in url.query.items():
        if isinstance(value, str):
            out[key] = _json_or_text(value)
        else:
            out[key] = [_json_or_text(v) for v in value]
    return out


def _texts(url: URL, key: str) -> list[str]:
    value = url.query.get(key)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _single(url: URL, key: str) -> str | None:
    values = _texts(url, key)
    if len(values) > 1:
        raise ConfigError(f"the URL parameter {key} is given {len(values)} times: give it once")
    return values[0] if values else None


def _names(values: list[Any]) -> list[str]:
    """``["a,b", "c"]`` or ``[["a", "b"]]`` -> ``["a", "b", "c"]``."""
    out: list[str] = []
    for value in values:
        if isinstance(value, list):
            out.extend(str(v) for v in value)
        elif value not in (None, ""):
            out.extend(s.strip() for s in str(value).split(",") if s.strip())
    return out


def check_url_config(raw: dict[str, Any], model: type[BaseModel], connector: str) -> dict[str, Any]:
    """``raw`` (what a URL mapper made) against the connector's config model.

    A key that is no setting of the model is a ConfigError naming it (a URL parameter that
    would otherwise be ignored, or refused later as an unknown field); a text or several values
    where the setting is a list become a list (``a,b`` -> ``["a", "b"]``); several values where
    it is not are left to the model's validation (which refuses them, naming the field).
    """
    fields: dict[str, Any] = {}
    for name, field_info in model.model_fields.items():
        fields[name] = field_info
        if field_info.alias:
            fields[field_info.alias] = field_info
    out: dict[str, Any] = {}
    for key, value in raw.items():
        info = fields.get(key)
        if info is None:
            settings = ", ".join(sorted(k for k in fields if not k.startswith("_")))
            raise ConfigError(
                f"the URL parameter {key!r} is not a setting of {connector} (its settings: {settings})"
            )
        if typing.get_origin(info.annotation) is list:
            if isinstance(value, str):
                value = _names([value])
            elif isinstance(value, list):
                value = [v for item in value for v in (_names([item]) if isinstance(item, str) else [item])]
        out[key] = value
    return out


# ================================================================================= helpers


def sqlite_url_config(url: URL, kind: str = "") -> dict[str, Any]:
    """``sqlite:///rel.db`` -> ``{"path": "rel.db"}``; ``sqlite:////abs.db`` -> ``{"path": "/abs.db"}``."""
    if url.host or url.username or url.port:
        raise ConfigError(
            "a sqlite URL has no host: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    if not url.database:
        raise ConfigError("the sqlite URL names no file: write sqlite:///path/to/file.db")
    return {"path": url.database, **url_query(url)}


def server_url_config(url: URL, default_port: int) -> dict[str, Any]:
    """``scheme://user:pass@host:port/db`` -> host, port, database, username, password (the last
    two only when the URL has them); the query is left to the caller."""
    scheme = url.drivername
    if not url.host:
        raise ConfigError(f"the {scheme} URL names no host: write {scheme}://user:pass@host/db")
    if not url.database:
        raise ConfigError(f"the {scheme} URL names no database: write {scheme}://host/database")
    config: dict[str, Any] = {"host": url.host, "port": url.port or default_port, "database": url.database}
    if url.username:
        config["username"] = url.username
    if url.password is not None:
        config["password"] = url.password
    return config


# ---------------------------------------------------------------------------------- PostgreSQL

POSTGRES_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_POSTGRES_CERT_FILES = {
    "sslrootcert": "ca_certificate",
    "sslcert": "client_certificate",
    "sslkey": "client_key",
}
LIBPQ_PARAMETERS = frozenset(
    {
        "application_name",
        "fallback_application_name",
        "connect_timeout",
        "client_encoding",
        "options",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "target_session_attrs",
        "load_balance_hosts",
        "channel_binding",
        "require_auth",
        "gssencmode",
        "gsslib",
        "gssdelegation",
        "krbsrvname",
        "requirepeer",
        "service",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "sslcertmode",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)
"""libpq's connection parameters a PostgreSQL URL passes through as ``connection_parameters``
(the connection's own fields and the SSL files have settings of their own)."""


def read_certificate(parameter: str, path: str) -> str:
    """The text of the file a URL names in ``parameter`` (``sslrootcert=/etc/ssl/ca.pem``)."""
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"the URL parameter {parameter} names a file that cannot be read ({path}: {reason})"
        ) from None


def postgres_url_config(url: URL, kind: str) -> dict[str, Any]:
    """``postgresql://user:pass@host:port/db?sslmode=verify-full&sslrootcert=ca.pem&schema=a,b``.

    ``sslmode`` becomes ``ssl_mode``; ``sslrootcert``, ``sslcert`` and ``sslkey`` name files
    whose text becomes the mode's certificates (only with ``verify-ca`` or ``verify-full``, the
    modes that use them), ``sslpassword`` the key's password. The other libpq parameters go to
    ``connection_parameters``; ``schema``/``schemas`` become ``schemas`` (a list) for a source and
    ``schema`` (exactly one) for a destination. Whatever else the query holds is left as config
    keys (:func:`url_query`), for :func:`check_url_config`.
    """
    config = server_url_config(url, 5432)
    query = url_query(url)
    for key in ("schema", "schemas", "sslmode", "sslpassword", *_POSTGRES_CERT_FILES, *LIBPQ_PARAMETERS):
        query.pop(key, None)
    names = _names(_texts(url, "schema") + _texts(url, "schemas"))
    if names:
        if kind == "source":
            config["schemas"] = names
        elif len(names) == 1:
            config["schema"] = names[0]
        else:
            raise ConfigError("a destination writes into one schema: give a single ?schema=")
    ssl = _postgres_ssl(url)
    if ssl is not None:
        config["ssl_mode"] = ssl
    parameters = {key: value for key in sorted(LIBPQ_PARAMETERS) if (value := _single(url, key)) is not None}
    if parameters:
        config["connection_parameters"] = parameters
    return {**config, **query}


def _postgres_ssl(url: URL) -> dict[str, Any] | None:
    mode = _single(url, "sslmode")
    files = {key: path for key in _POSTGRES_CERT_FILES if (path := _single(url, key)) is not None}
    key_password = _single(url, "sslpassword")
    if mode is None and not files and key_password is None:
        return None
    if mode is not None and mode not in POSTGRES_SSL_MODES:
        raise ConfigError(f"the URL parameter sslmode={mode!r} is not one of {', '.join(POSTGRES_SSL_MODES)}")
    verifying = mode in ("verify-ca", "verify-full")
    if (files or key_password is not None) and not verifying:
        given = ", ".join(sorted(files) + (["sslpassword"] if key_password is not None else []))
        raise ConfigError(
            f"the URL gives {given} with sslmode={mode or 'prefer (the default)'}: the certificates are "
            "used with sslmode=verify-full (or verify-ca); add it"
        )
    if not verifying:
        return {"mode": mode}
    if "sslrootcert" not in files:
        raise ConfigError(
            f"sslmode={mode} checks the server's certificate against a CA: add sslrootcert=PATH "
            "(the CA certificate's file)"
        )
    ssl: dict[str, Any] = {"mode": mode}
    for parameter, path in files.items():
        ssl[_POSTGRES_CERT_FILES[parameter]] = read_certificate(parameter, path)
    if key_password is not None:
        ssl["client_key_password"] = key_password
    return ssl


# ---------------------------------------------------------------------------------- MySQL

MYSQL_SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
_MYSQL_SSL_SPELLINGS = {
    "mode": ("ssl_mode", "ssl-mode", "sslMode"),
    "ca": ("ssl_ca", "ssl-ca", "sslCa"),
    "cert": ("ssl_cert", "ssl-cert", "sslCert"),
    "key": ("ssl_key", "ssl-key", "sslKey"),
}
MYSQL_SSL_PARAMETERS = frozenset(s for spellings in _MYSQL_SSL_SPELLINGS.values() for s in spellings)
"""The URL parameters :func:`mysql_ssl_query` reads."""


def mysql_ssl_query(url: URL) -> tuple[dict[str, str] | None, dict[str, Any]]:
    """MySQL's SSL parameters of a URL, as the mysql client and Connector/J write them:
    ``ssl_mode`` (``DISABLED``, ``PREFERRED``, ``REQUIRED``, ``VERIFY_CA``, ``VERIFY_IDENTITY``,
    any case; ``ssl-mode``, ``sslMode``), ``ssl_ca``, ``ssl_cert``, ``ssl_key`` (files).

    Returns the SSL settings and the other parameters (:func:`url_query`). The settings are
    None when the URL has none, else ``{"mode": "verify_ca", "ca": <text>, "cert": <text>, "key":
    <text>}`` (the files read, only those given; the mode lower case). The files
    are used only to check the server (``verify_ca``, ``verify_identity``): given with another
    mode, or a verifying mode without ``ssl_ca``, is a ConfigError.
    """
    given: dict[str, str] = {}
    for role, spellings in _MYSQL_SSL_SPELLINGS.items():
        found = [(s, v) for s in spellings for v in _texts(url, s)]
        if len(found) > 1:
            raise ConfigError(f"the URL gives {' and '.join(s for s, _ in found)}: give one")
        if found:
            given[role] = found[0][1]
    rest = {k: v for k, v in url_query(url).items() if k not in MYSQL_SSL_PARAMETERS}
    if not given:
        return None, rest
    mode = given.get("mode", "preferred").lower().replace("-", "_")
    if mode not in MYSQL_SSL_MODES:
        raise ConfigError(
            f"the URL parameter ssl_mode is not one of {', '.join(m.upper() for m in MYSQL_SSL_MODES)}"
        )
    out = {"mode": mode}
    files = {role: path for role, path in given.items() if role != "mode"}
    if files and mode not in ("verify_ca", "verify_identity"):
        raise ConfigError(
            f"the URL gives SSL files with ssl_mode={mode.upper()}: they are used with "
            "ssl_mode=VERIFY_IDENTITY (or VERIFY_CA); add it"
        )
    if mode in ("verify_ca", "verify_identity") and "ca" not in files:
        raise ConfigError(
            f"ssl_mode={mode.upper()} checks the server's certificate: add ssl_ca=PATH (the CA's file)"
        )
    for role, path in files.items():
        out[role] = read_certificate(f"ssl_{role}", path)
    return out, rest
