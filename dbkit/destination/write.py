"""The per-write objects: what one ``write`` was asked to do, and what it remembers meanwhile.

A dialect and its roles are configuration and behaviour only, shared by every write they serve;
anything one write learns or decides (the column defaults it set, the tombstones it filled, the
logger to report to) lives in its :class:`WriteContext`, made once per ``write`` by
:class:`~dbkit.destination.connector.SqlDestination` and handed to the loaders and the role
methods that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Log = Callable[[str, str], None]
"""Where a write reports what it did: ``log(level, message)``."""

TableKey = tuple[str | None, str]
"""A table as (schema, name)."""


def no_log(level: str, message: str) -> None:
    """A :data:`Log` that drops every message."""


@dataclass(frozen=True)
class WriteOptions:
    """The user's choices that change how a write treats existing data (from the connector's
    config, by :meth:`~dbkit.destination.dialect.DestinationDialect.write_options`)."""

    drop_cascade: bool = False
    """Objects depending on a table being replaced or altered (views, foreign keys) are dropped
    with it; off: the write stops with a config error naming them."""
    hard_delete: bool = True
    """A CDC deletion (``_ab_cdc_deleted_at`` set) removes the row; off (soft delete): the row is
    kept with the column set."""


@dataclass
class WriteContext:
    """The state of one write, shared by its stream loaders and passed to the role methods that
    remember something between calls. Used from the consumer's thread and the loading threads:
    ordered loads (setup, merges, swaps) run alone, but plain appends may run side by side
    (``parallel_loads``), and those only read it, except a bulk loader's ``defaults_as_set[key]
    = None`` (a single dict assignment)."""

    options: WriteOptions = field(default_factory=WriteOptions)
    log: Log = no_log
    column_defaults: dict[TableKey, tuple[str, int | None]] = field(default_factory=dict)
    """Tables whose ``_airbyte_meta`` / ``_airbyte_generation_id`` column defaults this write
    set (:meth:`TableOperations.prepare_table`), with the values: a loader may then omit them."""
    defaults_as_set: dict[TableKey, object] = field(default_factory=dict)
    """For tables in ``column_defaults``: those defaults as the database showed them right after
    this write set them (in the dialect's own form; None once they were found changed), so that
    a loader can tell whether a concurrent write into the same table has set its own since."""
    tombstones_used: set[str] = field(default_factory=set)
    """Tombstone tables that hold at least one deletion of this write."""
    key_indexed: dict[TableKey, bool] = field(default_factory=dict)
    """Whether a table has an index the merge can probe on its key (found out once per write)."""
