"""A real change log for SQLite, kept by triggers: source-sqlite's change data capture (and the
toolkit's CDC test double, so the CDC suite runs with no server).

:func:`install_change_log` creates ``_dbkit_changes`` (one row per inserted, updated or deleted
row: table, operation, commit time, row images as JSON) and the triggers that fill it, for the
tables named. Positions are the log's row ids (``AUTOINCREMENT``: never reused); a record's
``_ab_cdc_cursor`` is the id of its change, a snapshot row's the last id the snapshot contains.

Acknowledging a position deletes the entries up to it and records it in ``_dbkit_changes_meta``
(``purged_through``): a saved position before that can no longer be read from. The source opens
the database read-only for everything else; acknowledging needs write access to the file.
Triggers capture the columns a table has when they are installed: after ``ALTER TABLE`` run
:func:`install_change_log` again. SQLite has no TRUNCATE (``DELETE FROM t`` deletes row by row,
each logged); :func:`truncate_table` empties a table with one truncate entry instead, which the
read treats as a database's TRUNCATE (it starts a batch of its own, so the position just before
it can be checkpointed).

Values keep their SQLite storage class exactly: blobs travel as hex, reals with 17 significant
digits, so the record of a change equals the record a snapshot makes of the same row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dbkit import ConfigError, Database
from dbkit.protocol import StreamDescriptor
from dbkit.source import (
    GENERIC_CURSOR,
    CdcOptions,
    CdcReader,
    Change,
    ChangeBatch,
    LogLag,
    Operation,
    SnapshotPoint,
    TableInfo,
)

CHANGES = "_dbkit_changes"
META = "_dbkit_changes_meta"
CHANGE_LOG_TABLES = frozenset({CHANGES, META})
"""The change log's own tables: never streams."""
BATCH = 1000
_OPS = {"I": Operation.INSERT, "U": Operation.UPDATE, "D": Operation.DELETE, "T": Operation.TRUNCATE}
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _image(columns: Sequence[str], row: str) -> str:
    """``json_object`` of a row (``NEW``/``OLD``) with exact blobs and reals."""
    parts = []
    for column in columns:
        value = f"{row}.{_quote(column)}"
        parts.append(
            f"{_literal(column)}, CASE typeof({value}) "
            f"WHEN 'blob' THEN json_object('b', hex({value})) "
            f"WHEN 'real' THEN json_object('r', printf('%!.17g', {value})) ELSE {value} END"
        )
    return f"json_object({', '.join(parts)})"


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    columns = [row[1] for row in conn.execute(f"SELECT * FROM pragma_table_info({_literal(table)})")]
    if not columns:
        raise ConfigError(f"table {table!r} does not exist")
    return columns


def _triggers(table: str, columns: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(trigger name, CREATE TRIGGER statement) of each operation's trigger of ``table``."""
    name = _literal(table)
    for op, event, before, after in (
        ("I", "INSERT", "NULL", _image(columns, "NEW")),
        ("U", "UPDATE", _image(columns, "OLD"), _image(columns, "NEW")),
        ("D", "DELETE", _image(columns, "OLD"), "NULL"),
    ):
        trigger = _quote(f"_dbkit_cdc_{table}_{op}")
        yield (
            trigger,
            (
                f"CREATE TRIGGER {trigger} AFTER {event} ON {_quote(table)} BEGIN "
                f"INSERT INTO {CHANGES} (tbl, op, ts, before, after) "
                f"VALUES ({name}, '{op}', {_NOW}, {before}, {after}); END"
            ),
        )


def install_change_log(conn: sqlite3.Connection, tables: Sequence[str]) -> None:
    """Create the change log (if missing) and (re)create the triggers of ``tables``, in one
    transaction. Idempotent: run it again after an ``ALTER TABLE``."""
    with conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {CHANGES} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "tbl TEXT NOT NULL, op TEXT NOT NULL, ts TEXT NOT NULL, before TEXT, after TEXT)"
        )
        conn.execute(f"CREATE TABLE IF NOT EXISTS {META} (purged_through INTEGER NOT NULL)")
        if conn.execute(f"SELECT count(*) FROM {META}").fetchone()[0] == 0:
            conn.execute(f"INSERT INTO {META} VALUES (0)")
        for table in tables:
            for trigger, create in _triggers(table, _columns(conn, table)):
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                conn.execute(create)


def truncate_table(conn: sqlite3.Connection, table: str) -> None:
    """Empty a captured ``table`` as a database with TRUNCATE logs it: one truncate entry in the
    change log, no row deletes (the delete trigger is dropped for the ``DELETE`` and recreated,
    all in one transaction). SQLite itself has no TRUNCATE; this is how a test (or a user who
    wants the log to say so) writes one."""
    columns = _columns(conn, table)
    triggers = dict(_triggers(table, columns))
    delete = _quote(f"_dbkit_cdc_{table}_D")
    with conn:
        conn.execute(
            f"INSERT INTO {CHANGES} (tbl, op, ts, before, after) VALUES (?, 'T', {_NOW}, NULL, NULL)",
            (table,),
        )
        conn.execute(f"DROP TRIGGER IF EXISTS {delete}")
        conn.execute(f"DELETE FROM {_quote(table)}")
        conn.execute(triggers[delete])


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        if "b" in value:
            return bytes.fromhex(value["b"])
        if "r" in value:
            return float(value["r"])
    return value


