"""source-postgres passes the source acceptance suite on real PostgreSQL, with a type table
covering every type of the issue and its edge values; the Python path of each type handler
gives the same bytes as the server's rendering on every one of those cases.

The suite runs on two servers: a throwaway one started from the local binaries and the
machine's own service (what a user has).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from dbkit.db import Unrepresentable
from dbkit.protocol import StreamDescriptor
from dbkit.source import ColumnInfo, PythonRecordEncoder
from dbkit.testing.suites import (
    ANY,
    BIN,
    BOOL,
    DATE,
    ERR,
    INT,
    NUM,
    OBJ,
    STR,
    TIME,
    TIMETZ,
    TS,
    TSTZ,
    BadConfig,
    PostgresSourceHarness,
    SourceSuite,
    TypeCase,
    suite_on,
)
from source_postgres import PostgresSourceConfig, PostgresSourceDialect
from source_postgres.encoder import data_sql, line_sql, use_text_forms
from source_postgres.types import SESSION_SETTINGS


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["array", "null"], "items": items}


UNICODE = "héllo ✓ 日本 😀 \u2028"
ODD = '\x01\x02\x1f\x7f tab\t nl\n cr\r quote" backslash\\ slash/'
ODD_SQL = "E'\\x01\\x02\\x1f\\x7f tab\\t nl\\n cr\\r quote\" backslash\\\\ slash/'"
HUNDRED = (
    "1"
    + "0" * 99
    + ".000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001"
)
LONG_BYTES = bytes(range(256)) * 2
PAIR = "dbkit_pair"


def once(statement: str) -> str:
    """Create a type once per database (several cases share it; dropping it would drop their columns)."""
    return f"DO $$ BEGIN {statement}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"


PAIR_SETUP = (once(f"CREATE TYPE {PAIR} AS (a integer, b text, c numeric, d timestamptz)"),)
PAIR_SCHEMA = {
    "type": ["object", "null"],
    "properties": {"a": INT, "b": STR, "c": NUM, "d": TSTZ},
}


def enum_setup(name: str) -> tuple[str, ...]:
    return (once(f"CREATE TYPE {name} AS ENUM ('sad', 'ok', 'happy')"),)


def domain_setup(name: str, base: str, check: str = "") -> tuple[str, ...]:
    return (once(f"CREATE DOMAIN {name} AS {base} {check}"),)


HSTORE = ("CREATE EXTENSION IF NOT EXISTS hstore",)
CITEXT = ("CREATE EXTENSION IF NOT EXISTS citext",)

TYPE_CASES: tuple[TypeCase, ...] = (
    # ---- integers
    TypeCase("smallint", "-32768", -32768, INT, id="smallint-min"),
    TypeCase("integer", "2147483647", 2147483647, INT, id="integer-max"),
    TypeCase("bigint", "9223372036854775807", 9223372036854775807, INT, id="bigint-max"),
    TypeCase("bigint", "-9223372036854775808", -9223372036854775808, INT, id="bigint-min"),
    TypeCase("bigint", "NULL", None, INT, id="bigint-null"),
    TypeCase("oid", "4294967295", 4294967295, INT, id="oid-max"),
    TypeCase("oid[]", "'{0,4294967295,NULL}'", [0, 4294967295, None], array(INT), id="oid-array"),
    # ---- exact numbers
    TypeCase(
        "numeric(40,10)",
        "'12345678901234567890.1234567890'",
        Decimal("12345678901234567890.123456789"),
        NUM,
        id="numeric-40-10",
    ),
    TypeCase("numeric", f"'{HUNDRED}'", Decimal(HUNDRED), NUM, id="numeric-100-digits"),
    TypeCase("numeric", "'-0.000000000000000000000000000001'", Decimal("-1E-30"), NUM, id="numeric-tiny"),
    TypeCase("numeric", "'NaN'", None, NUM, change=ERR, id="numeric-nan"),
    TypeCase("numeric", "'Infinity'", None, NUM, change=ERR, id="numeric-infinity"),
    TypeCase("numeric", "'-Infinity'", None, NUM, change=ERR, id="numeric-minus-infinity"),
    TypeCase("numeric(5,2)", "'NaN'", None, NUM, change=ERR, id="numeric-bounded-nan"),
    TypeCase("numeric(10,2)", "'-0.50'", Decimal("-0.5"), NUM, id="numeric-scale"),
    TypeCase("money", "'-1234.56'", Decimal("-1234.56"), NUM, id="money"),
    TypeCase("money", "'92233720368547758.07'", Decimal("92233720368547758.07"), NUM, id="money-max"),
    # ---- floats
    TypeCase("real", "'1.5'", 1.5, NUM, id="real"),
    TypeCase("real", "'NaN'", None, NUM, change=ERR, id="real-nan"),
    TypeCase("double precision", "1.7976931348623157e308", 1.7976931348623157e308, NUM, id="double-max"),
    TypeCase("double precision", "'5e-324'", 5e-324, NUM, id="double-subnormal"),
    TypeCase("double precision", "'0.1'", 0.1, NUM, id="double-tenth"),
    TypeCase("double precision", "'Infinity'", None, NUM, change=ERR, id="double-infinity"),
    TypeCase("double precision", "'-Infinity'", None, NUM, change=ERR, id="double-minus-infinity"),
    TypeCase("double precision", "'NaN'", None, NUM, change=ERR, id="double-nan"),
    # ---- boolean, bits, binary
    TypeCase("boolean", "true", True, BOOL, id="boolean-true"),
    TypeCase("boolean", "false", False, BOOL, id="boolean-false"),
    TypeCase("bit(4)", "B'1010'", "1010", STR, id="bit"),
    TypeCase("bit varying(10)", "B''", "", STR, id="varbit-empty"),
    TypeCase("bytea", "'\\x00ff10'", "AP8Q", BIN, id="bytea"),
    TypeCase("bytea", "''", "", BIN, id="bytea-empty"),
    TypeCase(
        "bytea",
        f"decode('{LONG_BYTES.hex()}', 'hex')",
        base64.b64encode(LONG_BYTES).decode(),
        BIN,
        id="bytea-long",
    ),
    # ---- text
    TypeCase("char(3)", "'ab'", "ab ", STR, id="char-padded"),
    TypeCase("varchar(20)", "'abc'", "abc", STR, id="varchar"),
    TypeCase("text", f"'{UNICODE}'", UNICODE, STR, id="text-unicode"),
    TypeCase("text", "''", "", STR, id="text-empty"),
    TypeCase("text", ODD_SQL, ODD, STR, id="text-odd-bytes"),
    TypeCase("citext", "'MiXeD'", "MiXeD", STR, setup=CITEXT, id="citext"),
    TypeCase("name", "'a_name'", "a_name", STR, id="name"),
    TypeCase('"char"', "'x'", "x", STR, id="char-single-byte"),
    # ---- JSON
    TypeCase(
        "json",
        'E\'{"b": 1,\\n "b": 2.50,\\t"big": 123456789012345678901234567890}\'',
        {"b": Decimal("2.50"), "big": 123456789012345678901234567890},
        ANY,
        id="json-duplicate-keys-and-newlines",
    ),
    TypeCase("json", "'\"just a string\"'", "just a string", ANY, id="json-scalar"),
    TypeCase("json", "'null'", None, ANY, id="json-null-value"),
    TypeCase(
        "jsonb",
        '\'{"b": [1.50, "x"], "a": null}\'',
        {"a": None, "b": [Decimal("1.50"), "x"]},
        ANY,
        id="jsonb",
    ),
    TypeCase("jsonb", f"'{'1' + '0' * 100}'", 10**100, ANY, id="jsonb-wide-number"),
    # ---- strings of other types
    TypeCase(
        "uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        STR,
        id="uuid",
    ),
    TypeCase("inet", "'192.168.0.1/24'", "192.168.0.1/24", STR, id="inet"),
    TypeCase("inet", "'::1'", "::1", STR, id="inet6"),
    TypeCase("cidr", "'10.0.0.0/8'", "10.0.0.0/8", STR, id="cidr"),
    TypeCase("macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03", STR, id="macaddr"),
    TypeCase("macaddr8", "'08:00:2b:01:02:03:04:05'", "08:00:2b:01:02:03:04:05", STR, id="macaddr8"),
    TypeCase("interval", "'1 year 2 months 3 days 04:05:06.789'", "P1Y2M3DT4H5M6.789S", STR, id="interval"),
    TypeCase("interval", "'-1 day'", "P-1D", STR, id="interval-negative"),
    TypeCase("xml", "'<a x=\"1\">t &amp; u</a>'", '<a x="1">t &amp; u</a>', STR, id="xml"),
    TypeCase("tsvector", "'a fat cat'", "'a' 'cat' 'fat'", STR, id="tsvector"),
    TypeCase("dbkit_mood_a", "'happy'", "happy", STR, setup=enum_setup("dbkit_mood_a"), id="enum"),
    # ---- domains read as their base type
    TypeCase(
        "dbkit_posint",
        "5",
        5,
        INT,
        setup=domain_setup("dbkit_posint", "integer", "CHECK (VALUE > 0)"),
        id="domain-integer",
    ),
    TypeCase(
        "dbkit_money_n",
        "'NaN'",
        None,
        NUM,
        change=ERR,
        setup=domain_setup("dbkit_money_n", "numeric(12,2)"),
        id="domain-numeric-nan",
    ),
    TypeCase(
        "dbkit_when",
        "'2024-01-02 03:04:05+02'",
        "2024-01-02T01:04:05.000000+00:00",
        TSTZ,
        setup=domain_setup("dbkit_when", "timestamptz"),
        id="domain-timestamptz",
    ),
    # ---- hstore, ranges, composites
    TypeCase(
        "hstore",
        '\'a=>1, b=>NULL, "c d"=>"x\\"y", ""=>""\'',
        {"a": "1", "b": None, "c d": 'x"y', "": ""},
        OBJ,
        setup=HSTORE,
        id="hstore",
    ),
    TypeCase("hstore", "''", {}, OBJ, setup=HSTORE, id="hstore-empty"),
    TypeCase("int4range", "'[1,5)'", "[1,5)", STR, id="int4range"),
    TypeCase("numrange", "'empty'", "empty", STR, id="numrange-empty"),
    TypeCase(
        "tstzrange", "'[2024-01-01 00:00+00,)'", '["2024-01-01 00:00:00+00",)', STR, id="tstzrange-unbounded"
    ),
    TypeCase("int4multirange", "'{[1,3), [7,9)}'", "{[1,3),[7,9)}", STR, id="multirange"),
    TypeCase(
        PAIR,
        "ROW(1, 'x y', 2.50, '2024-01-01 00:00+02')",
        {"a": 1, "b": "x y", "c": Decimal("2.50"), "d": "2023-12-31T22:00:00.000000+00:00"},
        PAIR_SCHEMA,
        setup=PAIR_SETUP,
        id="composite",
    ),
    TypeCase(
        PAIR,
        "ROW(NULL, NULL, NULL, NULL)",
        {"a": None, "b": None, "c": None, "d": None},
        PAIR_SCHEMA,
        setup=PAIR_SETUP,
        id="composite-all-null-fields",
    ),
    TypeCase(
        PAIR,
        "ROW(2, '', 'NaN', 'infinity')",
        {"a": 2, "b": "", "c": None, "d": None},
        PAIR_SCHEMA,
        change=ERR,
        setup=PAIR_SETUP,
        id="composite-nan-infinity",
    ),
    # ---- arrays
    TypeCase("integer[]", "'{1,2,3}'", [1, 2, 3], array(INT), id="int-array"),
    TypeCase("integer[][]", "'{{1,2},{3,NULL}}'", [[1, 2], [3, None]], array(array(INT)), id="int-array-2d"),
    TypeCase(
        "integer[][][]",
        "'{{{1},{2}},{{3},{4}}}'",
        [[[1], [2]], [[3], [4]]],
        array(array(array(INT))),
        id="int-array-3d",
    ),
    TypeCase("integer[]", "'{}'", [], array(INT), id="int-array-empty"),
    TypeCase("integer[]", "'{NULL,NULL}'", [None, None], array(INT), id="int-array-nulls"),
    TypeCase("integer[]", "'[0:1]={7,8}'", [7, 8], array(INT), id="int-array-bounds"),
    TypeCase(
        "text[]",
        "ARRAY['a b', NULL, 'NULL', '', 'x\"y\\z', '{}', 'é😀']",
        ["a b", None, "NULL", "", 'x"y\\z', "{}", "é😀"],
        array(STR),
        id="text-array",
    ),
    TypeCase(
        "numeric[]",
        "'{1.50,NaN,NULL,-Infinity}'",
        [Decimal("1.50"), None, None, None],
        array(NUM),
        change=ERR,
        id="numeric-array-nan",
    ),
    TypeCase("double precision[]", "'{0.1,1e300}'", [0.1, 1e300], array(NUM), id="double-array"),
    TypeCase("boolean[]", "'{t,f,NULL}'", [True, False, None], array(BOOL), id="bool-array"),
    TypeCase("bytea[]", "ARRAY['\\x01'::bytea, NULL, '']", ["AQ==", None, ""], array(BIN), id="bytea-array"),
    TypeCase(
        "date[]",
        "'{2024-02-29,\"0044-03-15 BC\",10000-01-01,infinity}'",
        ["2024-02-29", "0044-03-15 BC", "+10000-01-01", None],
        array(DATE),
        change=ERR,
        id="date-array",
    ),
    TypeCase(
        "timestamptz[][]",
        "'{{\"2024-01-02 03:04:05.5+02\",NULL}}'",
        [["2024-01-02T01:04:05.500000+00:00", None]],
        array(array(TSTZ)),
        id="timestamptz-array-2d",
    ),
    TypeCase(
        "jsonb[]",
        "ARRAY['{\"a\": 1}'::jsonb, 'null', NULL]",
        [{"a": 1}, None, None],
        array(ANY),
        id="jsonb-array",
    ),
    TypeCase("json[]", "ARRAY[E'[1,\\n2]'::json]", [[1, 2]], array(ANY), id="json-array"),
    TypeCase(
        "uuid[]",
        "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
        ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
        array(STR),
        id="uuid-array",
    ),
    TypeCase(
        "dbkit_mood_b[]",
        "'{sad,happy}'",
        ["sad", "happy"],
        array(STR),
        setup=enum_setup("dbkit_mood_b"),
        id="enum-array",
    ),
    TypeCase(
        f"{PAIR}[]",
        "ARRAY[ROW(1, 'a', 1.5, NULL)::dbkit_pair, NULL]",
        [{"a": 1, "b": "a", "c": Decimal("1.5"), "d": None}, None],
        array(PAIR_SCHEMA),
        setup=PAIR_SETUP,
        id="composite-array",
    ),
    TypeCase("hstore[]", "ARRAY['k=>v'::hstore]", [{"k": "v"}], array(OBJ), setup=HSTORE, id="hstore-array"),
    TypeCase("money[]", "'{1.25,-3}'", [Decimal("1.25"), Decimal("-3.00")], array(NUM), id="money-array"),
    TypeCase("interval[]", "'{1 day}'", ["P1D"], array(STR), id="interval-array"),
    # ---- dates and times
    TypeCase("date", "'2024-02-29'", "2024-02-29", DATE, id="date"),
    TypeCase("date", "'infinity'", None, DATE, change=ERR, id="date-infinity"),
    TypeCase("date", "'-infinity'", None, DATE, change=ERR, id="date-minus-infinity"),
    TypeCase("date", "'0044-03-15 BC'", "0044-03-15 BC", DATE, id="date-bc"),
    TypeCase("date", "'4713-01-01 BC'", "4713-01-01 BC", DATE, id="date-min"),
    TypeCase("date", "'10000-01-01'", "+10000-01-01", DATE, id="date-year-10000"),
    TypeCase("date", "'5874897-12-31'", "+5874897-12-31", DATE, id="date-max"),
    TypeCase("time", "'23:59:59.999999'", "23:59:59.999999", TIME, id="time"),
    TypeCase("time", "'00:00'", "00:00:00.000000", TIME, id="time-midnight"),
    TypeCase("time", "'24:00:00'", "24:00:00.000000", TIME, id="time-24"),
    TypeCase("timetz", "'01:02:03+05'", "01:02:03.000000+05:00", TIMETZ, id="timetz"),
    TypeCase("timetz", "'23:59:59.5-03:30'", "23:59:59.500000-03:30", TIMETZ, id="timetz-half-hour"),
    TypeCase("timetz", "'01:02:03+05:30:15'", "01:02:03.000000+05:30:15", TIMETZ, id="timetz-seconds-offset"),
    TypeCase("timestamp", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", TS, id="timestamp"),
    TypeCase(
        "timestamp", "'2024-01-02 03:04:05'", "2024-01-02T03:04:05.000000", TS, id="timestamp-whole-second"
    ),
    TypeCase("timestamp", "'infinity'", None, TS, change=ERR, id="timestamp-infinity"),
    TypeCase("timestamp", "'-infinity'", None, TS, change=ERR, id="timestamp-minus-infinity"),
    TypeCase("timestamp", "'0044-03-15 12:00:00 BC'", "0044-03-15T12:00:00.000000 BC", TS, id="timestamp-bc"),
    TypeCase(
        "timestamp", "'4713-01-01 00:00:00 BC'", "4713-01-01T00:00:00.000000 BC", TS, id="timestamp-min"
    ),
    TypeCase(
        "timestamp", "'10000-01-01 00:00:00'", "+10000-01-01T00:00:00.000000", TS, id="timestamp-year-10000"
    ),
    TypeCase(
        "timestamp", "'294276-12-31 23:59:59.999999'", "+294276-12-31T23:59:59.999999", TS, id="timestamp-max"
    ),
    TypeCase(
        "timestamptz",
        "'2024-01-02 03:04:05.123456+02'",
        "2024-01-02T01:04:05.123456+00:00",
        TSTZ,
        id="timestamptz",
    ),
    TypeCase(
        "timestamptz",
        "'2024-01-02 03:04:05.000001-09:30'",
        "2024-01-02T12:34:05.000001+00:00",
        TSTZ,
        id="timestamptz-micro",
    ),
    TypeCase("timestamptz", "'infinity'", None, TSTZ, change=ERR, id="timestamptz-infinity"),
    TypeCase(
        "timestamptz",
        "'0044-03-15 12:00:00+00 BC'",
        "0044-03-15T12:00:00.000000+00:00 BC",
        TSTZ,
        id="timestamptz-bc",
    ),
    TypeCase(
        "timestamptz",
        "'0001-01-01 00:30:00+01'",
        "0001-12-31T23:30:00.000000+00:00 BC",
        TSTZ,
        id="timestamptz-crosses-into-bc",
    ),
    TypeCase(
        "timestamptz",
        "'10000-01-01 00:00:00+00'",
        "+10000-01-01T00:00:00.000000+00:00",
        TSTZ,
        id="timestamptz-year-10000",
    ),
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Postgres(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"
    type_cases = TYPE_CASES

    def bad_configs(self) -> dict[str, BadConfig]:
        port = closed_port()
        return {
            "missing_database": BadConfig(
                self.config(database="dbkit_no_such_db"), ["dbkit_no_such_db", "does not exist"]
            ),
            "unknown_host": BadConfig(
                self.config(host="dbkit-no-such-host.invalid"),
                ["dbkit-no-such-host.invalid", "does not resolve"],
            ),
            "closed_port": BadConfig(self.config(port=port), [f"127.0.0.1:{port}", "check the host, port"]),
            "missing_schema": BadConfig(
                self.config(schemas=["public", "dbkit_no_such_schema"]),
                ["'dbkit_no_such_schema'", "do not exist"],
            ),
            "schema_without_tables": BadConfig(
                self.config(schemas=["pg_toast"]), ["'pg_toast'", "no table or view to read"]
            ),
        }


TestPostgresThrowaway = suite_on(SourceSuite, Postgres, "local-binaries")
TestPostgresService = suite_on(SourceSuite, Postgres, "local-service")


# ------------------------------------------------------------------ Python path == server path


def _python_data(
    handlers: Sequence[Any], names: Sequence[str], row: Sequence[Any]
) -> tuple[bytes, list[Any]]:
    """The Python path: the values' text forms through the handlers, dumped by orjson."""

    columns = [ColumnInfo(n, "", h) for n, h in zip(names, handlers, strict=True)]
    encoder = PythonRecordEncoder(sa.table("t"), columns)
    datas, changes = encoder.encode([row])
    return datas[0], changes.get(0, [])


