"""source-postgres CDC reads (logical replication on the throwaway wal_level=logical server): the
CDC acceptance suite, the snapshot -> log handover race, a walsender terminated mid-read, a lost
slot, idle syncs that confirm only acknowledged positions, the PostgreSQL rules (publication
membership, REPLICA IDENTITY FULL) as config_errors before anything is read."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql

from dbkit.testing.suites import CdcHarness, CdcSuite, PostgresSourceHarness

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class PostgresCdc(PostgresSourceHarness, CdcHarness):
    command = "source-postgres"
    server_fixture: ClassVar[str] = "postgres_server_logical"
    position_column: ClassVar[str] = "_ab_cdc_lsn"
    precreate_slot: ClassVar[bool] = True
    """Whether ``capture`` creates the slot (the user's way); False: the first read creates it."""

    def setup(self, **fixtures: Any) -> None:
        super().setup(**fixtures)
        self.slot = f"dbkit_{secrets.token_hex(6)}"
        self.publication = "dbkit_pub"

    def cdc_config(self, **overrides: Any) -> dict[str, Any]:
        method = {
            "method": "CDC",
            "replication_slot": self.slot,
            "publication": self.publication,
            "initial_waiting_seconds": 10,
        }
        return self.config(**{"replication_method": method, **overrides})

    def capture(self, *tables: str) -> None:
        conn = self.connect()
        names = sql.SQL(", ").join(sql.Identifier("public", t) for t in tables)
        for t in tables:
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier("public", t)))
        exists = conn.execute("SELECT FROM pg_publication WHERE pubname = %s", (self.publication,)).fetchone()
        verb = "ALTER PUBLICATION {} ADD TABLE {}" if exists else "CREATE PUBLICATION {} FOR TABLE {}"
        conn.execute(sql.SQL(verb).format(sql.Identifier(self.publication), names))
        if self.precreate_slot and self.slot_row() is None:
            # as Airbyte's setup guide has users do: the slot exists before the first sync
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))

    def slot_row(self) -> dict[str, Any] | None:
        row = (
            self.connect()
            .execute(
                "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            )
            .fetchone()
        )
        return None if row is None else {"confirmed": row[0], "wal_status": row[1]}

    def acknowledged(self) -> Mapping[str, Any] | None:
        from source_postgres.cdc import format_lsn, parse_lsn

        row = self.slot_row()
        if row is None:
            return None
        lsn = parse_lsn(row["confirmed"])
        return {"lsn": lsn, "lsn_text": format_lsn(lsn), "slot": self.slot}

    def lose_log(self) -> None:
        self.connect().execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))


class TestPostgresCdc(CdcSuite):
    harness = PostgresCdc
