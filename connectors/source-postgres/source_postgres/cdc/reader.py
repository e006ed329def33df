"""source-postgres's change reader: logical replication (pgoutput) behind the CDC framework's
contract (:class:`dbkit.source.CdcReader`).

**Positions** are WAL positions (integers), *exclusive*: a position ``P`` means "every
transaction whose commit record starts before ``P`` has been returned, none at or after it".
After a transaction the position is its commit's end (``end_lsn``); the read's upper bound is
``pg_current_wal_insert_lsn()`` when it starts (every transaction committed before lies below it).
A change's ``_ab_cdc_lsn`` is its transaction's commit LSN (so two interleaved transactions
cannot reorder a key's changes); a snapshot's rows carry ``consistent point - 1``, below every
change the snapshot does not contain.

**The snapshot -> log handover** is exact. A slot that does not exist is created on a
replication connection with ``(SNAPSHOT 'export')``: the exported snapshot sees exactly the
transactions committed before the slot's consistent point, and every read job imports it
(``SET TRANSACTION SNAPSHOT``). A slot that exists (created beforehand, as Airbyte's docs say, or
by an earlier sync) cannot give a snapshot; a temporary slot created with ``USE_SNAPSHOT`` in a
``REPEATABLE READ`` transaction does (exported from there with ``pg_export_snapshot()``), and the
permanent slot's changes are replayed from its ``confirmed_flush_lsn``: those the snapshot already
contains carry a lower ``_ab_cdc_lsn`` than its rows, so the newest position wins in the
destination.

**Acknowledgement**: the saved state's position (the state the destination echoed) is confirmed
at the start of the next read (``pg_replication_slot_advance``); with ``lsn_commit_behaviour:
"While reading Data"`` positions are also confirmed as they are read. An idle database does not
hold WAL: a read that reaches its upper bound saves it as the position even when nothing of ours
changed, so the next read confirms it.

**Rules**: every CDC table must be in the publication (checked before anything is read, a
config_error naming the fix). An UPDATE that leaves a large (TOASTed) value unchanged carries it
only under ``REPLICA IDENTITY FULL``; under another identity the value is filled in by key
(:mod:`source_postgres.cdc.toast`: exact unless the row changed again since, and then a WARN).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa

from dbkit import ConfigError, Database
from dbkit.protocol import StreamDescriptor
from dbkit.source import (
    INTEGER_SCHEMA,
    CdcReader,
    Change,
    ChangeBatch,
    ColumnInfo,
    FullRefreshState,
    GlobalState,
    ImageEncoder,
    LogLag,
    Operation,
    SnapshotPoint,
    TableInfo,
)
from source_postgres.catalog import type_rows
from source_postgres.cdc.airbyte_state import airbyte_cdc_state, is_airbyte_shared_state
from source_postgres.cdc.changes import (
    ChangeAssembler,
    ChangeEvent,
    RowChange,
    TableShape,
    TablesTruncated,
    TransactionCommitted,
    toast_identity_problems,
)
from source_postgres.cdc.lsn import format_lsn, parse_lsn
from source_postgres.cdc.pgoutput import Begin, PgOutputDecoder
from source_postgres.cdc.settings import WHILE_READING, PostgresCdcReplication
from source_postgres.cdc.toast import ToastFiller
from source_postgres.cdc.wire import ReplicationConnection, quote_ident

LSN_COLUMN = "_ab_cdc_lsn"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_POLL = 0.5
_FAST = frozenset(b"CIUD")  # Commit, Insert, Update, Delete: assembled straight from the payload

SLOT = sa.text(
    """
    SELECT s.plugin::text AS plugin, s.slot_type::text AS slot_type, s.database::text AS database,
           current_database()::text AS current, s.wal_status::text AS wal_status,
           s.confirmed_flush_lsn::text AS confirmed, s.temporary AS temporary,
           pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.restart_lsn)::bigint AS retained,
           s.restart_lsn::text AS restart, s.active AS active, s.active_pid AS active_pid
    FROM pg_replication_slots AS s WHERE s.slot_name = :slot
    """
)
PUBLICATION = sa.text(
    """
    SELECT current_setting('wal_level') AS wal_level,
           EXISTS (SELECT FROM pg_publication WHERE pubname = :pub) AS present
    """
)
PUBLISHED = sa.text(
    "SELECT schemaname::text AS schema, tablename::text AS name FROM pg_publication_tables"
    " WHERE pubname = :pub"
)
ADVANCE = sa.text("SELECT pg_replication_slot_advance(:slot, CAST(:lsn AS pg_lsn))")
INSERT_LSN = sa.text("SELECT pg_current_wal_insert_lsn()::text")


@lru_cache(maxsize=256)  # every change of a transaction has its commit time
def commit_time(pg_us: int) -> str:
    """A commit time (microseconds since 2000-01-01 UTC) in ISO-8601 UTC."""
    moment = _PG_EPOCH + timedelta(microseconds=pg_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class LogImage(dict[str, Any]):
    """A change's row (JSON-ready values, converted by the snapshot path's handlers) and the
    ``meta.changes`` of values that were nulled."""

    problems: list[dict[str, Any]]


class LogImageEncoder(ImageEncoder):
    """Images whose values are already JSON-ready (:class:`LogImage`) -> record data. A column the
    stream was configured without is dropped; a column the table did not have when the read
    started (``ALTER TABLE ... ADD`` mid-stream) is kept, so records follow the table's new shape."""

    def __init__(self, table: TableInfo, columns: Sequence[ColumnInfo]) -> None:
        self._wanted = frozenset(c.name for c in columns)
        self._known = frozenset(c.name for c in table.columns)

    def encode(self, images: Sequence[Mapping[str, Any]]) -> tuple[list[bytes], dict[int, Any]]:
        wanted = self._wanted
        known = self._known
        out: list[bytes] = []
        problems: dict[int, Any] = {}
        for i, image in enumerate(images):
            if wanted.issuperset(image):
                out.append(orjson.dumps(image))
            else:
                out.append(orjson.dumps({k: v for k, v in image.items() if k in wanted or k not in known}))
            found = getattr(image, "problems", None)
            if found:
                problems[i] = found
        return out, problems