@pytest.mark.postgres
def test_python_and_server_paths_agree_on_every_type_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every type case, both ways: the server's data JSON and the handlers' Python converters
    fed with the values' text forms give identical bytes, and the same changes."""
    source = TestPostgresService.harness(request, tmp_path)
    created: list[tuple[TypeCase, str]] = []
    for index, case in enumerate(TYPE_CASES):
        table = f"dbkit_agree_{index:03d}"
        source.execute(*source.literal_table_sql(table, case))
        created.append((case, table))
    dialect = PostgresSourceDialect(PostgresSourceConfig.model_validate(source.config()))
    with source.engine.connect() as conn:
        tables = {t.name: t for t in dialect.list_tables(conn)}
    db = source.database
    with psycopg.connect(**db.connection_params(), autocommit=True) as pg:
        for name, value in SESSION_SETTINGS:
            pg.execute("SELECT set_config(%s, %s, false)", (name, value))
        use_text_forms(pg)
        mismatches = []
        for case, table in created:
            info = tables[table]
            columns = list(info.columns)
            query = sql.SQL("SELECT {}, {} FROM {}").format(
                data_sql(columns),
                sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
                sql.Identifier("public", table),
            )
            row = pg.execute(query).fetchone()
            assert row is not None
            server = row[0].encode()
            python, changes = _python_data([c.handler for c in columns], [c.name for c in columns], row[1:])
            if server != python:
                mismatches.append(f"{case.name}: server {server!r} != python {python!r}")
            expected_changes = (
                [] if case.change is None else [{"field": "v", "change": "NULLED", "reason": case.change}]
            )
            if changes != expected_changes:
                mismatches.append(f"{case.name}: python changes {changes}")
            # and the whole line of the COPY path parses to the same record
            line = pg.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    line_sql(StreamDescriptor(table, "public"), 1, columns), sql.Identifier("public", table)
                )
            ).fetchone()
            assert line is not None
            record = orjson.loads(line[0])["record"]
            assert orjson.dumps(record["data"]) == orjson.dumps(orjson.loads(server)), case.name
            assert record.get("meta", {}).get("changes", []) == expected_changes, case.name
    assert not mismatches, "\n".join(mismatches)


def test_unrepresentable_carries_the_rest_of_a_container() -> None:
    from source_postgres.types import INTEGER, NUMERIC, array_of

    handler = array_of(NUMERIC, 2)
    assert handler.convert is not None
    with pytest.raises(Unrepresentable) as caught:
        handler.convert("{{1.5,NaN},{NULL,2}}")
    assert orjson.dumps(caught.value.replacement) == b"[[1.5,null],[null,2]]"
    assert array_of(INTEGER).convert is not None
