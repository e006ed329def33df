"""source-mysql passes the source acceptance suite on the machine's MariaDB, with a type table
covering every type of issue 12 and its edge values; the Python path of each type handler gives
the same bytes as the server's rendering on every one of those cases."""

from __future__ import annotations

import base64
import secrets
import socket
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import orjson
import pymysql
import pytest
import sqlalchemy as sa

from dbkit import Database
from dbkit.source import ColumnInfo
from dbkit.testing.suites import (
    ANY,
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
    BadConfig,
    MysqlSourceHarness,
    SourceSuite,
    TypeCase,
    suite_on,
)
from source_mysql import MySqlSourceConfig, MySqlSourceDialect
from source_mysql.encoder import ServerRecordEncoder, TextRecordEncoder

UNICODE = "héllo ✓ 日本 😀 \u2028"
ODD = '\x01\x1f\x08\x0c\x7f tab\t nl\n cr\r quote" backslash\\ slash/'
# the control characters as they are inside the literal; tab, newline, CR and backslash escaped
ODD_SQL = "'" + ODD.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r") + "'"
LONG_BYTES = bytes(range(256)) * 2
BIG_DECIMAL = "12345678901234567890123456789012345.123456789012345678901234567890"
LENIENT = ("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",)
IN_UTC = ("SET SESSION time_zone = '+00:00'",)
AT_PLUS_2 = ("SET SESSION time_zone = '+02:00'",)


def point(srid: int) -> str:
    """MySQL's internal form of POINT(1 2): the SRID, then the WKB, base64."""
    import struct

    wkb = b"\x01" + struct.pack("<I", 1) + struct.pack("<dd", 1.0, 2.0)
    return base64.b64encode(struct.pack("<I", srid) + wkb).decode()


