"""Airbyte's own source-postgres CDC state -> where dbkit resumes, so that a connection moves from
Airbyte's connector to dbkit without a resync (pure functions: no I/O).

Airbyte's GLOBAL state keeps Debezium's offset in ``shared_state.state``: one entry whose key is
the JSON text ``["<name>",{"server":"<name>"}]`` and whose value is the JSON text of the offset,
``{"transaction_id":null,"lsn_proc":N,"lsn_commit":N,"lsn":N,"txId":N,"ts_usec":N}`` (integer
LSNs; only ``lsn``, ``txId`` and ``ts_usec`` in the offset written at the initial snapshot and by
older versions). Each stream's ``stream_state`` is either a snapshot in progress (``state_type``
``ctid`` or ``primary_key``, with its position) or, once the snapshot is done, a cursor-shaped
state (``stream_name``, ``stream_namespace``, ``cursor_field: []``).

Which LSN is safe to resume from (dbkit's position: every transaction committed at or before it
is in the destination; the changes of later commits are read):

- ``lsn_commit``: the commit LSN of the transaction of the last event Debezium processed;
  ``lsn_proc``: that event's own LSN. When ``lsn_proc`` reaches ``lsn_commit`` the transaction
  was processed to its end: resume at ``lsn_commit``. When ``lsn_proc`` is before it, the offset
  was saved inside that transaction: resume just before it (``lsn_commit - 1``), so the whole
  transaction is read again (its changes are idempotent in a dedup destination; Airbyte confirms
  only ``lsn`` <= ``lsn_proc`` to the slot, so the server still has it).
- ``lsn`` alone: the snapshot's consistent point (no change processed since): resume at ``lsn``.
  ``lsn`` is never used when ``lsn_commit`` is there: it is the last event's LSN, inside a
  transaction whose other changes may not have been read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from dbkit import ConfigError
from dbkit.protocol import StreamDescriptor

SNAPSHOT_IN_PROGRESS = frozenset({"ctid", "primary_key"})
"""``state_type`` values of Airbyte's initial-load states (a snapshot not finished)."""


@dataclass(frozen=True)
class AirbyteCdcState:
    """What dbkit takes from an Airbyte source-postgres CDC state: the commit LSN to resume
    from, why, and each stream's snapshot completeness (True: done; False: in progress, read
    again from a new snapshot)."""

    resume_lsn: int
    reason: str
    snapshots: Mapping[StreamDescriptor, bool]


def is_airbyte_shared_state(shared: Mapping[str, Any] | None) -> bool:
    """True for a shared state in Airbyte's source-postgres shape (``{"state": {...}}``)."""
    return bool(shared) and isinstance(shared, Mapping) and isinstance(shared.get("state"), Mapping)


def debezium_offset(shared: Mapping[str, Any]) -> dict[str, Any]:
    """The Debezium offset object of an Airbyte shared state; ConfigError for another shape."""
    entries = shared.get("state")
    if not isinstance(entries, Mapping) or len(entries) != 1:
        raise ConfigError(
            "the saved state is not Airbyte source-postgres's CDC state (expected one Debezium "
            "offset in shared_state.state): reset the connection"
        )
    (value,) = entries.values()
    try:
        offset = orjson.loads(value) if isinstance(value, str | bytes) else value
    except orjson.JSONDecodeError:
        offset = None
    if not isinstance(offset, Mapping):
        raise ConfigError(
            "the Debezium offset in Airbyte's CDC state is not a JSON object: reset the connection"
        )
    return dict(offset)


def _lsn(offset: Mapping[str, Any], key: str) -> int | None:
    value = offset.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"the Debezium offset in Airbyte's CDC state has {key} {value!r}, not an LSN: "
            "reset the connection"
        )
    return value


def resume_lsn(offset: Mapping[str, Any]) -> tuple[int, str]:
    """The commit LSN to resume from and why (the rule is in the module doc)."""
    commit = _lsn(offset, "lsn_commit")
    proc = _lsn(offset, "lsn_proc")
    lsn = _lsn(offset, "lsn")
    if commit is not None:
        if proc is None or proc >= commit:
            return commit, "lsn_commit: the last transaction was processed to its end"
        return commit - 1, "lsn_commit - 1: the offset was saved inside the transaction, read again"
    if lsn is not None:
        return lsn, "lsn: the snapshot's consistent point, no change processed since"
    raise ConfigError("the Debezium offset in Airbyte's CDC state has no LSN: reset the connection")


def snapshot_complete(stream_state: Mapping[str, Any] | None) -> bool:
    """True when an Airbyte stream state says its initial snapshot is done."""
    if not stream_state:
        return False
    return stream_state.get("state_type") not in SNAPSHOT_IN_PROGRESS


def airbyte_cdc_state(
    shared: Mapping[str, Any], streams: Mapping[StreamDescriptor, Mapping[str, Any] | None]
) -> AirbyteCdcState:
    """Airbyte's shared state and stream states -> :class:`AirbyteCdcState` (ConfigError for a
    shape that is not Airbyte source-postgres's CDC state)."""
    lsn, reason = resume_lsn(debezium_offset(shared))
    return AirbyteCdcState(lsn, reason, {d: snapshot_complete(s) for d, s in streams.items()})
