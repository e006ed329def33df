"""A connector as a person names it (console script name or database URL) plus its config (a
JSON file or a dict) -> an :class:`~dbkit.runner.request.Endpoint`, its secrets registered with
the masker before anything can print them. Shared by ``dbkit sync`` and :mod:`dbkit.api`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dbkit.config import MASKER, register_url_secrets
from dbkit.errors import ConfigError
from dbkit.protocol import ProtocolInputError
from dbkit.protocol.jsonio import read_json_file
from dbkit.runner.registry import is_url, resolve
from dbkit.runner.request import Endpoint, register_config_secrets

ConfigSource = Mapping[str, Any] | str | os.PathLike[str] | None
"""A config: a dict, the path of a JSON file, or None (the URL says everything)."""


def load_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The JSON object in the file ``path``; ConfigError naming the file when it is not one."""
    try:
        doc = read_json_file(os.fspath(path), what)
    except ProtocolInputError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} file {os.fspath(path)} must hold a JSON object")
    return doc


def make_endpoint(name_or_url: str, config: ConfigSource, kind: str, missing_config: str) -> Endpoint:
    """The connector ``name_or_url`` with its config: ``config`` (a dict or a JSON file), with the
    parts of a URL on top. ConfigError for an unknown connector, a bad URL, an unreadable config
    file, or (with ``missing_config`` as its message) a name given without a config."""
    if not isinstance(name_or_url, str):
        raise ConfigError(
            f"{kind}: expected a connector name or URL (a string), got {type(name_or_url).__name__}"
        )
    if is_url(name_or_url):
        register_url_secrets(name_or_url)  # before anything can print it, whatever its shape
    given: dict[str, Any] = {}
    if isinstance(config, Mapping):
        given = dict(config)
    elif config is not None:
        given = load_json_object(config, f"{kind} config")
    if kind == "source" and name_or_url.endswith((".yaml", ".yml")):
        from dbkit.manifest.run import manifest_connector

        info = manifest_connector(name_or_url)
        if config is None:
            raise ConfigError(missing_config.replace(", or use a URL", ""))
        register_config_secrets(info, given)
        return Endpoint(info, given, f"{info.name} ({name_or_url})")
    resolved = resolve(name_or_url, kind)
    if resolved.url_config is not None:
        given = {**given, **resolved.url_config}
    elif config is None:
        raise ConfigError(missing_config)
    register_config_secrets(resolved.info, given)
    label = MASKER.mask(name_or_url) if is_url(name_or_url) else resolved.info.name
    return Endpoint(resolved.info, given, label)