class PostgresCdcReader(CdcReader[int]):
    """See the module doc. ``params`` gives libpq parameters of the (tunnelled) server; it is
    called only when a connection is opened."""

    position_column = LSN_COLUMN
    meta_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {LSN_COLUMN: INTEGER_SCHEMA}
    slot_wait: ClassVar[float] = 30.0
    """Seconds to wait for another session to let go of the slot before using it."""

    def __init__(
        self,
        database: Database,
        method: PostgresCdcReplication,
        params: Callable[[], dict[str, Any]],
        target: str,
    ) -> None:
        super().__init__(database, method.options())
        self.method = method
        self.slot = method.replication_slot
        self.publication = method.publication
        self._params = params
        self._target = target

    # ------------------------------------------------------------------ helpers
    def _replication(self) -> ReplicationConnection:
        return ReplicationConnection.connect(self._params(), target=self._target)

    def _plain(self) -> ReplicationConnection:
        """A plain session whose values come in the stream's text forms (TOAST lookups)."""
        return ReplicationConnection.connect(self._params(), target=self._target, replication=False)

    def _slot(self, conn: sa.Connection) -> Mapping[str, Any] | None:
        row = conn.execute(SLOT, {"slot": self.slot}).mappings().first()
        if row is None:
            return None
        if row["slot_type"] != "logical" or row["plugin"] != "pgoutput" or row["database"] != row["current"]:
            raise ConfigError(
                f"replication slot {self.slot!r} is not a pgoutput logical slot of database "
                f"{row['current']!r} (it is a {row['slot_type']} slot, plugin {row['plugin']!r}, database "
                f"{row['database']!r}): set replication_slot to another name (the first sync creates it)"
            )
        return dict(row)

    def _free_slot(self, conn: sa.Connection) -> Mapping[str, Any] | None:
        """The slot, once no other session streams from it (or after :attr:`slot_wait` seconds:
        the server's error then says who holds it). A reader killed a moment ago (SIGKILL, a
        lost network) leaves its walsender running until the server notices the socket closed."""
        deadline = time.monotonic() + self.slot_wait
        while True:
            slot = self._slot(conn)
            conn.rollback()
            if slot is None or not slot["active"] or time.monotonic() >= deadline:
                return slot
            time.sleep(0.1)

    def _check_tables(self, conn: sa.Connection, tables: Sequence[TableInfo]) -> None:
        """Every table is in the publication, and none can lose an unchanged TOAST value."""
        published = {
            (r["schema"], r["name"]) for r in conn.execute(PUBLISHED, {"pub": self.publication}).mappings()
        }
        missing = [t for t in tables if (t.namespace or "public", t.name) not in published]
        if missing:
            names = ", ".join(
                f"{quote_ident(t.namespace or 'public')}.{quote_ident(t.name)}" for t in missing
            )
            raise ConfigError(
                f"table(s) {names} are not in publication {self.publication!r}, so their changes "
                f"would never arrive: ALTER PUBLICATION {quote_ident(self.publication)} ADD TABLE {names} "
                "(or read them as full_refresh)"
            )

    def _note_toast_tables(self, conn: sa.Connection, tables: Sequence[TableInfo]) -> None:
        oids = [int(t.extra["oid"]) for t in tables if t.extra.get("oid") is not None]
        problems = toast_identity_problems(conn, oids)
        if problems:
            self.log(
                "INFO",
                "CDC: an UPDATE that leaves a large (TOASTed) value unchanged does not carry it under "
                "these tables' replica identity; such values are looked up by key (exact unless the "
                "row changed again since): " + "; ".join(problems),
            )

    # ------------------------------------------------------------------ positions
    def position_from_state(self, raw: Mapping[str, Any]) -> int:
        value = raw.get("lsn")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(
                f"the saved CDC position {dict(raw)!r} is not a source-postgres WAL position: reset "
                "the connection's data"
            )
        return value

    def position_to_state(self, position: int) -> dict[str, Any]:
        return {"lsn": position, "lsn_text": format_lsn(position), "slot": self.slot}

    def migrate_state(
        self, shared: Mapping[str, Any], streams: Mapping[StreamDescriptor, Mapping[str, Any] | None]
    ) -> GlobalState | None:
        """Airbyte source-postgres's CDC state (Debezium offsets) as dbkit's, so a connection moves
        without a resync (the mapping: :mod:`source_postgres.cdc.airbyte_state`). The LSN that
        mapping resumes from is inclusive (every transaction committed at or before it is in the
        destination) except for a snapshot's consistent point; this reader's positions are
        exclusive, hence the ``+ 1`` for the commit cases."""
        if not is_airbyte_shared_state(shared):
            return None
        state = airbyte_cdc_state(shared, streams)
        position = state.resume_lsn if state.reason.startswith("lsn:") else state.resume_lsn + 1
        done = {d: FullRefreshState.done() for d, complete in state.snapshots.items() if complete}
        return GlobalState(position=self.position_to_state(position), streams=done)

    def current_position(self) -> int:
        """Checks wal_level and the publication, runs ``heartbeat_action_query``, then reads the WAL
        insert position."""
        with self.database.connect() as conn:
            row = conn.execute(PUBLICATION, {"pub": self.publication}).mappings().one()
            if row["wal_level"] != "logical":
                raise ConfigError(
                    f"wal_level is {row['wal_level']!r} on {self._target}: change data capture needs "
                    "wal_level = logical (set it in postgresql.conf or the provider's parameter "
                    "group and restart the server)"
                )
            if not row["present"]:
                raise ConfigError(
                    f"publication {self.publication!r} does not exist: CREATE PUBLICATION "
                    f"{quote_ident(self.publication)} FOR TABLE <the tables to read>"
                )
            conn.rollback()
            query = self.method.heartbeat_action_query.strip()
            if query:
                try:
                    with conn.begin():
                        conn.exec_driver_sql(query)
                except sa.exc.DBAPIError as exc:
                    raise ConfigError(
                        f"heartbeat_action_query failed: {str(exc.orig).strip().splitlines()[0]}; fix "
                        "the query or the user's grants on its table",
                        internal=str(exc),
                    ) from exc
            value = conn.execute(INSERT_LSN).scalar_one()
        return parse_lsn(str(value))

    def position_problem(self, position: int) -> str | None:
        with self.database.connect() as conn:
            slot = self._slot(conn)
        if slot is None:
            return (
                f"replication slot {self.slot!r} does not exist (dropped, or the server was restored or "
                "failed over): the changes since the saved position are gone"
            )
        if slot["wal_status"] == "lost":
            return (
                f"replication slot {self.slot!r} lost the WAL it needed (wal_status lost: "
                "max_slot_wal_keep_size was exceeded)"
            )
        confirmed = parse_lsn(slot["confirmed"])
        if confirmed > position:
            return (
                f"replication slot {self.slot!r} confirmed WAL up to {format_lsn(confirmed)}, past the "
                f"saved position {format_lsn(position)}: the changes between are gone (another reader "
                "of the slot, or lsn_commit_behaviour 'While reading Data' with a sync that failed "
                "downstream)"
            )
        return None

    def acknowledge(self, position: int) -> None:
        with self.database.connect() as conn:
            slot = self._slot(conn)
            if slot is not None and parse_lsn(slot["confirmed"]) < position:
                slot = self._free_slot(conn)
            if slot is None or parse_lsn(slot["confirmed"]) >= position:
                return
            conn.execute(ADVANCE, {"slot": self.slot, "lsn": format_lsn(position)})
            conn.commit()

    def lag(self) -> LogLag | None:
        with self.database.connect() as conn:
            slot = self._slot(conn)
        if slot is None:
            return None
        return LogLag(
            bytes=slot["retained"],
            detail=f"slot {self.slot}: restart_lsn {slot['restart']}, confirmed_flush_lsn "
            f"{slot['confirmed']}, wal_status {slot['wal_status']}",
        )

    # ------------------------------------------------------------------ snapshot
    @contextmanager
    def snapshot(self, tables: Sequence[TableInfo]) -> Iterator[SnapshotPoint[int]]:
        with self.database.connect() as conn:
            self._check_tables(conn, tables)
            slot = self._slot(conn)
        repl = self._replication()
        try:
            if slot is not None and slot["wal_status"] == "lost":
                repl.drop_slot(self.slot)  # reading everything again (Re-sync data): start afresh
                slot = None
            if slot is None:
                created = repl.create_slot(self.slot, snapshot="export")
                position = created.consistent_point
                label = created.consistent_point - 1
                token = created.snapshot_name
            else:
                repl.begin_snapshot()
                name = f"dbkit_snap_{os.getpid()}_{secrets.token_hex(4)}"
                used = repl.create_slot(name, temporary=True, snapshot="use")
                ((token,),) = repl.execute("SELECT pg_export_snapshot()")
                with self.database.connect() as conn:
                    now = self._slot(conn)
                if now is None:
                    raise ConfigError(f"replication slot {self.slot!r} was dropped during the snapshot")
                position = min(parse_lsn(now["confirmed"]), used.consistent_point)
                label = used.consistent_point - 1
            taken = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            yield SnapshotPoint(position=position, meta={LSN_COLUMN: label}, taken_at=taken, token=token)
        finally:
            repl.close()

    # ------------------------------------------------------------------ changes
    def encoder(self, table: TableInfo, columns: Sequence[ColumnInfo]) -> ImageEncoder:
        return LogImageEncoder(table, columns)

    def changes(
        self, start: int, upper: int, tables: Mapping[StreamDescriptor, TableInfo]
    ) -> Iterator[ChangeBatch[int]]:
        with ExitStack() as stack:
            conn = stack.enter_context(self.database.connect())
            self._check_tables(conn, list(tables.values()))
            self._note_toast_tables(conn, list(tables.values()))
            if self._slot(conn) is None:
                raise ConfigError(
                    f"replication slot {self.slot!r} does not exist: reset the connection's data (the "
                    "first sync creates the slot)"
                )
            conn.rollback()
            if start >= upper:
                return
            self._free_slot(conn)
            by_name = {(t.namespace or "public", t.name): d for d, t in tables.items()}
            repl = stack.enter_context(self._replication())
            stream = repl.start(self.slot, start, publications=[self.publication])
            stack.callback(_stop_quietly, stream)
            decoder = PgOutputDecoder()
            assembler = ChangeAssembler(lambda oids: type_rows(conn, oids))
            lookups: list[ReplicationConnection] = []

            def lookup(sql: str, params: Sequence[str | None], types: Sequence[int]) -> list[Any]:
                if not lookups:
                    lookups.append(stack.enter_context(self._plain()))
                return lookups[0].execute(sql, params=params, types=types)

            toast = ToastFiller(lookup, self.log)
            limit = self.method.queue_size
            wait = self.options.initial_waiting_seconds
            while_reading = self.method.lsn_commit_behaviour == WHILE_READING
            pending: list[Change] = []
            in_transaction = False
            skipping = False
            reached = start
            last_message = time.monotonic()
            # per relation OID: the table shape last seen and its stream (None: not read)
            streams_of: dict[int, tuple[TableShape, StreamDescriptor | None]] = {}
            feed_payload = assembler.feed_payload
            feed_row = assembler.feed_row
            stopped = False
            while not stopped:
                got = stream.read_many(_POLL, 1000, None if in_transaction else upper)
                if not got:
                    if not in_transaction and stream.received_lsn >= upper:
                        break
                    if time.monotonic() - last_message >= wait:
                        break
                    stream.send_status(reply=True)  # ask for a keepalive: how far the server got
                    continue
                last_message = time.monotonic()
                for data in got:
                    lsn = data.data_start
                    payload = bytes(data.payload)
                    kind = payload[0] if payload else 0
                    event: ChangeEvent | None
                    if kind not in _FAST or decoder.in_stream:
                        message = decoder.decode(payload, lsn)
                        if isinstance(message, Begin):
                            if message.final_lsn >= upper:
                                stopped = True  # committed after the read started: the next read's
                                break
                            in_transaction = True
                            skipping = message.final_lsn < start  # already read (at or before the position)
                        event = assembler.feed(message, lsn)
                    elif kind == 0x43:  # Commit
                        event = feed_payload(decoder, payload, lsn)
                    else:  # Insert, Update, Delete
                        event = feed_row(decoder, payload, lsn)
                    if event is None or (skipping and type(event) is not TransactionCommitted):
                        continue
                    if type(event) is RowChange:
                        shape = event.table
                        known = streams_of.get(shape.oid)
                        if known is None or known[0] is not shape:
                            wanted = by_name.get((shape.namespace, shape.name))
                            known = streams_of[shape.oid] = (shape, wanted)
                        descriptor = known[1]
                        if descriptor is not None:
                            image = _append(pending, descriptor, event)
                            if event.unresolved or shape.oid in toast.active:
                                toast.note(event, image, image.problems)
                    elif type(event) is TransactionCommitted:
                        in_transaction = False
                        if skipping:
                            skipping = False
                            continue
                        reached = event.end_lsn
                        if len(pending) >= limit:
                            toast.fill()
                            yield ChangeBatch(pending, reached)
                            pending = []
                            if while_reading:
                                stream.acknowledge(reached)
                        continue
                    elif type(event) is TablesTruncated:
                        if pending and any(by_name.get((t.namespace, t.name)) for t in event.tables):
                            # a truncate starts a batch: a read stopping at it checkpoints just before
                            # (this transaction's earlier changes may come again: at-least-once)
                            toast.fill()
                            yield ChangeBatch(pending, reached)
                            pending = []
                        when = commit_time(event.commit_time)
                        meta = {LSN_COLUMN: event.commit_lsn}
                        for truncated in event.tables:
                            descriptor = by_name.get((truncated.namespace, truncated.name))
                            if descriptor is not None:
                                pending.append(Change(descriptor, Operation.TRUNCATE, None, when, meta))
                    if len(pending) >= limit:
                        toast.fill()
                        yield ChangeBatch(pending, None)  # inside a transaction: no point to resume from
                        pending = []
            if not in_transaction and stream.received_lsn >= upper:
                reached = max(reached, upper)
            toast.fill()
            yield ChangeBatch(pending, reached)
            if while_reading:
                stream.acknowledge(reached)


def _append(out: list[Change], descriptor: StreamDescriptor, row: RowChange) -> LogImage:
    """Appends ``row``'s change(s) to ``out``; returns the image of the row after it (a delete's:
    its before image)."""
    when = commit_time(row.commit_time)
    meta = {LSN_COLUMN: row.commit_lsn}
    image = LogImage(row.data)
    image.problems = row.changes
    if row.op == "insert":
        out.append(Change(descriptor, Operation.INSERT, image, when, meta))
    elif row.op == "delete":
        out.append(Change(descriptor, Operation.DELETE, image, when, meta))
    else:
        before = row.before
        if before is not None and any(before.get(k) != row.data.get(k) for k in row.table.key):
            old = LogImage(before)  # the key changed: the old key's row is gone
            old.problems = []
            out.append(Change(descriptor, Operation.DELETE, old, when, meta))
        out.append(Change(descriptor, Operation.UPDATE, image, when, meta))
    return image


def _stop_quietly(stream: Any) -> None:
    # the connection may be gone already: closing it (the ExitStack's next step) is all that is left
    with suppress(Exception):
        stream.stop()
