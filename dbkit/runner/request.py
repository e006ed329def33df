"""What a sync is asked to do: the two :class:`Endpoint` s and the :class:`SyncRequest`, and the
masking of the secrets in an endpoint's config."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbkit.config import MASKER, load_config, looks_secret, register_secrets_in
from dbkit.errors import ConfigError
from dbkit.runner.registry import ConnectorInfo

IDENTITY_KEYS = ("path", "url", "host", "port", "database", "schema", "schemas")


def _url_without_password(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<an unparsable URL>"


@dataclass
class Endpoint:
    """One side of the sync: a connector, its config, and how to name it in output."""

    info: ConnectorInfo
    config: dict[str, Any]
    label: str = ""
    in_process: bool | None = None
    """Run this side in a thread of this process (True) or as a subprocess (False); None: as the
    request says (:attr:`SyncRequest.in_process`). A connector with no console script of its own
    (``dbkit.read``'s Arrow collector) says True."""

    @property
    def name(self) -> str:
        return self.info.name

    def identity(self) -> dict[str, Any]:
        """Where this side reads or writes: the connector and the config values that name a
        database (path, URL without its password, host, port, database, schemas). A state file
        belongs to one source identity and one destination identity."""
        out: dict[str, Any] = {"connector": self.name}
        for key in IDENTITY_KEYS:
            value = self.config.get(key)
            if value is None or value == "" or value == []:
                continue
            if key == "path" and isinstance(value, str):
                value = str(Path(value).expanduser().resolve())
            elif key == "url" and isinstance(value, str):
                value = _url_without_password(value)
            out[key] = value
        return out

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.info.name


@dataclass
class SyncRequest:
    """One sync: ``streams`` None means every discovered stream; ``in_process`` True runs the
    connectors in threads of this process, False as subprocesses, None (the default) decides:
    threads when records travel as Arrow frames between two dbkit connectors installed with this
    interpreter (see :func:`dbkit.runner.runner.in_threads`), else subprocesses."""

    source: Endpoint
    destination: Endpoint
    state_path: Path
    streams: Sequence[str] | None = None
    full_refresh: bool = False
    in_process: bool | None = None
    refresh: Sequence[str] | None = None
    """Streams to refresh (a new generation replacing their rows, their state dropped)."""
    protocol: str = "auto"
    """How records travel: ``arrow``, ``json`` or ``auto`` (arrow when both connectors can;
    see :func:`dbkit.runner.runner.transport`)."""


def register_config_secrets(info: ConnectorInfo, config: Mapping[str, Any]) -> None:
    """Make every secret of ``config`` masked in all output of this process.

    With the connector's config model (importable here), its ``airbyte_secret`` fields are used
    (:func:`dbkit.config.load_config`); in any case the values of keys that look secret
    (password, secret, token, ...) are registered too.
    """
    model = info.config_model()
    if model is not None:
        # on a ConfigError load_config registered what it could; the connector's check explains it
        with contextlib.suppress(ConfigError):
            load_config(model, config)
        register_secrets_in(config, model)
    pending: list[Any] = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if looks_secret(str(key)) and _secret_like(value):
                    MASKER.add(str(value))
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)


def _secret_like(value: Any) -> bool:
    """Strings of any length; numbers only with 4+ digits (a flag or port is no secret)."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and len(str(value)) >= 4
