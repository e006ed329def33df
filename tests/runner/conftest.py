"""Helpers for the ``dbkit sync`` / ``dbkit validate`` tests: real SQLite files, real processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
DBKIT = str(BIN / "dbkit")


def run_dbkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``dbkit ARGS`` as a real process (the installed console script)."""
    return subprocess.run(
        [DBKIT, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _declared_types(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    return {row[1]: (row[2] or "").upper() for row in conn.execute(f'PRAGMA table_xinfo("{table}")')}


def _normalize(declared: str, value: Any) -> Any:
    """One value in a comparable form, from the source's declared type (both sides use it)."""
    if value is None:
        return None
    if declared in ("DATETIME", "TIMESTAMP"):
        return dt.datetime.fromisoformat(str(value))
    if declared in ("BOOLEAN", "BOOL"):
        return bool(int(value))
    if declared == "JSON":
        return json.loads(value) if isinstance(value, str) else value
    if declared in ("NUMERIC", "REAL") or declared.startswith(("DECIMAL", "NUMERIC")):
        return Decimal(str(value)).normalize()
    return value


def table_rows(db: Path, table: str, types_from: Path | None = None) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without ``_airbyte_*`` columns), normalized and sorted.

    Values are normalized by the declared types of the same table in ``types_from`` (the
    source), so a source row and its copy in the warehouse compare equal when the value is the
    same (``2024-01-01 10:00:00`` and ``2024-01-01T10:00:00.000000``; ``1`` and ``true``).
    """
    with closing(sqlite3.connect(types_from or db)) as conn:
        declared = _declared_types(conn, table)
    with closing(sqlite3.connect(db)) as conn:
        columns = [c for c in declared if c in _declared_types(conn, table)]
        assert columns, f"table {table} missing in {db}"
        quoted = ", ".join(f'"{c}"' for c in columns)
        rows = conn.execute(f'SELECT {quoted} FROM "{table}"').fetchall()
    normalized = [
        tuple(_normalize(declared[c], v) for c, v in zip(columns, row, strict=True)) for row in rows
    ]
    return sorted(normalized, key=repr)


def assert_same_tables(source: Path, warehouse: Path, tables: Sequence[str]) -> None:
    """The warehouse holds exactly the source's rows in each table (no more, no fewer)."""
    for table in tables:
        expected = table_rows(source, table)
        actual = table_rows(warehouse, table, types_from=source)
        assert len(actual) == len(expected), (
            f"{table}: {len(actual)} rows in the warehouse, {len(expected)} in the source"
        )
        assert actual == expected, f"{table}: rows differ"


def state_file(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def stream_entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in doc["streams"]:
        if entry["stream_descriptor"]["name"] == name:
            return dict(entry)
    raise AssertionError(f"stream {name} not in the state file")


# ------------------------------------------------------------------ fixtures (test modules cannot
# import this file under --import-mode=importlib, so the helpers are handed out as fixtures)

RunDbkit = Callable[..., subprocess.CompletedProcess[str]]
SameTables = Callable[[Path, Path, Sequence[str]], None]
TableRows = Callable[..., list[tuple[Any, ...]]]
StateOf = Callable[[Path], dict[str, Any]]
EntryOf = Callable[[dict[str, Any], str], dict[str, Any]]


@pytest.fixture
def dbkit() -> RunDbkit:
    """Run the installed ``dbkit`` console script: ``dbkit("sync", ..., cwd=path)``."""
    return run_dbkit


@pytest.fixture
def same_tables() -> SameTables:
    return assert_same_tables


@pytest.fixture
def rows_of() -> TableRows:
    return table_rows


@pytest.fixture
def state_of() -> StateOf:
    return state_file


@pytest.fixture
def entry_of() -> EntryOf:
    return stream_entry