def _decode(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {k: _value(v) for k, v in orjson.loads(text).items()}


class SqliteChangeLog(CdcReader[int]):
    """The trigger-kept change log of a SQLite file (see the module doc); positions are ids."""

    position_column = GENERIC_CURSOR

    def __init__(self, database: Database, options: CdcOptions, path: Path) -> None:
        super().__init__(database, options)
        self.path = path

    def _connect(self, write: bool = False) -> sqlite3.Connection:
        mode = "rw" if write else "ro"
        conn = sqlite3.connect(f"file:{self.path}?mode={mode}", uri=True, timeout=30, isolation_level=None)
        found = conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)", (CHANGES, META)
        ).fetchone()[0]
        if found != 2:
            conn.close()
            raise ConfigError(
                f"SQLite database {self.path} has no change log ({CHANGES}): install it with "
                "source_sqlite.install_change_log, or use replication_method Standard"
            )
        return conn

    # ------------------------------------------------------------------ positions
    def position_from_state(self, raw: Mapping[str, Any]) -> int:
        value = raw.get("id")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(
                f"the saved CDC position {dict(raw)!r} is not a change log id: reset the connection"
            )
        return value

    def position_to_state(self, position: int) -> dict[str, Any]:
        return {"id": position}

    def _bounds(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """(purged through, last id ever assigned)."""
        purged = conn.execute(f"SELECT max(purged_through) FROM {META}").fetchone()[0] or 0
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (CHANGES,)).fetchone()
        return purged, max(purged, seq[0] if seq else 0)

    def current_position(self) -> int:
        with self._open() as conn:
            return self._bounds(conn)[1]

    def position_problem(self, position: int) -> str | None:
        with self._open() as conn:
            purged, last = self._bounds(conn)
        if position < purged:
            return (
                f"the change log was purged through id {purged}, past the saved position {position} "
                "(changes after it are gone)"
            )
        if position > last:
            return (
                f"the saved position {position} is ahead of the change log (last id {last}): it was recreated"
            )
        return None

    def acknowledge(self, position: int) -> None:
        conn = self._connect(write=True)
        try:
            with conn:
                conn.execute(f"DELETE FROM {CHANGES} WHERE id <= ?", (position,))
                conn.execute(f"UPDATE {META} SET purged_through = max(purged_through, ?)", (position,))
        finally:
            conn.close()

    def lag(self) -> LogLag | None:
        with self._open() as conn:
            count, size = conn.execute(
                "SELECT count(*), coalesce(sum(coalesce(length(before), 0) + coalesce(length(after), 0)), 0) "
                f"FROM {CHANGES}"
            ).fetchone()
        return LogLag(bytes=size, changes=count, detail="entries not yet acknowledged")

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------ reading
    @contextmanager
    def snapshot(self, tables: Sequence[TableInfo]) -> Iterator[SnapshotPoint[int]]:
        """Every change up to the current id is committed, so visible to any read that starts
        afterwards: the current id labels the snapshot (reads start after this returns)."""
        position = self.current_position()
        taken = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        yield SnapshotPoint(position=position, meta={GENERIC_CURSOR: position}, taken_at=taken)

    def changes(
        self, start: int, upper: int, tables: Mapping[StreamDescriptor, TableInfo]
    ) -> Iterator[ChangeBatch[int]]:
        by_name = {d.name: (d, t) for d, t in tables.items()}
        with self._open() as conn:
            cursor = conn.execute(
                f"SELECT id, tbl, op, ts, before, after FROM {CHANGES} WHERE id > ? AND id <= ? ORDER BY id",
                (start, upper),
            )
            while rows := cursor.fetchmany(BATCH):
                changes: list[Change] = []
                for change_id, tbl, op, ts, before, after in rows:
                    wanted = by_name.get(tbl)
                    if wanted is None:
                        continue
                    descriptor, table = wanted
                    operation = _OPS.get(op)
                    if operation is None:
                        raise ConfigError(f"change log entry {change_id} has an unknown operation {op!r}")
                    if operation is Operation.TRUNCATE:
                        # a batch of its own: the position before it is a checkpoint
                        yield ChangeBatch(changes, change_id - 1)
                        yield ChangeBatch(
                            [Change(descriptor, operation, None, ts, {GENERIC_CURSOR: change_id})], change_id
                        )
                        changes = []
                        continue
                    old, new = _decode(before), _decode(after)
                    meta = {GENERIC_CURSOR: change_id}
                    if operation is Operation.UPDATE and old is not None and new is not None:
                        key = table.primary_key
                        if any(old.get(k) != new.get(k) for k in key):
                            # the key changed: the old key's row is gone
                            changes.append(Change(descriptor, Operation.DELETE, old, ts, meta))
                    image = old if operation is Operation.DELETE else new
                    changes.append(Change(descriptor, operation, image, ts, meta))
                yield ChangeBatch(changes, rows[-1][0])
        if start < upper:
            yield ChangeBatch([], upper)
