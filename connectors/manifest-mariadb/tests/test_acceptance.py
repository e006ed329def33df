"""The MariaDB manifest passes the source acceptance suite (type cases, resumes, incremental with
ties) against the machine's MariaDB, run as ``dbkit run manifest.yaml ...`` subprocesses."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from dbkit.testing import configured_catalog
from dbkit.testing.suites import (
    BIN,
    DATE,
    ERR,
    INT,
    NUM,
    STR,
    TIME,
    TS,
    WIDE,
    BadConfig,
    MysqlSourceHarness,
    SourceSuite,
    TypeCase,
    suite_on,
)

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yaml"
DBKIT = str(Path(sys.executable).parent / "dbkit")

WRONG_PASSWORD = "dbkit-Wrong-pw-5e1b"  # must never be printed


class MariadbManifest(MysqlSourceHarness):
    command: ClassVar[list[str]] = [DBKIT, "run", str(MANIFEST)]
    type_cases = (
        TypeCase("bigint unsigned", "18446744073709551615", 18446744073709551615, INT, id="unsigned-max"),
        TypeCase("decimal(40,10)", f"'{WIDE}'", Decimal(WIDE), NUM, id="decimal-exact"),
        TypeCase("double", "1.7976931348623157e308", 1.7976931348623157e308, NUM, id="double-max"),
        TypeCase("text", "'héllo ✓ 😀'", "héllo ✓ 😀", STR, id="text-unicode"),
        TypeCase("enum('a','b')", "'b'", "b", STR, id="enum"),
        TypeCase("date", "'2024-02-29'", "2024-02-29", DATE),
        TypeCase("datetime(6)", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        TypeCase("time", "'-01:00:00'", None, TIME, change=ERR, id="time-negative"),
        TypeCase("varbinary(8)", "x'00ff10'", "AP8Q", BIN),
        TypeCase(
            "json",
            """'{"a": [1, 2.50, 123456789012345678901234567890]}'""",
            {"a": [1, 2.5, 123456789012345678901234567890]},
            {},
            id="json-exact",
        ),
        # the manifest's type rule: MariaDB's inet6 reads as text that can be a cursor
        TypeCase("inet6", "'::1'", "::1", STR, id="inet6-rule"),
    )

    def bad_configs(self) -> dict[str, BadConfig]:
        return {
            "wrong_password": BadConfig(
                self.config(password=WRONG_PASSWORD), ["Access denied for user", "check the user name"]
            ),
            "missing_database": BadConfig(
                self.config(database="dbkit_no_such_db"), ["database", "dbkit_no_such_db", "does not exist"]
            ),
            "missing_schema": BadConfig(
                self.config(schemas=[self.database.database, "dbkit_no_such_schema"]),
                ["'dbkit_no_such_schema'", "do not exist"],
            ),
            "unknown_host": BadConfig(self.config(port=1), ["could not connect to", ":1"]),
        }


TestMariadbManifest = suite_on(SourceSuite, MariadbManifest, "local-service")
MariadbManifestLocalService = TestMariadbManifest.harness


@pytest.mark.mysql
def test_the_type_rule_makes_inet6_a_cursor(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The generic table reads unknown types as text that cannot be a cursor; the manifest's rule
    reads inet6 as a string, which can."""
    source = MariadbManifestLocalService(request, tmp_path)
    source.execute(
        "CREATE TABLE hosts (id INT PRIMARY KEY, addr INET6 NOT NULL)",
        "INSERT INTO hosts VALUES (1, '::1'), (2, '::2'), (3, '::3')",
    )
    stream = source.runner().discover(source.config()).raise_on_failure().stream("hosts", source.namespace)
    catalog = configured_catalog([stream], sync_mode="incremental", cursor_field=["addr"])
    first = source.runner().read(source.config(), catalog).raise_on_failure()
    assert [r["addr"] for r in first.records("hosts")] == ["::1", "::2", "::3"]
    source.execute("INSERT INTO hosts VALUES (4, '::4')")
    later = source.runner().read(source.config(), catalog, [first.states("hosts")[-1]]).raise_on_failure()
    assert [r["addr"] for r in later.records("hosts")] == ["::4"]
