"""source-mysql's change reader: the binlog (row format, full images) behind the CDC framework's
contract (:class:`dbkit.source.CdcReader`), read with this package's own small client of the
replication protocol (:mod:`.stream`, :mod:`.events`, :mod:`.values`).

**Positions** are binlog coordinates ``(file, pos)`` at a transaction boundary: every transaction
that ends at or before them has been returned, none after. The server's GTID state travels along
(MariaDB ``domain-server-seq``, MySQL GTID sets) for people and for Airbyte's offset shape; the
reader resumes from the file and position, which it keeps itself: a dropped connection is an
error (transient, after the last good STATE), never a silent reconnect.

**The cursor** (``_ab_cdc_cursor``) of a change is the binlog coordinate where its transaction
starts, as one integer ``file number << 32 | position``: transactions are contiguous in the binlog
and written in commit order, so a key's changes carry increasing values. A snapshot's position is
a transaction boundary ``P``; its rows carry ``P - 1``, below every transaction it does not contain.

**The snapshot**: MariaDB's ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` gives the binlog
position its snapshot sees exactly (``binlog_snapshot_file``/``_position``); every transaction
before it is committed, so visible to the snapshot reads that follow. MySQL: the position under a
brief ``FLUSH TABLES WITH READ LOCK`` (RELOAD grant), else ``SHOW MASTER STATUS`` with a warning.
Rows changed after ``P`` while the snapshot is read are in the snapshot *and* replayed; the
newest cursor wins in a dedup destination.

**The upper bound** is ``SHOW MASTER STATUS`` (``SHOW BINARY LOG STATUS`` on MySQL 8.4) when the
read starts; a transaction that starts at or after it waits for the next read.

**A lost position** (``position_problem``): the file purged or gone, a position past the end of
its file, a file created at another time than the saved one (``RESET MASTER`` renumbered the
binlog), another server (``server_id``/``server_uuid`` changed).

**Table shapes**: with ``binlog_row_metadata = FULL`` the table map names the columns, so rows
logged before an ``ALTER TABLE`` decode against the columns they were logged with. Without it the
columns are the table's current ones, checked against the logged types: a mismatch (the table
changed since) is an error that says to set FULL, never a silent misreading.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pymysql  # type: ignore[import-untyped]

from dbkit import ConfigError, Database, TransientError
from dbkit.protocol import StreamDescriptor
from dbkit.source import (
    GENERIC_CURSOR,
    INTEGER_SCHEMA,
    CdcOptions,
    CdcReader,
    Change,
    ChangeBatch,
    FullRefreshState,
    GlobalState,
    LogLag,
    Operation,
    SnapshotPoint,
    TableInfo,
)
from source_mysql.cdc.events import (
    HEARTBEAT,
    BinlogError,
    FormatDescription,
    Gtid,
    GtidList,
    Query,
    Rotate,
    Rows,
    TableMap,
    Xid,
)
from source_mysql.cdc.stream import BinlogStream
from source_mysql.cdc.values import ColumnSpec, RowDecoder, compatible

ACKNOWLEDGED = "acknowledged position: "
FILE_COLUMN = "_ab_cdc_log_file"
POS_COLUMN = "_ab_cdc_log_pos"
BATCH = 5000
_DENIED = (1227, 1045, 1142, 1044)
_BINLOG_GONE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or a position that is no event
_DDL = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.DOTALL)
_TRUNCATE = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)*TRUNCATE\s+(?:TABLE\s+)?((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_NAME_PART = re.compile(r"`((?:[^`]|``)+)`|([\w$]+)")


@dataclass(frozen=True, order=True)
class BinlogPosition:
    """A transaction boundary in the binlog (ordered by file number, then position)."""

    index: int
    pos: int
    file: str = field(compare=False)
    gtids: str = field(default="", compare=False)
    server: str = field(default="", compare=False)
    created: int = field(default=0, compare=False)
    """The creation time of ``file`` (its format description event): another file of that name
    (after ``RESET MASTER``) has another one. 0: not known."""

    @property
    def cursor(self) -> int:
        return self.index << 32 | self.pos

    def describe(self) -> str:
        return f"{self.file}:{self.pos}" + (f" (GTID {self.gtids})" if self.gtids else "")


def file_index(name: str) -> int:
    suffix = name.rsplit(".", 1)[-1]
    if not suffix.isdigit():
        raise ConfigError(f"binlog file name {name!r} does not end in a number: reset the connection")
    return int(suffix)


def position(file: str, pos: int, gtids: str = "", server: str = "", created: int = 0) -> BinlogPosition:
    return BinlogPosition(file_index(file), pos, file, gtids, server, created)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def split_table_name(text: str, default_schema: str) -> tuple[str, str]:
    parts = [a.replace("``", "`") if a else b for a, b in _NAME_PART.findall(text)]
    if len(parts) == 2:
        return parts[0], parts[1]
    return default_schema, parts[0]


class MySqlCdcReader(CdcReader[BinlogPosition]):
    """See the module doc. ``connect`` opens a plain PyMySQL connection to the server (the
    dialect's arguments); ``target`` names the server for messages."""

    position_column = GENERIC_CURSOR
    meta_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        GENERIC_CURSOR: INTEGER_SCHEMA,
        FILE_COLUMN: {"type": ["string", "null"]},
        POS_COLUMN: INTEGER_SCHEMA,
    }

    def __init__(
        self, database: Database, options: CdcOptions, connect: Callable[[], Any], target: str
    ) -> None:
        super().__init__(database, options)
        self._connect = connect
        self._target = target
        self._server: dict[str, str] | None = None

    # ------------------------------------------------------------------ server facts
    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def server(self) -> dict[str, str]:
        """The server's binlog settings and identity (one query, cached)."""
        if self._server is None:
            names = ("log_bin", "binlog_format", "binlog_row_image", "server_id", "version")
            row = self._query("SELECT " + ", ".join(f"@@GLOBAL.{n}" for n in names))[0]
            facts = {n: _text(v) for n, v in zip(names, row, strict=True)}
            facts["mariadb"] = "1" if "mariadb" in facts["version"].lower() else ""
            try:
                facts["uuid"] = _text(self._query("SELECT @@GLOBAL.server_uuid")[0][0])
            except pymysql.err.MySQLError:
                facts["uuid"] = ""
            try:
                facts["row_metadata"] = _text(self._query("SELECT @@GLOBAL.binlog_row_metadata")[0][0])
            except pymysql.err.MySQLError:
                facts["row_metadata"] = ""
            self._server = facts
        return self._server

    def identity(self) -> str:
        facts = self.server()
        return facts["uuid"] or f"server_id {facts['server_id']}"

    def requirements(self) -> None:
        """ConfigError naming each binlog setting change data capture needs and the server lacks."""
        facts = self.server()
        problems = []
        if facts["log_bin"].upper() not in ("1", "ON"):
            problems.append("the binlog is off (start the server with log_bin)")
        if facts["binlog_format"].upper() != "ROW":
            problems.append(f"binlog_format is {facts['binlog_format']} (set binlog_format = ROW)")
        if facts["binlog_row_image"].upper() != "FULL":
            problems.append(f"binlog_row_image is {facts['binlog_row_image']} (set binlog_row_image = FULL)")
        if problems:
            raise ConfigError(
                f"change data capture cannot read the binlog of {self._target}: " + "; ".join(problems)
            )

    def _status(self) -> tuple[str, int, str]:
        """(file, position, GTIDs) of SHOW MASTER STATUS."""
        rows: list[tuple[Any, ...]] = []
        try:
            try:
                rows = self._query("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError:  # MySQL 8.4 dropped the old spelling
                rows = self._query("SHOW BINARY LOG STATUS")
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in _DENIED:
                raise ConfigError(
                    f"user cannot read the binlog position of {self._target}: GRANT REPLICATION CLIENT "
                    "(MariaDB: BINLOG MONITOR) ON *.* TO the user",
                    internal=str(exc),
                ) from None
            raise
        if not rows:
            self.requirements()
            raise ConfigError(f"the binlog of {self._target} is off: start the server with log_bin")
        row = rows[0]
        file, pos = _text(row[0]), int(row[1])
        gtids = _text(row[4]).replace("\n", "") if len(row) > 4 and row[4] else ""
        if not gtids and self.server()["mariadb"]:
            gtids = _text(self._query("SELECT @@GLOBAL.gtid_binlog_pos")[0][0])
        return file, pos, gtids

    def logs(self) -> dict[str, int]:
        """SHOW BINARY LOGS: file -> size."""
        return {_text(r[0]): int(r[1]) for r in self._query("SHOW BINARY LOGS")}

    def created(self, file: str) -> int:
        """The creation time of a binlog file (its format description event's timestamp)."""
        stream = BinlogStream(self._connect, file, 4)
        try:
            for _ in range(4):
                event = stream.read()
                if isinstance(event, FormatDescription):
                    return event.header.timestamp
        finally:
            stream.close()
        raise ConfigError(f"binlog file {file} has no format description event")

    def check_dump(self) -> None:
        """A binlog dump can be started (the REPLICATION SLAVE grant)."""
        file, _pos, _gtids = self._status()
        try:
            self.created(file)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in _DENIED:
                raise ConfigError(
                    f"user cannot read the binlog of {self._target}: GRANT REPLICATION SLAVE ON *.* TO "
                    "the user",
                    internal=str(exc),
                ) from None
            raise

    # ------------------------------------------------------------------ check
    def check(self, tables: Sequence[TableInfo]) -> None:
        """The binlog settings, REPLICATION CLIENT (the binlog position) and REPLICATION SLAVE (a
        dump starts); a WARN when rows cannot be decoded across ALTER TABLE."""
        self.requirements()
        self.check_dump()
        metadata = self.server()["row_metadata"]
        if metadata and metadata.upper() != "FULL":
            self.log(
                "WARN",
                f"binlog_row_metadata is {metadata}: an ALTER TABLE between a change and the sync "
                "that reads it stops that sync; set binlog_row_metadata = FULL to read across it",
            )

    # ------------------------------------------------------------------ positions
    def position_from_state(self, raw: Mapping[str, Any]) -> BinlogPosition:
        file, pos = raw.get("file"), raw.get("pos")
        if not isinstance(file, str) or not isinstance(pos, int) or isinstance(pos, bool) or pos < 4:
            raise ConfigError(
                f"the saved CDC position {dict(raw)!r} is not a source-mysql binlog position: reset "
                "the connection's data"
            )
        created = raw.get("created", 0)
        return position(
            file,
            pos,
            str(raw.get("gtids") or ""),
            str(raw.get("server") or ""),
            created if isinstance(created, int) else 0,
        )

    def position_to_state(self, position: BinlogPosition) -> dict[str, Any]:
        return {
            "file": position.file,
            "pos": position.pos,
            "gtids": position.gtids,
            "server": position.server,
            "created": position.created,
        }

    def migrate_state(
        self, shared: Mapping[str, Any], streams: Mapping[StreamDescriptor, Mapping[str, Any] | None]
    ) -> GlobalState | None:
        """Airbyte source-mysql's CDC state (:mod:`source_mysql.cdc.airbyte_state`)."""
        from source_mysql.cdc.airbyte_state import airbyte_offset, is_airbyte_shared_state, snapshot_complete

        if not is_airbyte_shared_state(shared):
            return None
        file, pos, gtids = airbyte_offset(shared)
        done = {d: FullRefreshState.done() for d, s in streams.items() if snapshot_complete(s)}
        return GlobalState(position=self.position_to_state(position(file, pos, gtids)), streams=done)

    def current_position(self) -> BinlogPosition:
        self.requirements()
        file, pos, gtids = self._status()
        return position(file, pos, gtids, self.identity(), self.created(file))

    def position_problem(self, position: BinlogPosition) -> str | None:
        self.requirements()
        logs = self.logs()
        where = position.describe()
        if position.server and position.server != self.identity():
            return (
                f"the saved position {where} is of another server ({position.server}; this one is "
                f"{self.identity()}): the binlogs differ"
            )
        if position.file not in logs:
            names = sorted(logs, key=file_index)
            if names and file_index(position.file) < file_index(names[0]):
                return (
                    f"binlog {position.file} was purged (the oldest is {names[0]}): the changes since "
                    f"{where} are gone"
                )
            return (
                f"binlog {position.file} does not exist (the binlogs are {names[0] if names else '-'} to "
                f"{names[-1] if names else '-'}): the binlog was reset or renumbered"
            )
        if position.pos > logs[position.file]:
            return (
                f"the saved position {where} is past the end of {position.file} ({logs[position.file]} "
                "bytes): the binlog was reset or renumbered"
            )
        if position.created and self.created(position.file) != position.created:
            return (
                f"binlog {position.file} was created anew since the saved position {where} "
                "(RESET MASTER or a restore renumbered the binlog)"
            )
        return None

    def acknowledge(self, position: BinlogPosition) -> None:
        """The binlog has no per-reader retention to release (the server's expire settings keep
        it): the position the destination echoed is only logged."""
        saved = orjson.dumps(self.position_to_state(position)).decode()
        self.log(
            "INFO",
            f"CDC: the destination has every change up to binlog {position.describe()}; the binlog's "
            f"retention is the server's (binlog_expire_logs_seconds). {ACKNOWLEDGED}{saved}",
        )

    def lag(self) -> LogLag | None:
        try:
            logs = self.logs()
        except pymysql.err.MySQLError:
            return None
        return LogLag(bytes=sum(logs.values()), detail=f"{len(logs)} binlog file(s) on the server")

    # ------------------------------------------------------------------ snapshot
    @contextmanager
    def snapshot(self, tables: Sequence[TableInfo]) -> Iterator[SnapshotPoint[BinlogPosition]]:
        self.requirements()
        file, pos, gtids = self._snapshot_position()
        point = position(file, pos, gtids, self.identity(), self.created(file))
        meta = {GENERIC_CURSOR: point.cursor - 1, FILE_COLUMN: file, POS_COLUMN: pos}
        yield SnapshotPoint(position=point, meta=meta, taken_at=iso(time.time()))

    def _snapshot_position(self) -> tuple[str, int, str]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                if self.server()["mariadb"]:
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    status = {_text(k).lower(): _text(v) for k, v in cur.fetchall()}
                    cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
                    row = cur.fetchone()
                    conn.rollback()
                    file = status.get("binlog_snapshot_file")
                    if file:
                        return file, int(status["binlog_snapshot_position"]), _text(row[0]) if row else ""
                try:
                    cur.execute("FLUSH TABLES WITH READ LOCK")
                except pymysql.err.OperationalError as exc:
                    if not (exc.args and exc.args[0] in _DENIED):
                        raise
                    self.log(
                        "WARN",
                        "CDC: no RELOAD grant for FLUSH TABLES WITH READ LOCK: the snapshot position is "
                        "SHOW MASTER STATUS, which a transaction committing at that instant can pass",
                    )
                    return self._status()
                try:
                    return self._status()
                finally:
                    cur.execute("UNLOCK TABLES")
        finally:
            conn.close()

    # ------------------------------------------------------------------ changes
    def _specs(self, schema: str, table: str) -> list[ColumnSpec]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, CHARACTER_OCTET_LENGTH "
                    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "ORDER BY ORDINAL_POSITION",
                    (schema, table),
                )
                return [
                    ColumnSpec(
                        _text(n),
                        _text(d).lower(),
                        _text(c),
                        _text(cs) if cs is not None else None,
                        int(o) if o is not None else None,
                    )
                    for n, d, c, cs, o in cur.fetchall()
                ]
        finally:
            conn.close()

    def _decoder(self, event: TableMap, specs: list[ColumnSpec]) -> RowDecoder:
        where = f"{event.schema}.{event.table}"
        if event.names is not None:
            by_name = {s.name: s for s in specs}
            chosen = [by_name.get(name) or ColumnSpec(name, "", "", "binary", None) for name in event.names]
            return RowDecoder(event, chosen)
        fits = len(specs) == len(event.types) and all(
            compatible(s, t) for s, t in zip(specs, event.types, strict=True)
        )
        if not fits:
            raise ConfigError(
                f"the binlog holds rows of {where} with {len(event.types)} columns of other types than "
                f"the table has now ({len(specs)} columns): it was altered since, and the binlog does not "
                "name its columns. Set binlog_row_metadata = FULL on the server (MySQL 8.0+, MariaDB "
                "10.5+) so rows decode against the columns they were logged with, then reset the "
                "connection's data"
            )
        return RowDecoder(event, specs)

    def changes(
        self, start: BinlogPosition, upper: BinlogPosition, tables: Mapping[StreamDescriptor, TableInfo]
    ) -> Iterator[ChangeBatch[BinlogPosition]]:
        if start >= upper:
            return
        facts = self.server()
        if facts["row_metadata"] and facts["row_metadata"].upper() != "FULL":
            self.log(
                "WARN",
                f"CDC: binlog_row_metadata is {facts['row_metadata']}: rows are decoded against the tables' "
                "current columns (an ALTER TABLE between a change and the read stops the read); set it "
                "to FULL to read across ALTER TABLE",
            )
        wanted = {(t.namespace or "", t.name): d for d, t in tables.items()}
        keys = {d: tuple(t.primary_key) for d, t in tables.items()}
        specs: dict[tuple[str, str], list[ColumnSpec]] = {}
        maps: dict[int, tuple[StreamDescriptor, RowDecoder] | None] = {}
        server, created = start.server or self.identity(), start.created
        stream = BinlogStream(self._connect, start.file, start.pos)
        try:
            yield from self._read(stream, start, upper, wanted, keys, specs, maps, server, created)
        finally:
            stream.close()

    def _read(
        self,
        stream: BinlogStream,
        start: BinlogPosition,
        upper: BinlogPosition,
        wanted: Mapping[tuple[str, str], StreamDescriptor],
        keys: Mapping[StreamDescriptor, Sequence[str]],
        specs: dict[tuple[str, str], list[ColumnSpec]],
        maps: dict[int, tuple[StreamDescriptor, RowDecoder] | None],
        server: str,
        created: int,
    ) -> Iterator[ChangeBatch[BinlogPosition]]:
        wait = self.options.initial_waiting_seconds
        file = start.file
        index = start.index
        gtids = _GtidState(start.gtids)
        reached = start
        pending: list[Change] = []
        in_txn = False
        txn_cursor = 0
        txn_start = 0
        txn_time = ""
        last = time.monotonic()
        standalone = False

        def here(pos: int) -> BinlogPosition:
            return BinlogPosition(index, pos, file, gtids.text(), server, created)

        while True:
            try:
                event = stream.read()
            except BinlogError as exc:
                raise ConfigError(f"CDC: {exc}") from None
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == _BINLOG_GONE:
                    raise ConfigError(
                        f"the binlog can no longer be read from {here(reached.pos).describe()}: "
                        f"{exc.args[1] if len(exc.args) > 1 else exc}; reset the connection's data",
                        internal=repr(exc),
                    ) from None
                raise TransientError(
                    f"lost the binlog connection to {self._target} after {reached.describe()}: {exc}",
                    internal=repr(exc),
                ) from None
            except (pymysql.err.InterfaceError, OSError) as exc:
                raise TransientError(
                    f"lost the binlog connection to {self._target} after {reached.describe()}: {exc!r}",
                    internal=repr(exc),
                ) from None
            if event is None:
                break
            header = event.header
            if isinstance(event, Rotate):
                if event.file != file:
                    file, index = event.file, file_index(event.file)
                    created = 0
                if not in_txn and header.timestamp != 0:
                    reached = max(reached, here(event.pos))
                continue
            if isinstance(event, FormatDescription):
                if header.next_pos == 0 or event.header.timestamp:
                    created = event.header.timestamp or created
                continue
            if header.type == HEARTBEAT:
                if pending and not in_txn:  # the log is idle: hand over what was read
                    yield ChangeBatch(pending, reached)
                    pending = []
                if not in_txn and here(header.next_pos) >= upper:
                    reached = max(reached, upper)
                    break
                if time.monotonic() - last >= wait:
                    break
                continue
            last = time.monotonic()
            if header.next_pos == 0:
                continue  # an artificial event
            begin = header.next_pos - header.size
            if isinstance(event, GtidList):
                gtids.reset(event.gtids)
            opens = isinstance(event, Gtid) or (isinstance(event, Query) and event.query.upper() == "BEGIN")
            if opens and not in_txn:
                if here(begin) >= upper:
                    reached = max(reached, upper)
                    break
                in_txn = True
                txn_start = begin
                txn_cursor = BinlogPosition(index, begin, file).cursor
                txn_time = iso(header.timestamp)
            if isinstance(event, Gtid):
                gtids.add(event)
                # MariaDB flags a DDL's GTID standalone; a MySQL GTID is followed by BEGIN or by
                # the DDL that is its whole transaction
                standalone = event.standalone or event.domain is None
                continue
            if isinstance(event, Query) and event.query.upper() == "BEGIN":
                standalone = False
                continue
            if isinstance(event, TableMap):
                key = (event.schema, event.table)
                descriptor = wanted.get(key)
                if descriptor is None:
                    maps[event.table_id] = None
                    continue
                if key not in specs:
                    specs[key] = self._specs(*key)
                maps[event.table_id] = (descriptor, self._decoder(event, specs[key]))
                continue
            if isinstance(event, Rows):
                found = maps.get(event.table_id)
                if found is None:
                    continue
                descriptor, decoder = found
                try:
                    rows = decoder.rows(event)
                except BinlogError as exc:
                    raise ConfigError(f"CDC: {exc}") from None
                meta = {GENERIC_CURSOR: txn_cursor, FILE_COLUMN: file, POS_COLUMN: txn_start}
                when = txn_time or iso(header.timestamp)
                key_columns = keys[descriptor]
                for before, image in rows:
                    if event.kind == "insert":
                        pending.append(Change(descriptor, Operation.INSERT, image, when, meta))
                    elif event.kind == "delete":
                        pending.append(Change(descriptor, Operation.DELETE, image, when, meta))
                    else:
                        if before is not None and any(before.get(k) != image.get(k) for k in key_columns):
                            pending.append(Change(descriptor, Operation.DELETE, before, when, meta))
                        pending.append(Change(descriptor, Operation.UPDATE, image, when, meta))
                if len(pending) >= BATCH:
                    yield ChangeBatch(pending, None)
                    pending = []
                continue
            if isinstance(event, Xid) or (
                isinstance(event, Query) and event.query.upper() in ("COMMIT", "ROLLBACK")
            ):
                in_txn = False
                reached = here(header.next_pos)
                if len(pending) >= BATCH:
                    yield ChangeBatch(pending, reached)
                    pending = []
                if reached >= upper:
                    break
                continue
            if isinstance(event, Query):
                if not in_txn or standalone:
                    standalone = False
                    in_txn = False
                    truncated = self._ddl(event, wanted, specs, maps)
                    if truncated is not None:
                        # a truncate starts a batch: the position before it is a checkpoint
                        yield ChangeBatch(pending, reached)
                        pending = []
                        meta = {GENERIC_CURSOR: txn_cursor, FILE_COLUMN: file, POS_COLUMN: txn_start}
                        pending.append(Change(truncated, Operation.TRUNCATE, None, txn_time, meta))
                    reached = here(header.next_pos)
                    if truncated is not None:
                        yield ChangeBatch(pending, reached)
                        pending = []
                    if reached >= upper:
                        break
                continue
            if not in_txn:
                reached = max(reached, here(header.next_pos))
                if reached >= upper:
                    break
        yield ChangeBatch(pending, reached)

    def _ddl(
        self,
        event: Query,
        wanted: Mapping[tuple[str, str], StreamDescriptor],
        specs: dict[tuple[str, str], list[ColumnSpec]],
        maps: dict[int, tuple[StreamDescriptor, RowDecoder] | None],
    ) -> StreamDescriptor | None:
        """A statement in the log: a DDL makes the columns of the tables be looked up again; a
        TRUNCATE of a wanted table is returned."""
        if _DDL.match(event.query) is None:
            return None
        specs.clear()
        match = _TRUNCATE.match(event.query)
        if match is None:
            return None
        return wanted.get(split_table_name(match.group(1), event.schema))


