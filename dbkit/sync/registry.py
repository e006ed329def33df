"""The connectors ``dbkit sync`` knows by name, and database URLs -> connector configs.

A connector is named by its console script (``source-sqlite``); the registry says which Python
module implements it (for ``--in-process`` runs and for loading its config model, whose secret
fields are then masked) and which URL schemes map to it. Adding a connector is one line in
:data:`KNOWN`. A name the registry does not know can still be run as a subprocess when a console
script of that name is installed: dbkit then knows nothing of its config and masks the values of
keys that look secret (password, token, ...).

URLs (``--source sqlite:///demo.db``) become configs:

- ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db`` (SQLAlchemy's convention:
  what follows the third slash is the path) -> ``{"path": ...}``;
- ``postgresql://user:pass@host:5432/db?schema=public`` -> ``host``, ``port``, ``database``,
  ``username``, ``password`` and ``schemas`` (a list, for a source) or ``schema`` (a destination);
- ``mysql://user:pass@host:3306/db`` -> ``host``, ``port``, ``database``, ``username``, ``password``.

Every other query parameter becomes a config key; its value is read as JSON when it parses
(``?checkpoint_records=500``, ``?include_tables=["a*"]``), else kept as text.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from dbkit.errors import ConfigError

UrlMapper = Callable[[urllib.parse.SplitResult, str], dict[str, Any]]


class ConnectorNotInstalled(ConfigError):
    """The connector is known (or was named) but cannot be found in this installation."""


# ------------------------------------------------------------------------------------ URL mappers


def _query(parts: urllib.parse.SplitResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def sqlite_config(parts: urllib.parse.SplitResult, kind: str) -> dict[str, Any]:
    """``sqlite:///rel.db`` -> ``{"path": "rel.db"}``; ``sqlite:////abs.db`` -> ``{"path": "/abs.db"}``."""
    if parts.netloc:
        raise ConfigError(
            "a sqlite URL has no host: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = urllib.parse.unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigError("the sqlite URL names no file: write sqlite:///path/to/file.db")
    return {"path": path, **_query(parts)}


def _server_config(parts: urllib.parse.SplitResult, default_port: int) -> dict[str, Any]:
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


def postgres_config(parts: urllib.parse.SplitResult, kind: str) -> dict[str, Any]:
    """``postgresql://user:pass@host:port/db?schema=a,b``.

    A source gets ``schemas`` (a list), a destination ``schema`` (exactly one).
    """
    config = _server_config(parts, 5432)
    query = _query(parts)
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


def mysql_config(parts: urllib.parse.SplitResult, kind: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port/db`` (MySQL has no schemas below a database)."""
    return {**_server_config(parts, 3306), **_query(parts)}


# ------------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class ConnectorInfo:
    """How to find and configure one connector.

    ``module`` is imported for in-process runs; the connector class is ``attribute`` when given,
    else the class in the module whose ``name`` equals ``name``. ``factory``, when set, builds the
    connector directly (tests register connectors that have no module of their own).
    """

    name: str
    kind: str  # "source" | "destination"
    module: str | None = None
    attribute: str | None = None
    schemes: tuple[str, ...] = ()
    url_config: UrlMapper | None = None
    factory: Callable[[], Any] | None = None

    def connector_class(self) -> Any:
        """The connector class (or factory result's class); raises ConnectorNotInstalled."""
        if self.factory is not None:
            return type(self.factory())
        if self.module is None:
            raise ConnectorNotInstalled(
                f"connector {self.name} is not installed as a Python package here; "
                "run it as a subprocess (without --in-process)"
            )
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ConnectorNotInstalled(
                f"connector {self.name} is not installed (cannot import {self.module}: {exc})"
            ) from None
        if self.attribute:
            return getattr(module, self.attribute)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and getattr(value, "name", None) == self.name
                and hasattr(value, "kind")
            ):
                return value
        raise ConnectorNotInstalled(f"module {self.module} defines no connector named {self.name}")

    def create(self) -> Any:
        """A fresh connector object for an in-process run."""
        if self.factory is not None:
            return self.factory()
        return self.connector_class()()

    def config_model(self) -> type[BaseModel] | None:
        """The connector's config model, or None when it cannot be imported here."""
        try:
            model = getattr(self.connector_class(), "config_model", None)
        except ConfigError:
            return None
        return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _entry(
    name: str, module: str, schemes: tuple[str, ...] = (), url: UrlMapper | None = None
) -> ConnectorInfo:
    return ConnectorInfo(name, name.split("-", 1)[0], module, schemes=schemes, url_config=url)


# One line per connector: console script, Python module, URL schemes, URL -> config.
KNOWN: list[ConnectorInfo] = [
    _entry("source-sqlite", "source_sqlite", ("sqlite",), sqlite_config),
    _entry("destination-sqlite", "destination_sqlite", ("sqlite",), sqlite_config),
    _entry("source-postgres", "source_postgres", ("postgresql", "postgres"), postgres_config),
    _entry("destination-postgres", "destination_postgres", ("postgresql", "postgres"), postgres_config),
    _entry("source-mysql", "source_mysql", ("mysql", "mariadb"), mysql_config),
    _entry("destination-mysql", "destination_mysql", ("mysql", "mariadb"), mysql_config),
]


def register(info: ConnectorInfo) -> None:
    """Add (or replace) a connector; for plugins and tests."""
    KNOWN[:] = [k for k in KNOWN if k.name != info.name]
    KNOWN.append(info)


def unregister(name: str) -> None:
    KNOWN[:] = [k for k in KNOWN if k.name != name]


def lookup(name: str) -> ConnectorInfo | None:
    return next((k for k in KNOWN if k.name == name), None)


def is_url(text: str) -> bool:
    scheme = text.split("://", 1)[0] if "://" in text else ""
    return bool(scheme) and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


@dataclass(frozen=True)
class ResolvedConnector:
    """A connector chosen on the command line, with the config derived from a URL (if any)."""

    info: ConnectorInfo
    url_config: dict[str, Any] | None


def resolve(name_or_url: str, kind: str) -> ResolvedConnector:
    """``source-sqlite`` or ``sqlite:///x.db`` -> the connector and (for a URL) its config.

    Raises ConfigError for an unknown URL scheme, a name of the wrong kind, or a malformed URL.
    A name the registry does not know is accepted (as a subprocess connector of ``kind``).
    """
    if is_url(name_or_url):
        parts = urllib.parse.urlsplit(name_or_url)
        scheme = parts.scheme.split("+", 1)[0].lower()
        for info in KNOWN:
            if info.kind == kind and scheme in info.schemes and info.url_config is not None:
                return ResolvedConnector(info, info.url_config(parts, kind))
        schemes = sorted({s for k in KNOWN if k.kind == kind for s in k.schemes})
        raise ConfigError(f"no {kind} connector handles {scheme}:// URLs (known: {', '.join(schemes)})")
    known = lookup(name_or_url)
    if known is None:
        if not name_or_url or "/" in name_or_url or name_or_url.startswith("-"):
            raise ConfigError(f"{name_or_url!r} is neither a connector name nor a URL")
        return ResolvedConnector(ConnectorInfo(name_or_url, kind), None)
    if known.kind != kind:
        raise ConfigError(f"{known.name} is a {known.kind} connector, not a {kind}")
    return ResolvedConnector(known, None)


def find_executable(name: str) -> str:
    """The console script ``name``: next to the running Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise ConnectorNotInstalled(
        f"connector {name} is not installed (no {name!r} command next to {sys.executable} or on PATH)"
    )
