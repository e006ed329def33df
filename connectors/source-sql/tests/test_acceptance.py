"""source-sql passes the source acceptance suite on SQLite, PostgreSQL and MariaDB.

The server databases are each taken from two providers: a throwaway server started from the
local binaries, and the machine's own service. Each target is one harness (how to point the
connector at a fresh database, its type table, the configs ``check`` must refuse) and one line
of suite. A few tests of what the suite does not cover follow: exact state for timestamp and
decimal keys, and the URL's password never printed.
"""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from dbkit import MASKER, ConfigError, load_config
from dbkit.testing import configured_catalog
from dbkit.testing.suites import (
    BIN,
    BOOL,
    DATE,
    ERR,
    INT,
    NUM,
    PEOPLE,
    STR,
    TIME,
    TIMETZ,
    TS,
    TSTZ,
    WIDE,
    BadConfig,
    MysqlSourceHarness,
    PostgresSourceHarness,
    SourceHarness,
    SourceSuite,
    SqliteFile,
    Table,
    TypeCase,
    people_table,
    suite_on,
)
from source_sql import SqlUrlConfig

UNICODE = "héllo ✓ 日本 😀"
JSON_DOC = '{"a": [1, 2.50, 123456789012345678901234567890, 1.000000000000000000001]}'
JSON_VALUE = {"a": [1, 2.5, 123456789012345678901234567890, Decimal("1.000000000000000000001")]}


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (just released by the OS)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ------------------------------------------------------------------------------ SQLite


