"""The replication connection's server errors as dbkit errors, each saying what to do.

A user's mistake (missing slot or publication, ``wal_level`` not logical, a role without the
REPLICATION attribute, a lost slot) is a ConfigError; a dropped connection or a server shutting
down a TransientError; anything else a SystemFailure carrying the server's text.
"""

from __future__ import annotations

from dbkit import ConfigError, DbkitError, SystemFailure, TransientError

_TRANSIENT_CLASSES = ("08", "57", "40")


def _first_line(message: str) -> str:
    text = message.strip()
    for prefix in ("ERROR:", "FATAL:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return text.splitlines()[0] if text else "unknown error"


def connect_error(message: str, target: str) -> DbkitError:
    """A replication connection that could not be opened (libpq's message, no SQLSTATE)."""
    detail = message.strip()
    for line in detail.splitlines():
        if "FATAL:" in line:
            detail = line.split("FATAL:", 1)[1].strip()
            break
    lower = detail.lower()
    if "replication role" in lower or "start wal sender" in lower or "permission denied" in lower:
        return ConfigError(
            f"cannot open a replication connection to {target}: {detail}; the user needs the REPLICATION "
            "attribute (ALTER ROLE <user> WITH REPLICATION; on Amazon RDS: GRANT rds_replication TO <user>)",
            internal=message,
        )
    if "pg_hba.conf" in lower:
        return ConfigError(
            f"cannot open a replication connection to {target}: {detail}; allow it in the server's "
            "pg_hba.conf",
            internal=message,
        )
    if "password" in lower or "does not exist" in lower or "authentication" in lower:
        return ConfigError(f"cannot open a replication connection to {target}: {detail}", internal=message)
    return TransientError(
        f"cannot open a replication connection to {target}: {detail} (check the host and port; the "
        "server may be restarting)",
        internal=message,
    )


def server_error(
    sqlstate: str | None,
    message: str,
    *,
    target: str,
    slot: str | None = None,
    publications: tuple[str, ...] = (),
) -> DbkitError:
    """The dbkit error for a server error on a replication connection (``sqlstate`` may be None)."""
    first = _first_line(message)
    lower = first.lower()
    state = sqlstate or ""
    where = f"on {target}"
    if state == "42704" and "replication slot" in lower:
        return ConfigError(
            f"{first} {where}: create it (SELECT pg_create_logical_replication_slot({slot!r}, 'pgoutput')) "
            "or set replication_slot to an existing logical slot",
            internal=message,
        )
    if state == "42704" and "publication" in lower:
        names = ", ".join(publications) or "<publication>"
        return ConfigError(
            f"{first} {where}: create it (CREATE PUBLICATION {names} FOR TABLE ...) "
            "or set publication to an existing one",
            internal=message,
        )
    if "wal_level" in lower:
        return ConfigError(
            f"{first} {where}: set wal_level = logical in postgresql.conf (or the cloud provider's "
            "parameter group) and restart the server",
            internal=message,
        )
    if "invalidated" in lower or "can no longer get changes" in lower or state == "58P01":
        return ConfigError(
            f"{first} {where}: the replication slot {slot!r} has lost the WAL it needs; drop and recreate "
            "it, then resync the streams (a full refresh)",
            internal=message,
        )
    if state == "42501":
        return ConfigError(
            f"{first} {where}: the user needs the REPLICATION attribute (ALTER ROLE <user> WITH REPLICATION)",
            internal=message,
        )
    if state == "42710":
        return ConfigError(
            f"{first} {where}: choose another slot name or drop the old slot", internal=message
        )
    if state == "53400":
        return ConfigError(
            f"{first} {where}: raise max_replication_slots / max_wal_senders or drop unused slots",
            internal=message,
        )
    if state == "55006":
        return TransientError(
            f"{first} {where}: another reader is using the slot; retry when it has stopped",
            internal=message,
        )
    if state.startswith(_TRANSIENT_CLASSES):
        return TransientError(f"{first} {where}", internal=message)
    return SystemFailure(
        f"replication error {where}: {first} (SQLSTATE {state or 'unknown'})", internal=message
    )


def lost_connection(message: str, target: str) -> TransientError:
    """The server or network closed the replication connection."""
    return TransientError(
        f"lost the replication connection to {target}: {_first_line(message) or 'connection closed'}",
        internal=message,
    )
