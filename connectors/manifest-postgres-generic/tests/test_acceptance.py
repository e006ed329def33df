"""The PostgreSQL manifest passes the source acceptance suite (type cases, resumes, incremental
with ties) against the machine's PostgreSQL, run as ``dbkit run manifest.yaml ...`` subprocesses."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from dbkit.testing.suites import (
    BIN,
    BOOL,
    DATE,
    ERR,
    INT,
    NUM,
    STR,
    TIME,
    TS,
    TSTZ,
    WIDE,
    BadConfig,
    PostgresSourceHarness,
    SourceSuite,
    TypeCase,
    suite_on,
)

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yaml"
DBKIT = str(Path(sys.executable).parent / "dbkit")


class PostgresManifest(PostgresSourceHarness):
    command: ClassVar[list[str]] = [DBKIT, "run", str(MANIFEST)]
    type_cases = (
        TypeCase("bigint", "9223372036854775807", 9223372036854775807, INT, id="bigint-max"),
        TypeCase("numeric(40,10)", f"'{WIDE}'", Decimal(WIDE), NUM, id="numeric-exact"),
        TypeCase("double precision", "'Infinity'", None, NUM, change=ERR, id="double-infinity"),
        TypeCase("boolean", "true", True, BOOL),
        TypeCase("text", "'héllo ✓ 😀'", "héllo ✓ 😀", STR, id="text-unicode"),
        TypeCase("date", "'2024-02-29'", "2024-02-29", DATE),
        TypeCase("timestamp", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        TypeCase("timestamptz", "'2024-01-02 03:04:05.5+02'", "2024-01-02T01:04:05.500000+00:00", TSTZ),
        TypeCase("time", "'23:59:59.5'", "23:59:59.500000", TIME),
        TypeCase("bytea", "'\\x00ff10'", "AP8Q", BIN),
        TypeCase(
            "jsonb", '\'{"b": 1.50, "n": 12345678901234567890}\'', {"b": 1.5, "n": 12345678901234567890}, {}
        ),
        # the manifest's type rule: an oid is an integer (the generic table reads it as text)
        TypeCase("oid", "42", 42, INT, id="oid-rule"),
        TypeCase("money", "'12.34'", "$12.34", STR, id="money-as-text"),
    )

    def config(self, **overrides: Any) -> dict[str, Any]:
        db = self.database
        config: dict[str, Any] = {
            "host": db.host,
            "port": db.port,
            "database": db.database,
            "username": db.user,
        }
        if db.password:
            config["password"] = db.password
        return {**config, **overrides}

    def bad_configs(self) -> dict[str, BadConfig]:
        url = sa.make_url(self.database.url)
        return {
            "missing_database": BadConfig(
                self.config(database="dbkit_no_such_db"), ["database", "dbkit_no_such_db", "does not exist"]
            ),
            "missing_schema": BadConfig(
                self.config(schemas=["public", "dbkit_no_such_schema"]),
                ["'dbkit_no_such_schema'", "do not exist"],
            ),
            "bad_port": BadConfig(self.config(port=70000), ["port"]),
            "unknown_host": BadConfig(
                self.config(host=str(url.host), port=1), [f"could not connect to {url.host}:1"]
            ),
        }


TestPostgresManifest = suite_on(SourceSuite, PostgresManifest, "local-service")
