"""Database URLs -> raw connector configs, for ``dbkit sync --source URL``.

A connector's config model declares the URL schemes it takes (``url_schemes``) and turns such a
URL into a raw config (``config_from_url``), usually with one of these helpers:

- :func:`sqlite_url_config`: ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db``
  (SQLAlchemy's convention: what follows the third slash is the path) -> ``{"path": ...}``;
- :func:`server_url_config`: ``scheme://user:pass@host:port/db`` -> ``host``, ``port``,
  ``database``, ``username``, ``password``;
- :func:`postgres_url_config`: the same, plus ``?schema=a,b`` as ``schemas`` (a list, for a
  source) or ``schema`` (exactly one, for a destination).

Every other query parameter becomes a config key; its value is read as JSON when it parses
(``?checkpoint_records=500``, ``?include_tables=["a*"]``), else kept as text (:func:`url_query`).
Every helper raises :class:`~dbkit.errors.ConfigError` for a malformed URL.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

from dbkit.errors import ConfigError

UrlMapper = Callable[[urllib.parse.SplitResult, str], dict[str, Any]]
"""``(url, kind) -> raw config``, ``kind`` being ``"source"`` or ``"destination"``."""


def url_query(parts: urllib.parse.SplitResult) -> dict[str, Any]:
    """The URL's query parameters as config keys, each value JSON when it parses, else text."""
    out: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def sqlite_url_config(parts: urllib.parse.SplitResult, kind: str = "") -> dict[str, Any]:
    """``sqlite:///rel.db`` -> ``{"path": "rel.db"}``; ``sqlite:////abs.db`` -> ``{"path": "/abs.db"}``."""
    if parts.netloc:
        raise ConfigError(
            "a sqlite URL has no host: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = urllib.parse.unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigError("the sqlite URL names no file: write sqlite:///path/to/file.db")
    return {"path": path, **url_query(parts)}


def server_url_config(parts: urllib.parse.SplitResult, default_port: int) -> dict[str, Any]:
    """``scheme://user:pass@host:port/db`` -> host, port, database, username, password (the last
    two only when the URL has them); the query is left to the caller. An ``@`` after the host
    part (a password with an unencoded ``/``, ``?`` or ``#`` ends the host part early) is a
    ConfigError: the rest of the password would be read as port, database or parameters."""
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        # a password holding '/', '?' or '#' ends the host part early: the rest of it would be
        # taken for the port, database or parameters (and printed in errors)
        raise ConfigError(
            f"the {parts.scheme} URL holds an '@' after its host part: percent-encode the special "
            "characters of the user name and password (@ as %40, / as %2F, ? as %3F, # as %23, "
            "% as %25), and every '@' in the database name or the parameters (%40)"
        )
    if not parts.hostname:
        raise ConfigError(f"the {parts.scheme} URL names no host: write {parts.scheme}://user:pass@host/db")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"the {parts.scheme} URL names no database: write {parts.scheme}://host/database")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"the {parts.scheme} URL has an invalid port") from None
    config: dict[str, Any] = {"host": parts.hostname, "port": port, "database": database}
    if parts.username:
        config["username"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        config["password"] = urllib.parse.unquote(parts.password)
    return config


def postgres_url_config(parts: urllib.parse.SplitResult, kind: str) -> dict[str, Any]:
    """``postgresql://user:pass@host:port/db?schema=a,b``.

    A source gets ``schemas`` (a list), a destination ``schema`` (exactly one).
    """
    config = server_url_config(parts, 5432)
    query = url_query(parts)
    schema = query.pop("schema", None)
    schemas = query.pop("schemas", None)
    names: list[str] = []
    for value in (schema, schemas):
        if isinstance(value, list):
            names.extend(str(v) for v in value)
        elif value not in (None, ""):
            names.extend(s.strip() for s in str(value).split(",") if s.strip())
    if names:
        if kind == "source":
            config["schemas"] = names
        elif len(names) == 1:
            config["schema"] = names[0]
        else:
            raise ConfigError("a destination writes into one schema: give a single ?schema=")
    return {**config, **query}
