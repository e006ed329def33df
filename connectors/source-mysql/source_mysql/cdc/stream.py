"""The binlog dump: one PyMySQL connection that asks the server for its binlog from a file and
position (``COM_BINLOG_DUMP``) and returns the events as they come.

No reconnection, ever: a dropped connection raises, and the reader (which keeps the position
itself) decides what to do. MariaDB is asked for its GTID events (``@mariadb_slave_capability``)
but read from a file and position like MySQL; both are asked for heartbeats, so that an idle log
still answers within a second, and for events with their checksum as the server writes them.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from typing import Any

import pymysql  # type: ignore[import-untyped]

from source_mysql.cdc.events import (
    FORMAT_DESCRIPTION,
    BinlogError,
    Event,
    FormatDescription,
    parse_event,
    parse_header,
)

COM_BINLOG_DUMP = 0x12
HEARTBEAT_NS = 1_000_000_000


class BinlogStream:
    """Events of the binlog from ``(file, pos)`` on. ``connect`` opens a plain PyMySQL connection
    (the dialect's arguments: SSL, tunnel, timeouts)."""

    def __init__(self, connect: Callable[[], Any], file: str, pos: int) -> None:
        self._conn: Any = connect()
        self.checksum = False
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.binlog_checksum")
                row = cur.fetchone()
                algorithm = str(row[0] if row else "NONE").upper()
                cur.execute("SET @master_binlog_checksum = @@GLOBAL.binlog_checksum")
                cur.execute("SET @mariadb_slave_capability = 4")
                cur.execute(f"SET @master_heartbeat_period = {HEARTBEAT_NS}")
            self.checksum = algorithm not in ("NONE", "0", "")
            server_id = 0x40000000 + secrets.randbelow(0x3FFFFFFF)  # a replica id nobody else uses
            if pos > 0xFFFFFFFF:
                raise BinlogError(f"binlog position {pos} is beyond what the dump command can ask for")
            payload = struct.pack("<IHI", pos, 0, server_id) + file.encode("utf-8")
            self._conn._execute_command(COM_BINLOG_DUMP, payload)
        except BaseException:
            self.close()
            raise

    def read(self) -> Event | None:
        """The next event; None when the server ends the dump (EOF)."""
        packet = self._conn._read_packet()
        data: bytes = packet.get_all_data()
        if not data:
            return None
        if data[0] == 0xFE and len(data) < 9:
            return None
        if data[0] != 0x00:
            raise BinlogError(f"unexpected binlog packet (first byte {data[0]:#x})")
        buf = data[1:]
        header = parse_header(buf)
        if header.type == FORMAT_DESCRIPTION:
            event = parse_event(buf, self.checksum)
            assert isinstance(event, FormatDescription)
            self.checksum = event.checksum
            return event
        return parse_event(buf, self.checksum)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                conn._force_close()


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError)