class _GtidState:
    """The GTID state as the read moves: MariaDB's last GTID per domain (``0-1-45,1-2-7``); MySQL's
    executed set (``uuid:1-45:47,uuid2:1-3``), each transaction read added to it."""

    def __init__(self, text: str) -> None:
        self._mariadb: dict[int, str] = {}
        self._mysql: dict[str, list[list[int]]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            bits = part.split("-")
            if len(bits) == 3 and all(b.isdigit() for b in bits):
                self._mariadb[int(bits[0])] = part
                continue
            uuid, _, ranges = part.partition(":")
            intervals = self._mysql.setdefault(uuid.lower(), [])
            for r in filter(None, ranges.split(":")):
                low, _, high = r.partition("-")
                if low.isdigit() and (not high or high.isdigit()):
                    intervals.append([int(low), int(high or low)])

    def reset(self, gtids: Sequence[tuple[int, int, int]]) -> None:
        for domain, server, seq in gtids:
            self._mariadb.setdefault(domain, f"{domain}-{server}-{seq}")

    def add(self, event: Gtid) -> None:
        if event.domain is not None:
            self._mariadb[event.domain] = event.text
            return
        uuid, _, number = event.text.partition(":")
        self.add_mysql(uuid, int(number))

    def add_mysql(self, uuid: str, n: int) -> None:
        intervals = self._mysql.setdefault(uuid.lower(), [])
        intervals.append([n, n])
        intervals.sort()
        merged: list[list[int]] = []
        for low, high in intervals:
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        self._mysql[uuid.lower()] = merged

    def text(self) -> str:
        if self._mariadb:
            return ",".join(self._mariadb[d] for d in sorted(self._mariadb))
        return ",".join(
            uuid + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ranges)
            for uuid, ranges in sorted(self._mysql.items())
            if ranges
        )
