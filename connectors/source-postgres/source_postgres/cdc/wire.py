"""A PostgreSQL logical replication connection on psycopg 3's libpq layer (``psycopg.pq``).

psycopg 3 has no replication API, but its ``PGconn`` opens a ``replication=database`` connection,
runs the replication commands and streams ``START_REPLICATION`` over COPY_BOTH:

- :class:`ReplicationConnection`: ``IDENTIFY_SYSTEM``, ``CREATE_REPLICATION_SLOT ... LOGICAL``
  (exported, used or no snapshot; temporary or not), ``DROP_REPLICATION_SLOT``, plain SQL on the
  same session (for ``USE_SNAPSHOT``), and ``START_REPLICATION SLOT ... LOGICAL``;
- :class:`ReplicationStream`: the COPY_BOTH stream. :meth:`ReplicationStream.read` returns the
  next ``XLogData`` message (keepalives are answered inside), and standby status updates report
  the flush position the caller :meth:`acknowledged <ReplicationStream.acknowledge>` only, never
  what was merely received.

The walsender's session settings are the snapshot path's (:data:`~source_postgres.types.SESSION_SETTINGS`),
passed as connection options, so pgoutput writes every value in the same text form a snapshot
read converts. Server errors become dbkit errors (:mod:`.errors`).
"""

from __future__ import annotations

import re
import select
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

from psycopg import pq
from psycopg.conninfo import make_conninfo

from dbkit import DbkitError, SystemFailure
from source_postgres.cdc.errors import connect_error, lost_connection, server_error
from source_postgres.cdc.lsn import INVALID_LSN, format_lsn, parse_lsn
from source_postgres.types import SESSION_SETTINGS

SnapshotAction = Literal["export", "use", "nothing"]

_SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}")
# microseconds between the Unix epoch and PostgreSQL's (2000-01-01)
_PG_EPOCH_OFFSET_US = 946_684_800_000_000
_XLOG_DATA = struct.Struct(">QQq")  # after the 'w': data start, WAL end, send time
_KEEPALIVE = struct.Struct(">Qq?")  # after the 'k': WAL end, send time, reply requested
_OLD_SNAPSHOT_SYNTAX = {"export": "EXPORT_SNAPSHOT", "use": "USE_SNAPSHOT", "nothing": "NOEXPORT_SNAPSHOT"}
_STATUS = struct.Struct(">cQQQq?")  # 'r', written, flushed, applied, client time, reply requested


def walsender_options(settings: Iterable[tuple[str, str]] = SESSION_SETTINGS) -> str:
    """The libpq ``options`` value setting ``settings`` on the server session (spaces escaped)."""
    parts = []
    for name, value in settings:
        escaped = value.replace("\\", "\\\\").replace(" ", "\\ ")
        parts.append(f"-c {name}={escaped}")
    return " ".join(parts)


def check_slot_name(name: str) -> str:
    """``name`` if PostgreSQL accepts it as a slot name (a-z, 0-9, _; at most 63), else ValueError."""
    if not _SLOT_NAME.fullmatch(name):
        raise ValueError(
            f"invalid replication slot name {name!r}: use lower-case letters, digits and _ (at most 63)"
        )
    return name


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class SystemIdentity:
    """What ``IDENTIFY_SYSTEM`` returns: the cluster id, timeline, current WAL flush position, database."""

    system_id: str
    timeline: int
    xlogpos: int
    dbname: str | None


@dataclass(frozen=True)
class SlotCreated:
    """A slot ``CREATE_REPLICATION_SLOT`` made: changes committed after ``consistent_point`` are
    in it, and ``snapshot_name`` (with ``snapshot='export'``) sees exactly what committed before."""

    slot_name: str
    consistent_point: int
    snapshot_name: str | None
    output_plugin: str


class XLogData(NamedTuple):
    """One ``XLogData`` message: the WAL position of its payload, the server's WAL end, the send
    time (microseconds since 2000-01-01), and the payload (one pgoutput message)."""

    data_start: int
    wal_end: int
    send_time: int
    payload: memoryview


