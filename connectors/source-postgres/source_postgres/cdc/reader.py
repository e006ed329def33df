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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    Adapter,
    ChangeAssembler,
    ChangeEvent,
    RelationChanged,
    RenderedRow,
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
ROLE = sa.text(
    """
    SELECT current_user::text AS name, r.rolsuper AS superuser, r.rolreplication AS replication,
           EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_replication')
             AND pg_has_role(current_user, 'rds_replication', 'member') AS rds_replication
    FROM pg_roles AS r WHERE r.rolname = current_user
    """
)
PUBLICATION_FLAGS = sa.text(
    """
    SELECT p.puballtables AS all_tables, p.pubinsert AS inserts, p.pubupdate AS updates,
           p.pubdelete AS deletes, p.pubtruncate AS truncates,
           (SELECT count(*) FROM pg_publication_tables AS t WHERE t.pubname = p.pubname) AS tables
    FROM pg_publication AS p WHERE p.pubname = :pub
    """
)
IDENTITY_GAPS = sa.text(
    """
    SELECT n.nspname::text AS schema, c.relname::text AS name, c.relreplident::text AS identity
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = ANY(CAST(:oids AS oid[]))
      AND (c.relreplident = 'n' OR (c.relreplident = 'i' AND NOT EXISTS (
            SELECT FROM pg_index AS ri JOIN pg_index AS pk ON pk.indrelid = ri.indrelid AND pk.indisprimary
            WHERE ri.indrelid = c.oid AND ri.indisreplident
              AND CAST(pk.indkey AS int2[]) <@ CAST(ri.indkey AS int2[]))))
    ORDER BY 1, 2
    """
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
    """Images whose values are already JSON-ready (:class:`LogImage`) -> record data, with the
    configured catalog's columns only (a column the image lacks stays absent: a column dropped
    or added mid-stream). A column the table did not have when the read started (the WAL's
    older shape: dropped or renamed since) is left out too and named once in a WARN through
    ``log``; one the stream was merely configured without is left out silently."""

    def __init__(
        self,
        table: TableInfo,
        columns: Sequence[ColumnInfo],
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self._wanted = frozenset(c.name for c in columns)
        self._known = frozenset(c.name for c in table.columns)
        self._table = f"{table.namespace or 'public'}.{table.name}"
        self._log = log
        self._reported: set[str] = set()

    def accepts(self, names: Iterable[str]) -> bool:
        """Whether rows of these columns become record data as they are: every column is in the
        configured catalog and in the table as the read started (then a change may come as its
        data JSON already, a :class:`~source_postgres.cdc.changes.RenderedRow`)."""
        return self._wanted.issuperset(names) and self._known.issuperset(names)

    def encode(self, images: Sequence[Mapping[str, Any] | bytes]) -> tuple[list[bytes], dict[int, Any]]:
        wanted = self._wanted
        known = self._known
        out: list[bytes] = []
        problems: dict[int, Any] = {}
        for i, image in enumerate(images):
            if image.__class__ is bytes:
                out.append(image)  # rendered by the reader, of columns it accepts
                continue
            assert not isinstance(image, bytes)
            if wanted.issuperset(image):
                out.append(orjson.dumps(image))
            else:
                out.append(orjson.dumps({k: v for k, v in image.items() if k in wanted}))
                if not known.issuperset(image):
                    self._report(image)
            found = getattr(image, "problems", None)
            if found:
                problems[i] = found
        return out, problems

    def _report(self, image: Mapping[str, Any]) -> None:
        new = sorted(k for k in image if k not in self._known and k not in self._reported)
        if not new or self._log is None:
            return
        self._reported.update(new)
        self._log(
            "WARN",
            f"CDC: changes of {self._table} from before an ALTER TABLE carry column(s) "
            f"{', '.join(map(repr, new))}, which the table no longer has (dropped or renamed): left "
            "out of the records, which follow the configured catalog",
        )


def _json_type(handler: Any) -> str | None:
    """The JSON type (not null) a type handler's values have; None when it declares none."""
    try:
        kind = handler.json_schema(False).get("type")
    except AttributeError:
        return None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _as_string(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _as_integer(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | orjson.Fragment):
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return int(text.strip())
    raise ValueError(f"not an integer: {value!r}")


def _as_number(value: Any) -> Any:
    if value is None or isinstance(value, orjson.Fragment):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def _as_boolean(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("t", "true", "1", "yes", "on"):
        return True
    if text in ("f", "false", "0", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _as(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None or isinstance(value, kind):
            return value
        raise ValueError(f"not a {kind.__name__}: {value!r}")

    return check


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "object": _as(dict),
    "array": _as(list),
}


def coerce_to(kind: str) -> Callable[[Any], Any]:
    """A value of another JSON type as one of ``kind`` (ValueError when it has no such form)."""
    return _COERCE.get(kind, _as(object))


def relation_change_text(event: RelationChanged) -> str:
    """What an ALTER TABLE seen mid-stream changed, for the read's log."""
    old = {c.name: (c.type_oid, c.typmod) for c in event.previous.columns}
    new = {c.name: (c.type_oid, c.typmod) for c in event.table.columns}
    parts = []
    for label, names in (
        ("added", [n for n in new if n not in old]),
        ("dropped or renamed", [n for n in old if n not in new]),
        ("retyped", [n for n in new if n in old and new[n] != old[n]]),
    ):
        if names:
            parts.append(f"{label} {', '.join(map(repr, names))}")
    what = "; ".join(parts) or "described anew"
    return (
        f"CDC: table {event.table.qualified} changed mid-stream (ALTER TABLE): column(s) {what}. "
        "Records carry the configured catalog's columns with the values each change wrote; rows "
        "not changed since keep their earlier values in the destination (refresh the stream after "
        "a RENAME or an ADD COLUMN with a default)"
    )


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
        self._encoders: dict[StreamDescriptor, LogImageEncoder] = {}

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

    def _adapter(self, tables: Mapping[StreamDescriptor, TableInfo]) -> Adapter:
        """Values of a column whose WAL type is not the catalog's (changes written before an ALTER
        COLUMN ... TYPE, or after one the catalog has not caught up with) are coerced to the
        catalog's JSON type, so every record fits the stream's schema (logged once a column)."""
        by_name = {(t.namespace or "public", t.name): t for t in tables.values()}
        told: set[tuple[str, str]] = set()

        def adapt(shape: TableShape) -> dict[str, Callable[[Any], Any]] | None:
            table = by_name.get((shape.namespace, shape.name))
            if table is None:
                return None
            fixes: dict[str, Callable[[Any], Any]] = {}
            for column, handler in zip(shape.columns, shape.handlers, strict=True):
                info = table.column(column.name)
                if info is None:
                    continue
                want, got = _json_type(info.handler), _json_type(handler)
                if want == got or want is None:
                    continue
                fixes[column.name] = coerce_to(want)
                if (shape.qualified, column.name) not in told:
                    told.add((shape.qualified, column.name))
                    self.log(
                        "WARN",
                        f"CDC: changes of {shape.qualified} carry column {column.name!r} as {got}, the "
                        f"catalog declares {want} (ALTER COLUMN ... TYPE): those values are converted to "
                        f"{want} (NULL with a meta change where they cannot be)",
                    )
            return fixes or None

        return adapt

    def _relation_changed(self, event: RelationChanged, read: Mapping[tuple[str, str], Any]) -> None:
        """Logs an ALTER TABLE of a table the read reads, once per change."""
        if (event.table.namespace, event.table.name) in read:
            self.log("INFO", relation_change_text(event))

    # ------------------------------------------------------------------ check
    def check(self, tables: Sequence[TableInfo]) -> None:
        """``wal_level``, the user's REPLICATION attribute and a replication connection, the
        publication (present, publishing inserts, updates and deletes, holding tables this
        connection reads), the slot (pgoutput, this database, WAL not lost). Without a state it
        cannot tell a slot the first sync will create from one lost after a sync: a missing slot
        is a WARN."""
        with self.database.connect() as conn:
            self._check_server(conn)
            self._check_publication(conn, tables)
            self._check_slot(conn)
        with self._replication():
            pass  # pg_hba.conf and max_wal_senders let a replication connection in (ConfigError if not)

    def _check_server(self, conn: sa.Connection) -> None:
        row = conn.execute(PUBLICATION, {"pub": self.publication}).mappings().one()
        if row["wal_level"] != "logical":
            raise ConfigError(
                f"wal_level is {row['wal_level']!r} on {self._target}: change data capture needs "
                "wal_level = logical (set it in postgresql.conf or the provider's parameter "
                "group and restart the server)"
            )
        role = conn.execute(ROLE).mappings().one()
        if not (role["superuser"] or role["replication"] or role["rds_replication"]):
            raise ConfigError(
                f"user {role['name']!r} may not read the WAL: it needs the REPLICATION attribute "
                f"(ALTER ROLE {quote_ident(role['name'])} WITH REPLICATION; on Amazon RDS: GRANT "
                f"rds_replication TO {quote_ident(role['name'])})"
            )

    def _check_publication(self, conn: sa.Connection, tables: Sequence[TableInfo]) -> None:
        pub = quote_ident(self.publication)
        flags = conn.execute(PUBLICATION_FLAGS, {"pub": self.publication}).mappings().first()
        if flags is None:
            raise ConfigError(
                f"publication {self.publication!r} does not exist: CREATE PUBLICATION {pub} FOR "
                "TABLE <the tables to read>"
            )
        unpublished = [op for op in ("inserts", "updates", "deletes") if not flags[op]]
        if unpublished:
            raise ConfigError(
                f"publication {self.publication!r} does not publish {', '.join(unpublished)}, so "
                f"those changes would never arrive: ALTER PUBLICATION {pub} SET (publish = "
                "'insert, update, delete, truncate')"
            )
        if not flags["truncates"]:
            self.log(
                "WARN",
                f"publication {self.publication!r} does not publish truncates: a TRUNCATE leaves the "
                f"rows in the destination (ALTER PUBLICATION {pub} SET (publish = 'insert, update, "
                "delete, truncate'))",
            )
        if not flags["tables"]:
            raise ConfigError(
                f"publication {self.publication!r} has no tables: ALTER PUBLICATION {pub} ADD TABLE "
                "<the tables to read>"
            )
        published = {
            (r["schema"], r["name"]) for r in conn.execute(PUBLISHED, {"pub": self.publication}).mappings()
        }
        candidates = [t for t in tables if t.primary_key and t.extra.get("relkind", "r") in ("r", "p")]
        missing = [t for t in candidates if (t.namespace or "public", t.name) not in published]
        self._check_identities(conn, [t for t in candidates if t not in missing])
        if not missing:
            return
        names = [f"{quote_ident(t.namespace or 'public')}.{quote_ident(t.name)}" for t in missing]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        if len(missing) == len(candidates):
            raise ConfigError(
                f"publication {self.publication!r} holds none of the {len(candidates)} table(s) with a "
                f"primary key this connection reads ({shown}), so no change could be read: "
                f"ALTER PUBLICATION {pub} ADD TABLE <the tables to read>"
            )
        self.log(
            "WARN",
            f"table(s) {shown} are not in publication {self.publication!r}: a CDC sync of them fails "
            f"until you ALTER PUBLICATION {pub} ADD TABLE them (or read them as full_refresh)",
        )

    def _check_identities(self, conn: sa.Connection, tables: Sequence[TableInfo]) -> None:
        """WARNs for published tables whose replica identity cannot carry their primary key."""
        oids = [int(t.extra["oid"]) for t in tables if t.extra.get("oid") is not None]
        if not oids:
            return
        for row in conn.execute(IDENTITY_GAPS, {"oids": oids}).mappings():
            name = f"{quote_ident(row['schema'])}.{quote_ident(row['name'])}"
            if row["identity"] == "n":
                problem = "REPLICA IDENTITY NOTHING: the server refuses its UPDATEs and DELETEs"
            else:
                problem = (
                    "a replica identity index without the primary key's columns: an UPDATE of the "
                    "primary key alone leaves the old row in the destination"
                )
            self.log(
                "WARN", f"table {name} has {problem} (ALTER TABLE {name} REPLICA IDENTITY DEFAULT or FULL)"
            )

    def _check_slot(self, conn: sa.Connection) -> None:
        slot = self._slot(conn)  # a slot of another plugin, kind or database: ConfigError
        resync = self.options.resync_on_invalid_position
        if slot is None:
            self.log(
                "WARN",
                f"replication slot {self.slot!r} does not exist: the first sync creates it. If a sync "
                "ran before, the slot was lost (dropped, or the server restored or failed over) and "
                + (
                    "the next sync reads every table again (invalid_cdc_cursor_position_behavior)"
                    if resync
                    else "the next sync fails: reset the connection's data, or set "
                    "invalid_cdc_cursor_position_behavior to 'Re-sync data'"
                ),
            )
            return
        status = slot["wal_status"]
        if status == "lost":
            text = (
                f"replication slot {self.slot!r} lost the WAL it needed (wal_status lost: "
                "max_slot_wal_keep_size was exceeded)"
            )
            if not resync:
                raise ConfigError(
                    f"{text}: the changes since the last sync are gone; reset the connection's data "
                    "(or set invalid_cdc_cursor_position_behavior to 'Re-sync data'), and raise "
                    "max_slot_wal_keep_size or sync more often"
                )
            self.log("WARN", f"{text}: the next sync drops it and reads every table again")
        elif status == "unreserved":
            self.log(
                "WARN",
                f"replication slot {self.slot!r} is about to lose WAL it needs (wal_status unreserved: "
                f"it retains {slot['retained']} bytes, past max_slot_wal_keep_size): sync now, or "
                "raise max_slot_wal_keep_size",
            )
        if slot["active"]:
            self.log(
                "WARN",
                f"replication slot {self.slot!r} is in use by server process {slot['active_pid']}: "
                "a sync waits for it, then fails; one slot serves one connection",
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
        chosen = {c.name for c in columns}
        unlisted = [c.name for c in table.columns if c.name not in chosen]
        if unlisted:
            self.log(
                "INFO",
                f"CDC: column(s) {', '.join(map(repr, unlisted))} of {table.namespace or 'public'}."
                f"{table.name} are not in the configured catalog: left out of its records (refresh "
                "the source schema to read them)",
            )
        encoder = self._encoders[table.descriptor] = LogImageEncoder(table, columns, self.log)
        return encoder

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
            keys = {d: t.primary_key for d, t in tables.items()}
            repl = stack.enter_context(self._replication())
            stream = repl.start(self.slot, start, publications=[self.publication])
            stack.callback(_stop_quietly, stream)
            decoder = PgOutputDecoder()
            encoders = self._encoders

            def renderable(shape: TableShape) -> bool:
                descriptor = by_name.get((shape.namespace, shape.name))
                encoder = encoders.get(descriptor) if descriptor is not None else None
                return encoder is not None and encoder.accepts(shape.names)

            assembler = ChangeAssembler(lambda oids: type_rows(conn, oids), self._adapter(tables), renderable)
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
            committed = 0
            in_transaction = False
            skipping = False
            reached = start
            last_message = time.monotonic()
            # per relation OID: the table shape last seen and its stream (None: not read)
            streams_of: dict[int, tuple[TableShape, StreamDescriptor | None]] = {}
            feed_payload = assembler.feed_payload
            render_row = assembler.render_row
            # one meta and commit time per transaction: the framework renders them once
            meta: dict[str, Any] = {}
            meta_lsn = -1
            when = ""
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
                    event: ChangeEvent | RenderedRow | None
                    if kind not in _FAST or decoder.in_stream:
                        message = decoder.decode(payload, lsn)
                        if isinstance(message, Begin):
                            if message.final_lsn >= upper:
                                stopped = True  # committed after the read started: the next read's
                                break
                            in_transaction = True
                            skipping = message.final_lsn < start  # already read (at or before the position)
                            committed = len(pending)  # the changes of transactions read to their end
                        event = assembler.feed(message, lsn)
                    elif kind == 0x43:  # Commit
                        event = feed_payload(decoder, payload, lsn)
                    else:  # Insert, Update, Delete
                        event = render_row(decoder, payload, lsn, toast.active)
                    if event is None or (skipping and type(event) is not TransactionCommitted):
                        continue
                    if type(event) is RenderedRow:
                        shape = event.table
                        known = streams_of.get(shape.oid)
                        if known is None or known[0] is not shape:
                            wanted = by_name.get((shape.namespace, shape.name))
                            known = streams_of[shape.oid] = (shape, wanted)
                        descriptor = known[1]
                        if descriptor is not None:
                            if event.commit_lsn != meta_lsn:
                                meta_lsn = event.commit_lsn
                                meta = {LSN_COLUMN: meta_lsn}
                                when = commit_time(event.commit_time)
                            pending.append(
                                _new_change(
                                    Change, (descriptor, _OPERATIONS[event.op], event.data, when, meta)
                                )
                            )
                    elif type(event) is RowChange:
                        shape = event.table
                        known = streams_of.get(shape.oid)
                        if known is None or known[0] is not shape:
                            wanted = by_name.get((shape.namespace, shape.name))
                            known = streams_of[shape.oid] = (shape, wanted)
                        descriptor = known[1]
                        if descriptor is not None:
                            image = _append(pending, descriptor, event, keys[descriptor])
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
                    elif type(event) is RelationChanged:
                        self._relation_changed(event, by_name)
                    elif type(event) is TablesTruncated:
                        if pending and any(by_name.get((t.namespace, t.name)) for t in event.tables):
                            # a truncate starts a batch: a read stopping at it checkpoints just before
                            # (this transaction's earlier changes may come again: at-least-once)
                            toast.fill()
                            yield ChangeBatch(pending, reached)
                            pending = []
                            committed = 0
                        when = commit_time(event.commit_time)
                        meta = {LSN_COLUMN: event.commit_lsn}
                        for truncated in event.tables:
                            descriptor = by_name.get((truncated.namespace, truncated.name))
                            if descriptor is not None:
                                pending.append(Change(descriptor, Operation.TRUNCATE, None, when, meta))
                    if len(pending) >= limit:
                        toast.fill()
                        yield from _split_at_commit(pending, committed, reached)
                        pending = []
                        committed = 0
            if not in_transaction and stream.received_lsn >= upper:
                reached = max(reached, upper)
            toast.fill()
            yield ChangeBatch(pending, reached)
            if while_reading:
                stream.acknowledge(reached)


_new_change = tuple.__new__  # a Change from a tuple, without the NamedTuple's Python __new__
_OPERATIONS = {"insert": Operation.INSERT, "update": Operation.UPDATE, "delete": Operation.DELETE}


def _append(
    out: list[Change], descriptor: StreamDescriptor, row: RowChange, key: Sequence[str] = ()
) -> LogImage:
    """Appends ``row``'s change(s) to ``out``; returns the image of the row after it (a delete's:
    its before image). ``key``: the stream's primary key; an update whose old row (the server
    sends one when the replica identity's columns changed, and always under REPLICA IDENTITY
    FULL, where every column counts as the identity) has another primary key value also
    deletes the old key's row."""
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
        if before is not None and _key_changed(before, row.data, key or row.table.key):
            old = LogImage(before)  # the key changed: the old key's row is gone
            old.problems = []
            out.append(Change(descriptor, Operation.DELETE, old, when, meta))
        out.append(Change(descriptor, Operation.UPDATE, image, when, meta))
    return image


def _split_at_commit(pending: list[Change], committed: int, reached: int) -> Iterator[ChangeBatch[int]]:
    """A full queue inside a transaction: the changes of the transactions before it (the first
    ``committed``) with the position after them, so a read that stops inside a big transaction
    resumes at its start, not before the small ones that preceded it; then the rest, with no
    position (inside a transaction there is no point to resume from)."""
    if committed:
        yield ChangeBatch(pending[:committed], reached)
        yield ChangeBatch(pending[committed:], None)
    else:
        yield ChangeBatch(pending, None)


def _key_changed(before: Mapping[str, Any], after: Mapping[str, Any], key: Sequence[str]) -> bool:
    """Whether an update moved the row to another key: the old row carries every key column
    (an old identity index without the primary key's columns tells nothing about it) and one
    of them differs from the new row's. Values are compared as the JSON they become: some
    (numeric's) are ``orjson.Fragment`` s, which compare by identity."""
    if not all(k in before for k in key):
        return False
    for k in key:
        old, new = before[k], after.get(k)
        if old != new and orjson.dumps(old) != orjson.dumps(new):
            return True
    return False


def _stop_quietly(stream: Any) -> None:
    # the connection may be gone already: closing it (the ExitStack's next step) is all that is left
    with suppress(Exception):
        stream.stop()
