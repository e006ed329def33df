"""A manifest once loaded and checked: plain frozen data the dialect and the source read."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbkit.db.types import TypeHandler
from dbkit.manifest.templates import Template
from dbkit.source.queries import QueryStream


@dataclass(frozen=True)
class ErrorRule:
    """``errors[i]``: every condition given must match the driver error."""

    failure_type: str  # "config_error" | "transient_error"
    where: str
    sqlstate: str | None = None
    code: int | None = None
    message: re.Pattern[str] | None = None
    classifier: Callable[[BaseException], bool] | None = None
    hint: str | None = None


@dataclass(frozen=True)
class TypeRule:
    names: tuple[str, ...]
    handler: TypeHandler


@dataclass(frozen=True)
class Connection:
    driver: str
    parts: dict[str, Template]  # host, port, database, username, password
    query: dict[str, Template]


@dataclass(frozen=True)
class Manifest:
    """What a manifest file says, checked (see :mod:`dbkit.manifest.loader`)."""

    file: Path
    name: str
    connection: Connection
    description: str = ""
    documentation_url: str | None = None
    tables: bool = True
    schemas: tuple[Template, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    streams: tuple[QueryStream, ...] = ()
    types: tuple[TypeRule, ...] = ()
    errors: tuple[ErrorRule, ...] = ()
    raw: Any = field(default=None, compare=False, repr=False)