class SqliteUrl(SqliteFile, SourceHarness):
    command: ClassVar[str] = "source-sql"
    namespace = "main"  # the connection's default schema, named
    type_cases = (
        TypeCase("INTEGER", "9223372036854775807", 9223372036854775807, INT, id="integer-max"),
        TypeCase("INTEGER", "-9223372036854775808", -9223372036854775808, INT, id="integer-min"),
        TypeCase("INTEGER", "'abc'", None, INT, change=ERR, id="integer-text"),
        TypeCase("REAL", "1.5", 1.5, NUM),
        TypeCase("REAL", "9e999", None, NUM, change=ERR, id="real-infinity"),
        # NUMERIC affinity keeps ~15 digits (a REAL): the connector gives what SQLite kept
        TypeCase("NUMERIC", f"'{WIDE}'", 1.2345678901234567e19, NUM, id="numeric-affinity"),
        TypeCase("DECIMAL(10,2)", "'1.10'", 1.1, NUM),
        TypeCase("TEXT", f"'{UNICODE}'", UNICODE, STR, id="text-unicode"),
        TypeCase("TEXT", "''", "", STR, id="text-empty"),
        TypeCase("VARCHAR(20)", "NULL", None, STR, id="varchar-null"),
        TypeCase("BLOB", "x'00ff10'", "AP8Q", BIN),
        TypeCase("BOOLEAN", "1", True, BOOL),
        TypeCase("BOOLEAN", "2", None, BOOL, change=ERR, id="boolean-2"),
        TypeCase("DATE", "'2024-02-29'", "2024-02-29", DATE),
        TypeCase("DATE", "'2023-02-29'", None, DATE, change=ERR, id="date-impossible"),
        TypeCase("DATETIME", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        TypeCase("TIME", "'23:59:59.5'", "23:59:59.500000", TIME),
        TypeCase("JSON", f"'{JSON_DOC}'", JSON_VALUE, {}, id="json-exact"),
        TypeCase("JSON", "'not json'", None, {}, change=ERR, id="json-invalid"),
    )

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": f"sqlite:///file:{self.path}?mode=ro&uri=true", **overrides}

    def bad_configs(self) -> dict[str, BadConfig]:
        garbage = self.tmp_path / "garbage.sqlite"
        garbage.write_bytes(b"this is not a database file" * 100)
        missing = self.tmp_path / "missing.sqlite"
        return {
            "missing_database": BadConfig(
                self.config(url=f"sqlite:///file:{missing}?mode=ro&uri=true"),
                ["could not connect", "missing.sqlite", "unable to open"],
            ),
            "not_a_database": BadConfig(
                self.config(url=f"sqlite:///file:{garbage}?mode=ro&uri=true"),
                ["garbage.sqlite", "not a SQLite database"],
            ),
        }


class TestSqlite(SourceSuite):
    harness = SqliteUrl


# ------------------------------------------------------------------------------ PostgreSQL


class Postgres(PostgresSourceHarness):
    command: ClassVar[str] = "source-sql"
    type_cases = (
        TypeCase("smallint", "-32768", -32768, INT),
        TypeCase("integer", "2147483647", 2147483647, INT),
        TypeCase("bigint", "9223372036854775807", 9223372036854775807, INT, id="bigint-max"),
        TypeCase("bigint", "-9223372036854775808", -9223372036854775808, INT, id="bigint-min"),
        TypeCase("bigint", "NULL", None, INT, id="bigint-null"),
        TypeCase("numeric(40,10)", f"'{WIDE}'", Decimal(WIDE), NUM, id="numeric-exact"),
        TypeCase("numeric", "'NaN'", None, NUM, change=ERR, id="numeric-nan"),
        TypeCase("real", "1.5", 1.5, NUM),
        TypeCase("double precision", "1.7976931348623157e308", 1.7976931348623157e308, NUM, id="double-max"),
        TypeCase("double precision", "'Infinity'", None, NUM, change=ERR, id="double-infinity"),
        TypeCase("boolean", "true", True, BOOL),
        TypeCase("text", f"'{UNICODE}'", UNICODE, STR, id="text-unicode"),
        TypeCase("text", "''", "", STR, id="text-empty"),
        TypeCase("varchar(20)", "'abc'", "abc", STR),
        TypeCase("char(3)", "'ab'", "ab ", STR),
        TypeCase("date", "'2024-02-29'", "2024-02-29", DATE),
        TypeCase("timestamp", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        # an instant: written in UTC, whatever the session's time zone
        TypeCase("timestamptz", "'2024-01-02 03:04:05.123456+02'", "2024-01-02T01:04:05.123456+00:00", TSTZ),
        TypeCase("time", "'23:59:59.5'", "23:59:59.500000", TIME),
        TypeCase("timetz", "'01:02:03+05'", "01:02:03+05:00", TIMETZ),
        TypeCase("bytea", "'\\x00ff10'", "AP8Q", BIN),
        TypeCase("json", f"'{JSON_DOC}'", JSON_VALUE, {}, id="json-exact"),
        TypeCase(
            "jsonb", '\'[true, null, "x", {"b": 1.50}]\'', [True, None, "x", {"b": 1.5}], {}, id="jsonb"
        ),
        TypeCase(
            "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", STR
        ),
        TypeCase("inet", "'192.168.0.1/24'", "192.168.0.1/24", STR, id="unregistered-type-as-text"),
    )

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.database.url, **overrides}

    def bad_configs(self) -> dict[str, BadConfig]:
        # the servers trust every local login (no wrong password here: see the MariaDB harness)
        url = sa.make_url(self.database.url)
        port = closed_port()
        return {
            "missing_database": BadConfig(
                self.config(url=url.set(database="dbkit_no_such_db").render_as_string(hide_password=False)),
                ["database", "dbkit_no_such_db", "does not exist"],
            ),
            "unknown_host": BadConfig(
                self.config(url=url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)),
                [f"could not connect to 127.0.0.1:{port}"],
            ),
            "missing_schema": BadConfig(
                self.config(schemas=["public", "dbkit_no_such_schema"]),
                ["'dbkit_no_such_schema'", "do not exist"],
            ),
        }


TestPostgresThrowaway = suite_on(SourceSuite, Postgres, "local-binaries")
TestPostgresService = suite_on(SourceSuite, Postgres, "local-service")
PostgresThrowaway, PostgresService = TestPostgresThrowaway.harness, TestPostgresService.harness


# ------------------------------------------------------------------------------ MariaDB

WRONG_PASSWORD = "dbkit-Wrong-pw-7f3a"  # must never be printed


