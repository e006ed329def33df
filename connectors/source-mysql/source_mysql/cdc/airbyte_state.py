"""Airbyte's own source-mysql CDC state -> where dbkit resumes, so that a connection moves from
Airbyte's connector to dbkit without a resync (pure functions: no I/O).

Airbyte keeps Debezium's MySQL offset in ``shared_state.state.mysql_cdc_offset``: one entry whose
key is the JSON text ``["<db>",{"server":"<db>"}]`` and whose value is the JSON text of the offset,
``{"file": "mysql-bin.000003", "pos": 2497, "gtids": "...", "row": 1, "event": 2, "ts_sec": ...}``
(next to it ``mysql_db_history``, Debezium's schema history, which dbkit does not need).
Debezium's ``pos`` is where it restarts: the start of the transaction it was inside (``event``
and ``row`` then count what of it was already sent) or a transaction boundary. dbkit resumes at
``pos``: a transaction partly sent is read again whole (idempotent in a dedup destination).
Streams whose Airbyte state is a cursor-shaped one are snapshotted; those with an initial-load
state (``state_type`` ``primary_key``) are snapshotted again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dbkit import ConfigError

OFFSET_KEY = "mysql_cdc_offset"
SNAPSHOT_IN_PROGRESS = frozenset({"primary_key", "cursor_based", "ctid"})


def is_airbyte_shared_state(shared: Mapping[str, Any] | None) -> bool:
    """True for a shared state in Airbyte source-mysql's shape."""
    state = shared.get("state") if isinstance(shared, Mapping) else None
    return isinstance(state, Mapping) and OFFSET_KEY in state


def airbyte_offset(shared: Mapping[str, Any]) -> tuple[str, int, str]:
    """(file, pos, gtids) of Airbyte's saved Debezium offset; ConfigError for another shape."""
    entries = shared["state"][OFFSET_KEY]
    if isinstance(entries, str | bytes):
        try:
            entries = orjson.loads(entries)
        except orjson.JSONDecodeError:
            entries = None
    if not isinstance(entries, Mapping) or len(entries) != 1:
        raise ConfigError(
            f"the saved state is not Airbyte source-mysql's CDC state (expected one Debezium offset in "
            f"shared_state.state.{OFFSET_KEY}): reset the connection"
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
    file, pos = offset.get("file"), offset.get("pos")
    if not isinstance(file, str) or not file or isinstance(pos, bool) or not isinstance(pos, int) or pos < 4:
        raise ConfigError(
            f"the Debezium offset in Airbyte's CDC state has file {file!r} and pos {pos!r}, not a binlog "
            "position: reset the connection"
        )
    gtids = offset.get("gtids")
    return file, pos, gtids if isinstance(gtids, str) else ""


def snapshot_complete(stream_state: Mapping[str, Any] | None) -> bool:
    """True when an Airbyte stream state says its initial snapshot is done."""
    if not stream_state:
        return False
    return stream_state.get("state_type") not in SNAPSHOT_IN_PROGRESS