class ReplicationConnection:
    """A ``replication=database`` session. Not thread-safe; one stream at a time; close it (or use
    it as a context manager) when done."""

    def __init__(self, pgconn: pq.abc.PGconn, target: str) -> None:
        self._pgconn = pgconn
        self.target = target
        self._stream: ReplicationStream | None = None

    @classmethod
    def connect(
        cls,
        params: Mapping[str, Any],
        *,
        settings: Iterable[tuple[str, str]] = SESSION_SETTINGS,
        target: str | None = None,
        replication: bool = True,
    ) -> ReplicationConnection:
        """Open a replication connection with libpq ``params`` (host, port, dbname, user, password,
        sslmode, ...). ``settings`` are set on the walsender session (appended to any ``options``
        in ``params``). Raises ConfigError (login, grants, pg_hba) or TransientError (unreachable).
        ``replication=False``: a plain session with the same settings (values come in the same
        text forms as the stream's), for :meth:`execute` only."""
        options = walsender_options(settings)
        given = str(params.get("options") or "").strip()
        merged = {**params, "options": f"{given} {options}".strip()}
        if replication:
            merged["replication"] = "database"
        where = (
            target
            or f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
        )
        pgconn = pq.PGconn.connect(make_conninfo("", **merged).encode())
        if pgconn.status != pq.ConnStatus.OK:
            message = pgconn.get_error_message()
            pgconn.finish()
            raise connect_error(message, where)
        return cls(pgconn, where)

    # -- commands --------------------------------------------------------------------------------

    @property
    def server_version(self) -> int:
        return int(self._pgconn.server_version)

    @property
    def closed(self) -> bool:
        return self._pgconn.status == pq.ConnStatus.BAD or bool(getattr(self._pgconn, "closed", False))

    def _error(
        self, result: pq.abc.PGresult | None, *, slot: str | None = None, publications: tuple[str, ...] = ()
    ) -> DbkitError:
        if result is None or self._pgconn.status == pq.ConnStatus.BAD:
            text = result.get_error_message() if result is not None else self._pgconn.get_error_message()
            return lost_connection(text, self.target)
        state = result.error_field(pq.DiagnosticField.SQLSTATE)
        return server_error(
            state.decode() if state else None,
            result.get_error_message(),
            target=self.target,
            slot=slot,
            publications=publications,
        )

    def execute(
        self,
        command: str,
        *,
        slot: str | None = None,
        params: Sequence[str | None] = (),
        types: Sequence[int] = (),
    ) -> list[tuple[str | None, ...]]:
        """Run one command (a replication command or plain SQL) and return its rows as text.
        ``params``: the values of ``$1``, ``$2``... in text form, of type OIDs ``types`` (plain
        SQL on a connection opened with ``replication=False``)."""
        if self._stream is not None:
            raise RuntimeError("the connection is streaming; stop the stream first")
        if params:
            result = self._pgconn.exec_params(
                command.encode(),
                [None if p is None else p.encode() for p in params],
                list(types),
            )
        else:
            result = self._pgconn.exec_(command.encode())
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise self._error(result, slot=slot)
        rows: list[tuple[str | None, ...]] = []
        for r in range(result.ntuples):
            row = []
            for c in range(result.nfields):
                value = result.get_value(r, c)
                row.append(None if value is None else bytes(value).decode())
            rows.append(tuple(row))
        return rows

    def identify_system(self) -> SystemIdentity:
        """``IDENTIFY_SYSTEM``: the cluster id, timeline, current WAL flush position and database."""
        ((system_id, timeline, xlogpos, dbname),) = self.execute("IDENTIFY_SYSTEM")
        return SystemIdentity(
            system_id=system_id or "",
            timeline=int(timeline or 0),
            xlogpos=parse_lsn(xlogpos or "0/0"),
            dbname=dbname,
        )

    def create_slot(
        self,
        name: str,
        *,
        temporary: bool = False,
        snapshot: SnapshotAction = "export",
        plugin: str = "pgoutput",
    ) -> SlotCreated:
        """``CREATE_REPLICATION_SLOT name [TEMPORARY] LOGICAL plugin (SNAPSHOT '...')``.

        ``snapshot='export'``: the returned ``snapshot_name`` can be imported by other sessions
        (``SET TRANSACTION SNAPSHOT``) until the next command on this connection. ``'use'``: this
        session must be in a ``REPEATABLE READ`` transaction (:meth:`begin_snapshot`), whose
        queries then see the slot's snapshot. ``'nothing'``: no snapshot. A temporary slot is
        dropped when this connection closes. Raises ConfigError for an existing slot, no free
        slot, or wal_level below logical.
        """
        check_slot_name(name)
        temp = " TEMPORARY" if temporary else ""
        head = f"CREATE_REPLICATION_SLOT {quote_ident(name)}{temp} LOGICAL {quote_ident(plugin)}"
        if self.server_version >= 150000:
            command = f"{head} (SNAPSHOT {quote_literal(snapshot)})"
        else:  # the syntax before PostgreSQL 15
            command = f"{head} {_OLD_SNAPSHOT_SYNTAX[snapshot]}"
        ((slot_name, consistent_point, snapshot_name, output_plugin),) = self.execute(command, slot=name)
        return SlotCreated(
            slot_name=slot_name or name,
            consistent_point=parse_lsn(consistent_point or "0/0"),
            snapshot_name=snapshot_name,
            output_plugin=output_plugin or plugin,
        )

    def begin_snapshot(self) -> None:
        """``BEGIN ISOLATION LEVEL REPEATABLE READ``: for ``create_slot(snapshot='use')``."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def drop_slot(self, name: str, *, wait: bool = False) -> None:
        """``DROP_REPLICATION_SLOT name [WAIT]``; ConfigError when it does not exist."""
        check_slot_name(name)
        self.execute(f"DROP_REPLICATION_SLOT {quote_ident(name)}{' WAIT' if wait else ''}", slot=name)

    def start(
        self,
        slot: str,
        start_lsn: int,
        *,
        publications: Sequence[str],
        proto_version: int = 1,
        messages: bool = False,
        binary: bool = False,
        streaming: bool = False,
        status_interval: float = 10.0,
    ) -> ReplicationStream:
        """``START_REPLICATION SLOT slot LOGICAL start_lsn (proto_version, publication_names, ...)``.

        The server sends the changes of transactions committed after ``max(start_lsn, the slot's
        confirmed_flush_lsn)``, one pgoutput message per :class:`XLogData`. ``binary`` asks for
        binary tuple data (values then are not in their text form: the decoder keeps them as
        bytes); ``streaming`` (protocol 2) makes the server send large transactions in progress.
        A missing slot raises ConfigError here; a missing publication arrives as the first
        :meth:`ReplicationStream.read`'s ConfigError.
        """
        check_slot_name(slot)
        if not publications:
            raise ValueError("START_REPLICATION needs at least one publication")
        if proto_version not in (1, 2) or (streaming and proto_version < 2):
            raise ValueError("pgoutput protocol 1 or 2 (streaming needs 2)")
        names = ",".join(quote_ident(p) for p in publications)
        options = [f"proto_version '{proto_version}'", f"publication_names {quote_literal(names)}"]
        if messages:
            options.append("messages 'true'")
        if binary:
            options.append("binary 'true'")
        if streaming:
            options.append("streaming 'true'")
        command = (
            f"START_REPLICATION SLOT {quote_ident(slot)} LOGICAL {format_lsn(start_lsn)} "
            f"({', '.join(options)})"
        )
        result = self._pgconn.exec_(command.encode())
        if result.status != pq.ExecStatus.COPY_BOTH:
            raise self._error(result, slot=slot, publications=tuple(publications))
        self._stream = ReplicationStream(self, slot, tuple(publications), status_interval)
        return self._stream

    def _stream_ended(self) -> None:
        self._stream = None

    def close(self) -> None:
        """Close the connection (a temporary slot goes with it). Idempotent."""
        self._stream = None
        self._pgconn.finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_new_xlogdata = tuple.__new__  # XLogData from a tuple without the NamedTuple's Python-level __new__


def _now_pg_us() -> int:
    return time.time_ns() // 1000 - _PG_EPOCH_OFFSET_US


class ReplicationStream:
    """The COPY_BOTH stream of one ``START_REPLICATION``. Made by :meth:`ReplicationConnection.start`."""

    def __init__(
        self, conn: ReplicationConnection, slot: str, publications: tuple[str, ...], status_interval: float
    ) -> None:
        self._conn = conn
        self._pgconn = conn._pgconn
        self.slot = slot
        self.publications = publications
        self.status_interval = status_interval
        self.received_lsn = INVALID_LSN
        """The highest WAL position the server said it sent (XLogData or keepalive)."""
        self.flushed_lsn = INVALID_LSN
        """What status updates report as flushed: the last :meth:`acknowledge`'d position."""
        self._last_status = time.monotonic()
        self._done = False

    def read(self, timeout: float = 1.0) -> XLogData | None:
        """The next XLogData message, or None when none came within ``timeout`` seconds.

        Keepalives are answered (and a status update is sent every ``status_interval`` seconds)
        meanwhile. Raises TransientError when the connection drops, ConfigError for a missing
        publication or a lost slot, SystemFailure when the server ends the stream otherwise.
        """
        got = self.read_many(timeout, 1)
        return got[0] if got else None

    def read_many(self, timeout: float = 1.0, limit: int = 1000, until: int | None = None) -> list[XLogData]:
        """The XLogData messages that have arrived, in order, at most ``limit`` of them; it waits
        (up to ``timeout`` seconds) only while none has. An empty list: none came in time, or
        (with ``until``) none is waiting and the server said it sent the WAL up to ``until``
        (:attr:`received_lsn`), so a caller reading up to there need not wait for more.

        What the connection has buffered is taken without waiting on the socket, so a busy
        stream costs one call per batch, not per message. Keepalives, status updates and errors
        as in :meth:`read`.
        """
        pgconn = self._pgconn
        get_copy_data = pgconn.get_copy_data
        unpack = _XLOG_DATA.unpack_from
        out: list[XLogData] = []
        append = out.append
        received = self.received_lsn
        deadline = 0.0
        polled = False  # consume_input() was called since the buffer last ran dry
        try:
            while True:
                size, data = get_copy_data(1)
                if size > 0:
                    polled = False
                    kind = data[0]
                    if kind == 0x77:  # 'w'
                        start, end, sent = unpack(data, 1)
                        if end > received:
                            received = end
                        append(_new_xlogdata(XLogData, (start, end, sent, data[25:])))
                        if len(out) >= limit:
                            return out
                        continue
                    if kind == 0x6B:  # 'k'
                        end, _sent, reply = _KEEPALIVE.unpack_from(data, 1)
                        if end > received:
                            received = end
                        if reply:
                            self.received_lsn = received
                            self.send_status()
                        continue
                    raise SystemFailure(
                        f"unexpected replication message {bytes(data[:1])!r} from {self._conn.target}"
                    )
                if size == 0:  # the buffer ran dry
                    now = time.monotonic()
                    if now - self._last_status >= self.status_interval:
                        self.received_lsn = received
                        self.send_status()
                    if out:
                        return out
                    if not polled:  # the socket may hold more already: read it without waiting
                        polled = True
                        pgconn.consume_input()
                        continue
                    if until is not None and received >= until:
                        return out
                    if not deadline:
                        deadline = now + timeout
                    remaining = deadline - now
                    if remaining <= 0:
                        return out
                    wait = min(remaining, max(0.0, self.status_interval - (now - self._last_status)))
                    readable, _, _ = select.select([pgconn.socket], [], [], wait)
                    if readable:
                        pgconn.consume_input()
                    continue
                self.received_lsn = received
                self._finish(expected=False)
                raise AssertionError("unreachable")  # pragma: no cover - _finish raises
        finally:
            self.received_lsn = received

    def acknowledge(self, lsn: int) -> None:
        """Report ``lsn`` as flushed (the server may then recycle WAL before it) and send it now.

        Call it only with positions the destination has made durable; it never moves backwards.
        """
        if lsn > self.flushed_lsn:
            self.flushed_lsn = lsn
        self.send_status()

    def send_status(self, *, reply: bool = False) -> None:
        """A standby status update: written = received, flushed = applied = acknowledged."""
        written = max(self.received_lsn, self.flushed_lsn)
        message = _STATUS.pack(b"r", written, self.flushed_lsn, self.flushed_lsn, _now_pg_us(), reply)
        if self._pgconn.put_copy_data(message) != 1 or self._pgconn.flush() != 0:
            raise lost_connection(self._pgconn.get_error_message(), self._conn.target)
        self._last_status = time.monotonic()

    def stop(self) -> None:
        """End the stream (CopyDone), discard what the server still sends, and return the
        connection to command mode. Idempotent."""
        if self._done:
            return
        pgconn = self._pgconn
        if pgconn.put_copy_end() != 1 or pgconn.flush() != 0:
            self._done = True
            self._conn._stream_ended()
            raise lost_connection(pgconn.get_error_message(), self._conn.target)
        while True:
            size, _ = pgconn.get_copy_data(0)
            if size < 0:
                break
        self._finish(expected=True)

    def _finish(self, *, expected: bool) -> None:
        """Collect the results after the copy ended; raise if the server reported an error."""
        pgconn = self._pgconn
        self._done = True
        self._conn._stream_ended()
        error: pq.abc.PGresult | None = None
        while True:
            result = pgconn.get_result()
            if result is None:
                break
            if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                error = result
        if pgconn.status == pq.ConnStatus.BAD:
            raise lost_connection(
                error.get_error_message() if error is not None else pgconn.get_error_message(),
                self._conn.target,
            )
        if error is not None:
            raise self._conn._error(error, slot=self.slot, publications=self.publications)
        if not expected:
            raise SystemFailure(f"the server ended the replication stream of slot {self.slot!r} unexpectedly")