class Mariadb(MysqlSourceHarness):
    command: ClassVar[str] = "source-sql"
    type_cases = (
        TypeCase("tinyint", "-128", -128, INT),
        TypeCase("mediumint", "8388607", 8388607, INT),
        TypeCase("bigint", "9223372036854775807", 9223372036854775807, INT, id="bigint-max"),
        TypeCase(
            "bigint unsigned", "18446744073709551615", 18446744073709551615, INT, id="bigint-unsigned-max"
        ),
        TypeCase("int", "NULL", None, INT, id="int-null"),
        TypeCase("decimal(40,10)", f"'{WIDE}'", Decimal(WIDE), NUM, id="decimal-exact"),
        TypeCase("float", "1.5", 1.5, NUM),
        TypeCase("double", "1.7976931348623157e308", 1.7976931348623157e308, NUM, id="double-max"),
        TypeCase("boolean", "true", 1, INT, id="boolean-is-tinyint"),
        TypeCase("text", f"'{UNICODE}'", UNICODE, STR, id="text-unicode"),
        TypeCase("text", "''", "", STR, id="text-empty"),
        TypeCase("varchar(20)", "'abc'", "abc", STR),
        TypeCase("enum('a','b')", "'b'", "b", STR, id="enum"),
        TypeCase("year", "2024", 2024, INT),
        TypeCase("date", "'2024-02-29'", "2024-02-29", DATE),
        TypeCase("datetime(6)", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        TypeCase("timestamp(6)", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS),
        TypeCase("time(6)", "'23:59:59.5'", "23:59:59.500000", TIME),
        TypeCase("time", "'-01:00:00'", None, TIME, change=ERR, id="time-negative"),
        TypeCase("blob", "x'00ff10'", "AP8Q", BIN),
        TypeCase("varbinary(8)", "x'01'", "AQ==", BIN),
        TypeCase("json", f"'{JSON_DOC}'", JSON_VALUE, {}, id="json-exact"),
    )

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.database.url, **overrides}

    def bad_configs(self) -> dict[str, BadConfig]:
        url = sa.make_url(self.database.url)
        port = closed_port()

        def with_(**parts: Any) -> dict[str, Any]:
            return self.config(url=url.set(**parts).render_as_string(hide_password=False))

        return {
            "wrong_password": BadConfig(
                with_(password=WRONG_PASSWORD), ["Access denied for user", "check the user name and password"]
            ),
            "missing_database": BadConfig(
                with_(database="dbkit_no_such_db"), ["database", "dbkit_no_such_db", "does not exist"]
            ),
            "unknown_host": BadConfig(
                with_(host="127.0.0.1", port=port), [f"could not connect to 127.0.0.1:{port}"]
            ),
            "missing_schema": BadConfig(
                self.config(schemas=[self.database.database, "dbkit_no_such_schema"]),
                ["'dbkit_no_such_schema'", "do not exist"],
            ),
        }


TestMariadbThrowaway = suite_on(SourceSuite, Mariadb, "local-binaries")
TestMariadbService = suite_on(SourceSuite, Mariadb, "local-service")
MariadbThrowaway, MariadbService = TestMariadbThrowaway.harness, TestMariadbService.harness


# ------------------------------------------------------------------------------ beyond the suite

TARGETS = [
    pytest.param(SqliteUrl, id="sqlite"),
    pytest.param(PostgresService, id="postgres", marks=pytest.mark.postgres),
    pytest.param(MariadbService, id="mariadb", marks=pytest.mark.mysql),
]
EVENTS = "dbkit_events"
BASE = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)


