"""Capabilities and the dialect base shared by sources and destinations.

Capabilities are data: a frozen dataclass the framework and the acceptance suites consult. A
suite skips a case because a capability says so, never because of a database's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

from dbkit.errors import DbkitError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass(frozen=True)
class Capabilities:
    """Every limit and flag of a database that the toolkit and the acceptance suites consult
    (one object per dialect; a field nothing reads does not belong here)."""

    # --- shared
    namespaces: bool = True
    """Streams may carry a namespace that maps to a schema (or database)."""
    max_identifier_bytes: int = 63
    """Longest table / column name, in UTF-8 bytes (longer names are cut and hashed)."""
    identifier_case_insensitive: bool = False
    """Two names differing only by case are the same object (SQLite, MySQL columns)."""
    # --- source
    row_value_comparison: bool = True
    """``(a, b) > (:x, :y)`` is supported and uses an index."""
    concurrent_reads: bool = True
    """Several streams can be read at once on separate connections."""
    # --- destination: names
    identifier_case: str = "preserve"
    """How names are written: ``preserve``, ``lower`` or ``upper``."""
    reserved_table_prefixes: tuple[str, ...] = ()
    """Table names the database keeps for itself (e.g. SQLite's ``sqlite_``)."""
    # --- destination: tables
    drop_cascade: bool = True
    """``DROP TABLE ... CASCADE`` exists (dependent views can be dropped with the table)."""
    alter_column_type: bool = True
    """Columns can be widened in place (else the loader leaves a column's type as it is)."""
    # --- destination: values
    timestamp_years: tuple[int, int] = (-4712, 294276)
    """Years a timestamp column can hold (astronomical numbering)."""
    text_nul_bytes: bool = True
    """Text values may contain NUL (U+0000) characters."""
    json_nul_bytes: bool = True
    """Strings inside JSON values may contain NUL (PostgreSQL's jsonb cannot)."""
    float_json_numbers: bool = False
    """A JSON column stores a bare number as an int64 or IEEE double (SQLite's NUMERIC affinity)."""
    json_depth: int | None = None
    """Deepest nesting of arrays and objects a JSON column takes (PostgreSQL's jsonb: 10,000; its
    parser recurses); a deeper value is NULL with a change. None: any depth (text)."""
    number_digits: tuple[int, int] | None = None
    """Most digits a number may have before and after the decimal point (PostgreSQL's numeric:
    (131072, 16383)); None: no limit."""
    json_number_digits: bool = True
    """Numbers inside JSON values obey ``number_digits`` too (PostgreSQL's jsonb stores them as
    numeric); False: a JSON column keeps any number as its text (MariaDB's JSON is text)."""
    max_zone_seconds: int = 24 * 3600 - 1
    """Largest time zone offset a ``time with time zone`` value may carry (PostgreSQL: 15:59:59)."""
    # --- destination: loading
    background_loading: bool = False
    """Batches may be loaded on another thread while the consumer reads on (the dialect's
    connections may be used from a thread other than the one that opened them)."""
    parallel_loads: int = 1
    """Append batches loaded at once, each on a connection of its own, when the config does not
    say (``parallel_loads``; only with ``background_loading``)."""


class Dialect(Generic[ConfigT]):
    """What a connector tells the toolkit about its database.

    Subclasses set ``name``, ``capabilities`` and implement :meth:`sqlalchemy_url`. One dialect
    object is made per connector run, from the validated config.
    """

    name: ClassVar[str] = "generic"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    # ------------------------------------------------------------------ connection
    def open(self) -> None:
        """Set up what connections need before the engine exists (an SSH tunnel, certificate
        files); called once by :class:`~dbkit.db.database.Database`, undone by :meth:`close`."""

    def close(self) -> None:
        """Undo :meth:`open`; must be idempotent."""

    def sqlalchemy_url(self) -> sa.URL:
        raise NotImplementedError

    def engine_options(self) -> dict[str, Any]:
        """Extra ``create_engine`` keyword arguments (connect_args, pool settings, ...)."""
        return {}

    def on_connect(self, dbapi_connection: Any) -> None:
        """Called for every new DBAPI connection (session settings: time zone, formats)."""

    def engine_events(self, engine: sa.Engine) -> None:
        """Register engine-level event listeners (e.g. how a transaction begins)."""

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        """Turn a driver exception into ConfigError / TransientError / SystemFailure, or None."""
        return None

    def describe_target(self) -> str:
        """A short, secret-free description of where we connect (for messages)."""
        url = self.sqlalchemy_url()
        where = url.host or url.database or "?"
        if url.port:
            where += f":{url.port}"
        if url.host and url.database:
            where += f"/{url.database}"
        return f"{self.name} at {where}"
