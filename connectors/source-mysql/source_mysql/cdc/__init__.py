"""Binlog change data capture: a small client of the replication protocol (:mod:`.stream`,
:mod:`.events`), row images decoded to the snapshot path's value forms (:mod:`.values`), and the
reader behind the CDC framework (:mod:`.reader`)."""

from __future__ import annotations

from source_mysql.cdc.reader import BinlogPosition, MySqlCdcReader

__all__ = ["BinlogPosition", "MySqlCdcReader"]