def event_rows(start: int, count: int) -> list[dict[str, Any]]:
    """Decimal keys and microsecond timestamps, two rows per timestamp."""
    return [
        {"id": Decimal(f"{i}.00001"), "at": BASE + dt.timedelta(microseconds=7 * (i // 2)), "note": f"n{i}"}
        for i in range(start, start + count)
    ]


@pytest.mark.parametrize("harness_class", TARGETS)
def test_timestamp_cursor_and_decimal_key_resume_exactly(
    harness_class: type[SourceHarness], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """State values bind back as what the driver read: every resume point loses and repeats nothing,
    and rows that later land on the last (microsecond) cursor value are read, once."""
    source = harness_class(request, tmp_path)
    at = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    table = Table(
        EVENTS,
        [
            sa.Column("id", sa.Numeric(20, 5), primary_key=True),
            sa.Column("at", at, nullable=False),
            sa.Column("note", sa.Text),
        ],
        event_rows(0, 10),
    )
    created = table.create(source)
    stream = source.runner().discover(source.config()).raise_on_failure().stream(EVENTS, source.namespace)
    catalog = configured_catalog(
        [stream], sync_mode="incremental", cursor_field=["at"], destination_sync_mode="append_dedup"
    )
    config = source.config(checkpoint_records=3)
    first = source.runner().read(config, catalog).raise_on_failure()
    ids = sorted(key(r) for r in first.records(EVENTS))
    assert ids == sorted(r["id"] for r in table.rows)
    assert first.records(EVENTS)[0]["at"] == "2024-01-02T03:04:05.123456"
    checkpoints = list(SourceSuite.records_before_each_state(first, EVENTS))
    assert len(checkpoints) >= 4
    for before, state in checkpoints:
        resumed = source.runner().read(config, catalog, [state]).raise_on_failure().records(EVENTS)
        after = [key(r) for r in resumed]
        done = [Decimal(str(i)) for i in before]
        assert sorted(set(after)) == sorted(after), f"a row read twice after {state}"
        if len(done) < len(ids):
            assert sorted(done + after) == ids, f"resuming from {state} lost or repeated rows"
        else:
            assert not set(ids) - set(done + after)
    final = checkpoints[-1][1]
    assert source.runner().read(config, catalog, [final]).raise_on_failure().records(EVENTS) == []
    late = event_rows(9, 1)[0] | {"id": Decimal("99.5")}  # at the last cursor value
    source.execute(sa.insert(created).values(late))
    again = source.runner().read(config, catalog, [final]).raise_on_failure()
    assert [key(r) for r in again.records(EVENTS)] == [Decimal("99.5")]


@pytest.mark.postgres
def test_a_dropped_connection_is_a_transient_error(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The server ends the session mid-read (SQLSTATE 57P01): transient, and the read stops there."""
    source = PostgresService(request, tmp_path)
    people_table().create(source)
    source.execute("CREATE VIEW dbkit_drops AS SELECT 1 AS id WHERE pg_terminate_backend(pg_backend_pid())")
    discovered = source.runner().discover(source.config()).raise_on_failure()
    catalog = configured_catalog(
        [discovered.stream(PEOPLE, "public"), discovered.stream("dbkit_drops", "public")]
    )
    result = source.runner().read(source.config(), catalog)
    assert result.exit_code != 0
    assert result.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
    assert result.statuses("dbkit_drops") == ["STARTED", "INCOMPLETE"]
    (error,) = result.errors()
    assert error["failure_type"] == "transient_error", error
    assert "lost the connection to" in error["message"]


def key(record: dict[str, Any]) -> Decimal:
    return Decimal(str(record["id"]))


def test_url_password_is_secret_everywhere() -> None:
    password = "p@ss word/Ω-91c2"
    encoded = "p%40ss%20word%2F%CE%A9-91c2"
    config = load_config(SqlUrlConfig, {"url": f"mysql+pymysql://reader:{encoded}@db.example.com:3306/shop"})
    assert config.url.get_secret_value().endswith("@db.example.com:3306/shop")
    for text in (password, encoded, f"postgresql://x:{password}@y/z", repr(password)):
        assert password not in MASKER.mask(f"failed with {text}!"), text
        assert encoded not in MASKER.mask(f"failed with {text}!"), text
    with pytest.raises(ConfigError, match=r"url: .*not a SQLAlchemy URL") as raised:
        load_config(SqlUrlConfig, {"url": "not a url with secret-93d1"})
    assert "secret-93d1" not in str(raised.value)


@pytest.mark.mysql
def test_wrong_password_is_never_printed(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source = MariadbService(request, tmp_path)
    url = sa.make_url(source.database.url).set(password=WRONG_PASSWORD)
    result = source.runner().check({"url": url.render_as_string(hide_password=False)})
    status = result.connection_status
    assert status["status"] == "FAILED"
    assert "Access denied" in status["message"]
    printed = orjson.dumps(result.messages).decode() + result.stderr
    assert WRONG_PASSWORD not in printed


@pytest.mark.parametrize(
    ("harness_class", "flavor", "version"),
    [
        pytest.param(
            PostgresThrowaway, "postgresql", (15,), marks=pytest.mark.postgres, id="postgres-throwaway"
        ),
        pytest.param(PostgresService, "postgresql", (15,), marks=pytest.mark.postgres, id="postgres-service"),
        pytest.param(MariadbThrowaway, "mariadb", (10, 11), marks=pytest.mark.mysql, id="mariadb-throwaway"),
        pytest.param(MariadbService, "mariadb", (10, 11), marks=pytest.mark.mysql, id="mariadb-service"),
    ],
)
def test_each_suite_runs_on_the_server_its_provider_gives(
    harness_class: type[Postgres | Mariadb],
    flavor: str,
    version: tuple[int, ...],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    source = harness_class(request, tmp_path)
    assert harness_class.providers is not None
    assert source.server.provider == harness_class.providers[0]
    assert (source.server.flavor, source.server.version[: len(version)]) == (flavor, version)
