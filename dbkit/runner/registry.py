"""The connectors ``dbkit sync`` knows by name, and database URLs -> connector configs.

A connector is found through its package's ``dbkit.connectors`` entry point: the entry point's
name is the connector's console script (``source-sqlite``), its object the connector class
(``source_sqlite:SqliteSource``), imported only when it is needed (for ``--in-process`` runs,
for its config model, whose secret fields are then masked, and for its URLs). Installing a
connector package is all it takes; :func:`register` adds one at run time (tests, plugins). A name
no entry point declares can still be run as a subprocess when a console script of that name is
installed: dbkit then knows nothing of its config and masks the values of keys that look secret
(password, token, ...).

URLs (``--source sqlite:///demo.db``) become configs through the connector's config model: its
``url_schemes`` and ``url_config`` (see :class:`dbkit.config.ConnectorConfig` and
:mod:`dbkit.urls`), after SQLAlchemy's parser read them; every parameter is then checked
against the config model (:func:`dbkit.urls.check_url_config`).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from dbkit.config import ConnectorConfig
from dbkit.entrypoint import Connector
from dbkit.errors import ConfigError
from dbkit.urls import UrlMapper, check_url_config, parse_url

ENTRY_POINT_GROUP = "dbkit.connectors"
KINDS = ("source", "destination")


class ConnectorNotInstalled(ConfigError):
    """The connector is known (or was named) but cannot be found in this installation."""


# ------------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class ConnectorInfo:
    """How to find and configure one connector.

    ``module`` (and ``attribute``, the connector class in it) is what its entry point names,
    imported only when needed; without ``attribute`` the class is the one in the module whose
    ``name`` equals ``name``. ``factory``, when set, builds the connector directly (tests register
    connectors that have no module of their own). ``schemes`` and ``url_config``, when given,
    override what the connector's config model declares (for a connector that is not installed).
    ``command``, when set, is the argv prefix that runs it as a subprocess instead of a console
    script of its name (a manifest: ``dbkit run MANIFEST``).
    """

    name: str
    kind: str  # "source" | "destination"
    module: str | None = None
    attribute: str | None = None
    schemes: tuple[str, ...] = ()
    url_config: UrlMapper | None = None
    factory: Callable[[], Connector] | None = None
    command: tuple[str, ...] = ()

    def connector_class(self) -> type[Connector]:
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
        candidates = (
            [getattr(module, self.attribute, None)] if self.attribute else list(vars(module).values())
        )
        for value in candidates:
            if (
                isinstance(value, type)
                and getattr(value, "name", None) == self.name
                and hasattr(value, "kind")
            ):
                return value
        raise ConnectorNotInstalled(f"module {self.module} defines no connector named {self.name}")

    def create(self) -> Connector:
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

    def url_schemes(self) -> tuple[str, ...]:
        """The URL schemes this connector takes (none when it cannot be imported here)."""
        if self.schemes or self.url_config is not None:
            return self.schemes
        model = self.config_model()
        if model is None or not issubclass(model, ConnectorConfig) or model.url_config is None:
            return ()
        return model.url_schemes

    def config_from_url(self, url: sa.URL) -> dict[str, Any]:
        """The raw config of a URL with one of :meth:`url_schemes`; ConfigError when malformed or
        when it has a parameter that is no setting of the connector's config model."""
        mapper = self.url_config
        model = self.config_model() if mapper is None or self.module is not None else None
        if mapper is None and model is not None and issubclass(model, ConnectorConfig):
            mapper = model.url_config
        if mapper is None:
            raise ConfigError(f"connector {self.name} takes no URL")
        raw = mapper(url, self.kind)
        return raw if model is None else check_url_config(raw, model, self.name)


def discovered() -> list[ConnectorInfo]:
    """Every connector an installed package declares in the ``dbkit.connectors`` entry points,
    by name; its kind is the name's prefix (``source-``, ``destination-``). Imports nothing."""
    found: dict[str, ConnectorInfo] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        kind = point.name.split("-", 1)[0]
        if kind in KINDS and point.name not in found:
            found[point.name] = ConnectorInfo(point.name, kind, point.module, point.attr or None)
    return sorted(found.values(), key=lambda info: info.name)


KNOWN: list[ConnectorInfo] = discovered()


def register(info: ConnectorInfo) -> None:
    """Add (or replace) a connector; for plugins and tests."""
    KNOWN[:] = [k for k in KNOWN if k.name != info.name]
    KNOWN.append(info)


def unregister(name: str) -> None:
    KNOWN[:] = [k for k in KNOWN if k.name != name]


@contextmanager
def registered(*infos: ConnectorInfo) -> Iterator[None]:
    """``register`` these for the block, then put back what was known before (an installed
    connector a stand-in replaced comes back)."""
    before = list(KNOWN)
    for info in infos:
        register(info)
    try:
        yield
    finally:
        KNOWN[:] = before


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
        scheme = name_or_url.partition("://")[0].split("+", 1)[0].lower()
        candidates = [info for info in KNOWN if info.kind == kind]
        for info in candidates:
            if scheme in info.url_schemes():
                return ResolvedConnector(info, info.config_from_url(parse_url(name_or_url)))
        schemes = sorted({s for info in candidates for s in info.url_schemes()})
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
