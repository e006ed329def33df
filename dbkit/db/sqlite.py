"""SQLite errors, classified for the SQLite connectors (source and destination)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dbkit.errors import ConfigError, DbkitError, TransientError


def classify_sqlite_error(exc: BaseException, path: Path) -> DbkitError | None:
    """ConfigError for what the user can fix, TransientError for a busy database, else None."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if path.is_dir():
            return ConfigError(f"{path} is a directory, not a SQLite database file", internal=repr(exc))
        if not path.parent.is_dir():
            return ConfigError(
                f"cannot open SQLite database {path}: the directory {path.parent} does not exist",
                internal=repr(exc),
            )
        if "no such table" in text or "no such column" in text:
            return ConfigError(f"{text}; refresh the source schema (discover)", internal=repr(exc))
        if "unable to open database" in text:
            reason = "the file does not exist" if not path.exists() else text
            return ConfigError(f"cannot open SQLite database {path}: {reason}", internal=repr(exc))
        if "locked" in text or "busy" in text:
            return TransientError(f"SQLite database {path} is busy: {text}", internal=repr(exc))
        if "readonly" in text:
            return ConfigError(f"SQLite database {path} is read-only", internal=repr(exc))
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return ConfigError(f"{path} is not a SQLite database", internal=repr(exc))
    return None
