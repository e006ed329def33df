"""Which table a refresh loads into: the generation-id rule of Airbyte's own destinations.

A stream asks for a *refresh* with ``destination_sync_mode: overwrite`` or with
``minimum_generation_id == generation_id > 0`` (a truncate refresh,
:attr:`~dbkit.protocol.ConfiguredStream.replaces_data`). The refresh must end with the rows of
generations before the minimum gone and the rows at or past it kept. Airbyte's Kotlin CDK
(``DirectLoadTableAppendTruncateStreamLoader``; before it ``AbstractStreamOperation``) decides
where such a write loads, once, before its first record; dbkit follows the same rule. The
generation of a table is that of any one of its rows (a NULL generation, or no generation
column, counts as 0):

1. ``<table>_airbyte_tmp`` exists (an attempt was interrupted): when it is empty or its
   generation is at least the minimum it is *resumed*, otherwise it is dropped and made again.
   Batches go into it, and it replaces the final table when the stream is COMPLETE.
2. Otherwise, when the final table does not exist, is empty, or its generation is at least the
   minimum, batches go straight into the final table, and nothing is swapped or deleted at the
   end: an earlier attempt already swapped this generation in (or there is nothing to replace).
   This is also why PyAirbyte's writes keep their rows: it sends ``generation_id =
   minimum_generation_id = 1`` on every write, so the first write makes the table at generation
   1 and every later one adds to it (appends, or merges in append_dedup mode).
3. Otherwise (the final table holds an older generation) a new temporary table is made and
   replaces the final table when the stream is COMPLETE; until then the final table is untouched.

The minimum is ``minimum_generation_id``, or the ``generation_id`` for an ``overwrite`` sent
with a minimum of 0. Without a ``generation_id`` (a client that sends no generation ids) a
refresh cannot be recognized as done: the final table is always replaced through the temporary
table, and a leftover temporary table is resumed only when it has no generation either.

A merge refresh (``0 < minimum_generation_id < generation_id``) is not a refresh: it loads into
the final table and deletes the older generations when the stream completes (see the loader).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import sqlalchemy as sa

from dbkit.destination.batch import GENERATION_ID
from dbkit.destination.table_ops import TableOperations
from dbkit.protocol import ConfiguredStream


class Target(enum.Enum):
    """Where a refresh loads (see the module doc)."""

    FINAL = "final"
    """Straight into the final table; nothing is swapped at the end."""
    RESUME = "resume"
    """Into the existing temporary table, kept as it is; swapped in on COMPLETE."""
    NEW = "new"
    """Into a new, empty temporary table (a leftover one is dropped); swapped in on COMPLETE."""


@dataclass(frozen=True)
class Held:
    """What the rule looks at in an existing table: whether it has a row, and the generation of
    one row (None: NULL, or the table has no generation column)."""

    rows: bool
    generation: int | None


def refresh_minimum(stream: ConfiguredStream) -> int | None:
    """The generation a refresh keeps rows from; None when the stream has no generation id."""
    if stream.generation_id is None:
        return None
    return stream.minimum_generation_id or stream.generation_id


def held(conn: sa.Connection, tables: TableOperations, namespace: str | None, name: str) -> Held | None:
    """Look at one row of the table (one indexed probe or the first page of a scan, whatever its
    size); None when the table does not exist. Runs in the caller's transaction."""
    columns = tables.existing_columns(conn, namespace, name)
    if columns is None:
        return None
    if GENERATION_ID not in columns:
        table = sa.table(name, schema=namespace)
        row = conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
        return Held(row is not None, None)
    table = sa.table(name, sa.column(GENERATION_ID), schema=namespace)
    found = conn.execute(sa.select(table.c[GENERATION_ID]).limit(1)).first()
    if found is None:
        return Held(False, None)
    return Held(True, None if found[0] is None else int(found[0]))


def is_current(table: Held, minimum: int | None) -> bool:
    """The table holds nothing a refresh from ``minimum`` must drop (judged by one row)."""
    if not table.rows:
        return True
    if minimum is None:
        return table.generation is None
    return (table.generation or 0) >= minimum


def choose_target(tmp: Held | None, final: Held | None, minimum: int | None) -> Target:
    """The rule of the module doc: ``tmp`` and ``final`` as :func:`held` found them (None: no
    such table; ``final`` is not looked at when ``tmp`` exists)."""
    if tmp is not None:
        return Target.RESUME if is_current(tmp, minimum) else Target.NEW
    if minimum is not None and (final is None or is_current(final, minimum)):
        return Target.FINAL
    return Target.NEW