TYPE_CASES: tuple[TypeCase, ...] = (
    # ---- integers, signed and unsigned
    TypeCase("tinyint", "-128", -128, INT, id="tinyint-min"),
    TypeCase("tinyint unsigned", "255", 255, INT, id="tinyint-unsigned-max"),
    TypeCase("smallint", "-32768", -32768, INT, id="smallint-min"),
    TypeCase("smallint unsigned", "65535", 65535, INT, id="smallint-unsigned-max"),
    TypeCase("mediumint", "-8388608", -8388608, INT, id="mediumint-min"),
    TypeCase("mediumint unsigned", "16777215", 16777215, INT, id="mediumint-unsigned-max"),
    TypeCase("int", "-2147483648", -2147483648, INT, id="int-min"),
    TypeCase("int unsigned", "4294967295", 4294967295, INT, id="int-unsigned-max"),
    TypeCase("bigint", "-9223372036854775808", -9223372036854775808, INT, id="bigint-min"),
    TypeCase("bigint", "9223372036854775807", 9223372036854775807, INT, id="bigint-max"),
    TypeCase("bigint unsigned", "18446744073709551615", 18446744073709551615, INT, id="bigint-unsigned-max"),
    TypeCase("bigint", "NULL", None, INT, id="bigint-null"),
    # ---- exact and approximate numbers
    TypeCase("decimal(65,30)", f"'{BIG_DECIMAL}'", Decimal(BIG_DECIMAL), NUM, id="decimal-65-30"),
    TypeCase(
        "decimal(65,30)",
        "'-0.000000000000000000000000000001'",
        Decimal("-1E-30"),
        NUM,
        id="decimal-tiny",
    ),
    TypeCase("decimal(65,0)", "'9' * 1", 9, NUM, id="decimal-integral"),
    TypeCase("decimal(10,2)", "-0.50", Decimal("-0.50"), NUM, id="decimal-scale"),
    TypeCase("float", "1.1", 1.100000023841858, NUM, id="float-stored-value"),
    TypeCase("float", "-3.40282e38", -3.4028200183756560e38, NUM, id="float-large"),
    TypeCase("double", "0.1e0", 0.1, NUM, id="double-tenth"),
    TypeCase("double", "1.7976931348623157e308", 1.7976931348623157e308, NUM, id="double-max"),
    TypeCase("double", "2.2250738585072014e-308", 2.2250738585072014e-308, NUM, id="double-min-normal"),
    TypeCase("double", "1e-7", 1e-7, NUM, id="double-small"),
    # ---- booleans and bits
    TypeCase("tinyint(1)", "1", True, BOOL, id="tinyint1-true"),
    TypeCase("tinyint(1)", "0", False, BOOL, id="tinyint1-false"),
    TypeCase("tinyint(1)", "-5", True, BOOL, id="tinyint1-other-value"),
    TypeCase("boolean", "true", True, BOOL, id="boolean"),
    TypeCase("bit(1)", "b'1'", True, BOOL, id="bit1-true"),
    TypeCase("bit(1)", "b'0'", False, BOOL, id="bit1-false"),
    TypeCase("bit(9)", "b'101010101'", "AVU=", BIN, id="bit9"),
    TypeCase("bit(64)", "b'" + "1" * 64 + "'", "//////////8=", BIN, id="bit64-max"),
    # ---- year, dates and times
    TypeCase("year", "1901", 1901, INT, id="year-min"),
    TypeCase("year", "2155", 2155, INT, id="year-max"),
    TypeCase("year", "0", 0, INT, id="year-zero"),
    TypeCase("date", "'2024-02-29'", "2024-02-29", DATE, id="date"),
    TypeCase("date", "'1000-01-01'", "1000-01-01", DATE, id="date-min"),
    TypeCase("date", "'9999-12-31'", "9999-12-31", DATE, id="date-max"),
    TypeCase("date", "'0000-00-00'", None, DATE, change=ERR, id="date-zero"),
    TypeCase("date", "'2024-00-15'", None, DATE, change=ERR, id="date-zero-month"),
    TypeCase("date", "'2024-02-30'", None, DATE, change=ERR, setup=LENIENT, id="date-invalid"),
    TypeCase(
        "datetime(6)", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS, id="datetime-micros"
    ),
    TypeCase("datetime", "'2024-01-02 03:04:05'", "2024-01-02T03:04:05.000000", TS, id="datetime-seconds"),
    TypeCase("datetime(3)", "'2024-01-02 03:04:05.5'", "2024-01-02T03:04:05.500000", TS, id="datetime-3"),
    TypeCase(
        "datetime(6)", "'9999-12-31 23:59:59.999999'", "9999-12-31T23:59:59.999999", TS, id="datetime-max"
    ),
    TypeCase("datetime", "'1000-01-01 00:00:00'", "1000-01-01T00:00:00.000000", TS, id="datetime-min"),
    TypeCase("datetime", "'0000-00-00 00:00:00'", None, TS, change=ERR, id="datetime-zero"),
    TypeCase("datetime", "'2024-02-30 10:00:00'", None, TS, change=ERR, setup=LENIENT, id="datetime-invalid"),
    TypeCase(
        "timestamp(6) NULL",
        "'2024-01-02 03:04:05.123456'",
        "2024-01-02T03:04:05.123456+00:00",
        TSTZ,
        setup=IN_UTC,
        id="timestamp-utc",
    ),
    TypeCase(
        "timestamp NULL",
        "'2024-01-02 03:04:05'",
        "2024-01-02T01:04:05.000000+00:00",
        TSTZ,
        setup=AT_PLUS_2,
        id="timestamp-instant",
    ),
    TypeCase(
        "timestamp(6) NULL",
        "'2038-01-19 03:14:07.999999'",
        "2038-01-19T03:14:07.999999+00:00",
        TSTZ,
        setup=IN_UTC,
        id="timestamp-max",
    ),
    TypeCase(
        "timestamp NULL", "'0000-00-00 00:00:00'", None, TSTZ, change=ERR, setup=IN_UTC, id="timestamp-zero"
    ),
    TypeCase("time(6)", "'23:59:59.999999'", "23:59:59.999999", TIME, id="time-last"),
    TypeCase("time", "'00:00:00'", "00:00:00.000000", TIME, id="time-midnight"),
    TypeCase("time(1)", "'07:08:09.5'", "07:08:09.500000", TIME, id="time-fraction"),
    TypeCase("time", "'838:59:59'", None, TIME, change=ERR, id="time-max"),
    TypeCase("time", "'-838:59:59'", None, TIME, change=ERR, id="time-min"),
    TypeCase("time", "'24:00:00'", None, TIME, change=ERR, id="time-24h"),
    TypeCase("time(1)", "'-00:00:00.5'", None, TIME, change=ERR, id="time-negative-fraction"),
    # ---- text in every character set and collation
    TypeCase("char(3)", "'ab'", "ab", STR, id="char-trailing-spaces-dropped"),
    TypeCase("varchar(40)", f"'{UNICODE}'", UNICODE, STR, id="varchar-utf8mb4"),
    TypeCase(
        "varchar(40) character set utf8mb3", "'héllo ✓ 日本'", "héllo ✓ 日本", STR, id="varchar-utf8mb3"
    ),
    TypeCase("varchar(40) character set latin1", "'é ü ÿ £'", "é ü ÿ £", STR, id="varchar-latin1"),
    TypeCase(
        "varchar(40) character set latin1 collate latin1_bin", "'Ça'", "Ça", STR, id="varchar-latin1-bin"
    ),
    TypeCase("varchar(40) collate utf8mb4_bin", "'MiXeD 😀'", "MiXeD 😀", STR, id="varchar-utf8mb4-bin"),
    TypeCase("text", ODD_SQL, ODD, STR, id="text-odd-characters"),
    TypeCase("text", "''", "", STR, id="text-empty"),
    TypeCase("tinytext", "'t'", "t", STR, id="tinytext"),
    TypeCase("mediumtext character set latin1", "'£5'", "£5", STR, id="mediumtext-latin1"),
    TypeCase("longtext", f"'{UNICODE}'", UNICODE, STR, id="longtext"),
    # ---- bytes
    TypeCase("binary(4)", "x'0102'", "AQIAAA==", BIN, id="binary-padded"),
    TypeCase("varbinary(10)", "x'00ff10'", "AP8Q", BIN, id="varbinary"),
    TypeCase("varbinary(10)", "''", "", BIN, id="varbinary-empty"),
    TypeCase("blob", f"x'{LONG_BYTES.hex()}'", base64.b64encode(LONG_BYTES).decode(), BIN, id="blob-long"),
    TypeCase("tinyblob", "x'00'", "AA==", BIN, id="tinyblob"),
    TypeCase("longblob", "'abc'", "YWJj", BIN, id="longblob"),
    TypeCase("varchar(10) character set binary", "'a\\0b'", "YQBi", BIN, id="varchar-binary-charset"),
    # ---- enum and set
    TypeCase("enum('a','b c','é')", "'b c'", "b c", STR, id="enum"),
    TypeCase("enum('a','b c','é')", "'é'", "é", STR, id="enum-unicode"),
    TypeCase("set('a','b','c')", "'c,a'", "a,c", STR, id="set"),
    TypeCase("set('a','b','c')", "''", "", STR, id="set-empty"),
    # ---- JSON
    TypeCase(
        "json",
        '\'{"b": 1,\\n "a": [1.50, "x"],\\r\\n "big": 123456789012345678901234567890}\'',
        {"b": 1, "a": [Decimal("1.50"), "x"], "big": 123456789012345678901234567890},
        ANY,
        id="json-object-as-written",
    ),
    TypeCase("json", "'\"just a string\"'", "just a string", ANY, id="json-scalar"),
    TypeCase("json", "'[]'", [], ANY, id="json-empty-array"),
    TypeCase("json", "'null'", None, ANY, id="json-null-value"),
    # ---- spatial types, and MariaDB's own
    TypeCase("geometry", "ST_GeomFromText('POINT(1 2)')", point(0), BIN, id="geometry-point"),
    TypeCase("point", "ST_GeomFromText('POINT(1 2)', 4326)", point(4326), BIN, id="point-srid"),
    TypeCase(
        "uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        STR,
        id="mariadb-uuid",
    ),
    TypeCase("inet6", "'::1'", "::1", STR, id="mariadb-inet6"),
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class MySql(MysqlSourceHarness):
    command: ClassVar[str] = "source-mysql"
    type_cases = TYPE_CASES

    def admin(self, *statements: str) -> None:
        conn = pymysql.connect(**self.database.connection_params(), autocommit=True, charset="utf8mb4")
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def user(self, *grants: str) -> tuple[str, str]:
        """A new user with a password and the given grants, dropped after the test."""
        name, password = f"dbkit_u_{secrets.token_hex(4)}", secrets.token_hex(8)
        account = f"'{name}'@'%'"
        self.admin(
            f"CREATE USER {account} IDENTIFIED BY '{password}'", *(f"GRANT {g} TO {account}" for g in grants)
        )
        self.request.addfinalizer(lambda: self.admin(f"DROP USER IF EXISTS {account}"))
        return name, password

    def bad_configs(self) -> dict[str, BadConfig]:
        port = closed_port()
        db = f"`{self.database.database}`"
        self.admin("CREATE TABLE dbkit_secret (id int PRIMARY KEY)")
        writer, writer_password = self.user(f"INSERT ON {db}.dbkit_secret")
        stranger, stranger_password = self.user("USAGE ON *.*")
        reader, _ = self.user(f"SELECT ON {db}.*")
        return {
            "wrong_password": BadConfig(
                self.config(username=reader, password="dbkit-wrong-password"),
                [reader, "refused the login", "check the username and password"],
            ),
            "missing_database": BadConfig(
                self.config(database="dbkit_no_such_db"), ["'dbkit_no_such_db'", "does not exist"]
            ),
            "unknown_host": BadConfig(
                self.config(host="dbkit-no-such-host.invalid"),
                ["dbkit-no-such-host.invalid", "does not resolve"],
            ),
            "closed_port": BadConfig(self.config(port=port), [f"127.0.0.1:{port}", "check the host, port"]),
            "missing_select_grant": BadConfig(
                self.config(username=writer, password=writer_password),
                ["SELECT command denied", "dbkit_secret", "GRANT SELECT"],
            ),
            "no_grant_on_the_database": BadConfig(
                self.config(username=stranger, password=stranger_password),
                [stranger, self.database.database, "GRANT SELECT"],
            ),
            "nothing_to_read": BadConfig(
                self.config(include_tables=["dbkit_no_such_table*"]), ["no table or view", "include/exclude"]
            ),
            "cdc_without_binlog": BadConfig(
                self.config(replication_method={"method": "CDC"}), ["binlog is off", "log_bin"]
            ),
        }


TestMySqlService = suite_on(SourceSuite, MySql, "local-service")


# ------------------------------------------------------------------ Python path == server path


@pytest.mark.mysql
def test_python_and_server_paths_agree_on_every_type_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every type case, both ways: the server's rendering and the handlers' converters fed with
    the values' text forms give identical bytes, and the same changes."""
    source = TestMySqlService.harness(request, tmp_path)
    created: list[tuple[TypeCase, str]] = []
    for index, case in enumerate(TYPE_CASES):
        table = f"dbkit_agree_{index:03d}"
        source.execute(*source.literal_table_sql(table, case))
        created.append((case, table))
    dialect = MySqlSourceDialect(MySqlSourceConfig.model_validate(source.config()))
    mismatches = []
    with Database(dialect) as db, db.connect() as conn:
        tables = {t.name: t for t in dialect.list_tables(conn)}
        for case, table in created:
            info = tables[table]
            t = dialect.table_clause(info)
            columns: list[ColumnInfo] = list(info.columns)
            server = ServerRecordEncoder(columns)
            python = TextRecordEncoder(t, columns)
            row = conn.execute(sa.select(*server.select_list(), *python.select_list()).select_from(t)).one()
            n = len(server.select_list())
            server_data, server_changes = server.encode([row[:n]])
            python_data, python_changes = python.encode([row[n:]])
            if server_data != python_data:
                mismatches.append(f"{case.name}: server {server_data[0]!r} != python {python_data[0]!r}")
            expected = (
                [] if case.change is None else [{"field": "v", "change": "NULLED", "reason": case.change}]
            )
            for path, changes in (("server", server_changes), ("python", python_changes)):
                if changes.get(0, []) != expected:
                    mismatches.append(f"{case.name}: {path} changes {changes.get(0)}")
            assert orjson.loads(server_data[0])["id"] == 1
    assert not mismatches, "\n".join(mismatches)
