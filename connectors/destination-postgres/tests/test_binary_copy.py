"""Binary COPY (destination_postgres.binary, the C encoder): every value reads back exactly as
the CSV COPY of the same batch stores it, numbers to the last digit and scale; a part the encoder
does not take goes as CSV in the same load; a refused value is located in binary as in CSV."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from dbkit.destination import Batch, ValueRefused
from destination_postgres import binary, copy

pytestmark = pytest.mark.postgres
needs_encoder = pytest.mark.skipif(
    not binary.available(), reason="the C encoder was not built (no C compiler)"
)


def test_the_encoder_is_built_where_a_c_compiler_is() -> None:
    """The extension is optional only for machines without a compiler: where one is, a missing
    encoder is a broken build, not a reason to skip the tests below."""
    if shutil.which("cc") or shutil.which("gcc"):
        assert binary.available()


COLUMNS = {  # name: (target type, Arrow type)
    "i": ("bigint", pa.int64()),
    "b": ("boolean", pa.bool_()),
    "n": ("numeric", pa.string()),
    "s": ("text", pa.string()),
    "v": ("varchar(8)", pa.string()),
    "j": ("jsonb", pa.string()),
    "jt": ("json", pa.string()),
    "ts": ("timestamptz", pa.timestamp("us", tz="UTC")),
    "tsn": ("timestamp", pa.timestamp("us")),
    "d": ("date", pa.date32()),
    "t": ("time", pa.time64("us")),
    "tz": ("timetz", pa.string()),
    "bin": ("bytea", pa.binary()),
}
EPOCH = dt.datetime(1970, 1, 1)
ROWS: list[dict[str, Any]] = [
    {
        "i": 1,
        "b": True,
        "n": "1.50",
        "s": 'héllo, "world"\n\\tab\t',
        "v": "short",
        "j": '{"a": [1, 2.50, "x"], "b": null}',
        "jt": '{"a" :  1}',
        "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "tsn": dt.datetime(1999, 12, 31, 23, 59, 59, 1),
        "d": dt.date(2000, 1, 1),
        "t": dt.time(23, 59, 59, 999999),
        "tz": "23:59:59.999999+14:30",
        "bin": b"\x00\xff\\x",
    },
    {
        "i": -(2**63),
        "b": False,
        "n": "-0.000001",
        "s": "",
        "v": "",
        "j": "[]",
        "jt": "[]",
        "d": dt.date(1, 1, 1),
    },
    {
        "i": 2**63 - 1,
        "tz": "12:00:00.5+00:00",
        "n": "1e5",
        "ts": dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        "d": dt.date(9999, 12, 31),
    },
    {
        "i": 0,
        "n": "0.00",
        "tsn": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "t": dt.time(0, 0),
        "tz": "00:00:00-15:59",
    },
    {"i": 5},  # NULL everywhere else
]
TOKENS = [
    "0", "-0", "0.0", "-0.000", "1", "-1", "1.50", "10000", "9999", "99999999", "0.0001", "0.00010",
    "1234.5678", "12345.6789", "-98765432109876543210.0123456789", "1e5", "1E+5", "1e-5", "1.5e-3",
    "2.50E+2", "123e-2", "0e10", "0.0e-3", "1e1000", "1e-1000", "3.14159265358979323846264338327950288",
    "0.1", "100", "1000000000000000000000000000000000000001", "5e-324", "1.7976931348623157e308",
]  # fmt: skip


@pytest.fixture
def conn(postgres_db: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as c:
        c.execute("SET TimeZone = 'UTC'")
        yield c


def make(conn: psycopg.Connection[Any], name: str, columns: dict[str, str]) -> sql.Composed:
    table = sql.Identifier(name)
    body = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.items()
    )
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, body))
    return sql.SQL("{}").format(table)


def arrow(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows], COLUMNS[c][1]) for c in names})


def texts(
    conn: psycopg.Connection[Any], name: str, names: Sequence[str], order: str = "i"
) -> list[tuple[Any, ...]]:
    columns = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in names)
    query = sql.SQL("SELECT {} FROM {} AS t ORDER BY t.{}").format(  # not the output column's text
        columns, sql.Identifier(name), sql.Identifier(order)
    )
    return conn.execute(query).fetchall()


def load(
    conn: psycopg.Connection[Any], table: sql.Composable, parts: Sequence[pa.Table], *, use_binary: bool
) -> list[bool]:
    """copy_batches of ``parts``; which parts went binary (the encoder's calls that returned)."""
    went: list[bool] = []
    real = binary.encode

    def spy(t: pa.Table, kinds: Sequence[int]) -> bytes:
        try:
            data = real(t, kinds)
        except binary.Unsupported:
            went.append(False)
            raise
        went.append(True)
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(binary, "encode", spy)
        if not use_binary:
            patch.setenv("DBKIT_COPY_FORMAT", "csv")
        with conn.transaction(), conn.cursor() as cursor:  # as the loader: binary needs a transaction
            copy.copy_batches(cursor, table, [Batch(p, 0) for p in parts], parts[0].column_names, None)
    return went


@needs_encoder
def test_every_kind_reads_back_as_csv_stores_it(conn: psycopg.Connection[Any]) -> None:
    names = list(COLUMNS)
    spec = {c: t for c, (t, _) in COLUMNS.items()}
    by_binary = make(conn, "by_binary", spec)
    by_csv = make(conn, "by_csv", spec)
    assert load(conn, by_binary, [arrow(ROWS, names)], use_binary=True) == [True]
    assert load(conn, by_csv, [arrow(ROWS, names)], use_binary=False) == []
    stored = texts(conn, "by_binary", names)
    assert stored == texts(conn, "by_csv", names)
    nulls = next(row for row in stored if row[0] == "5")
    assert all(v is None for v in nulls[1:])
    assert "1.50" in {row[2] for row in stored}  # the token's scale is kept


@needs_encoder
def test_number_tokens_keep_value_and_scale(conn: psycopg.Connection[Any]) -> None:
    table = make(conn, "nums", {"i": "bigint", "n": "numeric"})
    rows = [{"i": k, "n": token} for k, token in enumerate(TOKENS)]
    went = load(conn, table, [arrow(rows, ["i", "n"])], use_binary=True)
    assert went == [True]
    stored = [n for _, n in texts(conn, "nums", ["i", "n"])]
    expected = [conn.execute("SELECT %s::numeric::text", [t]).fetchone()[0] for t in TOKENS]  # type: ignore[index]
    assert stored == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
        min_size=1,
        max_size=20,
    )
)
@needs_encoder
def test_any_json_number_token_matches_numeric_input(
    conn: psycopg.Connection[Any], tokens: list[str]
) -> None:
    conn.execute("DROP TABLE IF EXISTS fuzz")
    table = make(conn, "fuzz", {"i": "bigint", "n": "numeric"})
    load(conn, table, [arrow([{"i": k, "n": t} for k, t in enumerate(tokens)], ["i", "n"])], use_binary=True)
    stored = [n for _, n in texts(conn, "fuzz", ["i", "n"])]
    expected = [conn.execute("SELECT %s::numeric::text", [t]).fetchone()[0] for t in tokens]  # type: ignore[index]
    assert stored == expected


@needs_encoder
def test_a_part_the_encoder_does_not_take_goes_as_csv_in_the_same_load(conn: psycopg.Connection[Any]) -> None:
    table = make(conn, "mixed", {"i": "bigint", "n": "numeric", "d": "date"})
    names = ["i", "n", "d"]
    parts = [
        arrow([{"i": 1, "n": "1.5", "d": dt.date(2020, 1, 1)}], names),
        arrow([{"i": 2, "n": "1" + "0" * 1200}, {"i": 3, "n": "2"}], names),  # 1,201 digits
        arrow([{"i": 4, "n": "4.25"}], names),
    ]
    assert load(conn, table, parts, use_binary=True) == [True, False, True]
    assert texts(conn, "mixed", names) == [
        ("1", "1.5", "2020-01-01"),
        ("2", "1" + "0" * 1200, None),
        ("3", "2", None),
        ("4", "4.25", None),
    ]


@needs_encoder
def test_a_table_with_a_type_the_encoder_does_not_write_loads_as_csv(conn: psycopg.Connection[Any]) -> None:
    table = make(conn, "other", {"i": "bigint", "s": "uuid"})
    row = {"i": 1, "s": "c4ca4238-a0b9-2382-0dcc-509a6f75849b"}
    assert load(conn, table, [arrow([row], ["i", "s"])], use_binary=True) == []
    assert texts(conn, "other", ["i", "s"]) == [("1", row["s"])]


@needs_encoder
@pytest.mark.parametrize("use_binary", [True, False])
def test_a_refused_value_is_located_in_binary_as_in_csv(
    conn: psycopg.Connection[Any], use_binary: bool
) -> None:
    table = make(conn, f"refused_{use_binary}", {"i": "bigint", "v": "varchar(8)"})
    parts = [
        arrow([{"i": 1, "v": "ok"}], ["i", "v"]),
        arrow([{"i": 2, "v": "ok"}, {"i": 3, "v": "far too long"}], ["i", "v"]),
    ]
    with pytest.raises(ValueRefused) as refused:
        load(conn, table, parts, use_binary=use_binary)
    assert (refused.value.part, refused.value.row, refused.value.column) == (1, 1, "v")
    assert refused.value.reason == "DESTINATION_FIELD_SIZE_LIMITATION"


@needs_encoder
def test_the_encoder_checks_its_buffers() -> None:
    from destination_postgres import _pgbinary

    with pytest.raises(ValueError, match="buffers too small"):
        _pgbinary.encode_rows(3, [(_pgbinary.INT8, None, None, b"\x00" * 16, 0)])
    with pytest.raises(ValueError, match="buffers too small"):
        _pgbinary.encode_rows(1, [(_pgbinary.TEXT, None, b"\x00\x00\x00\x00\xff\x00\x00\x00", b"ab", 0)])
    assert _pgbinary.encode_rows(0, [(_pgbinary.INT8, None, None, None, 0)]) == b""


@needs_encoder
def test_a_time_zone_the_server_refuses_is_refused_as_in_csv(conn: psycopg.Connection[Any]) -> None:
    """timetz's binary input would call an out-of-range zone malformed (not a refusal): such a
    value goes as CSV, whose input refuses it as a value."""
    table = make(conn, "zones", {"i": "bigint", "tz": "timetz"})
    parts = [arrow([{"i": 1, "tz": "10:00:00+01:00"}, {"i": 2, "tz": "10:00:00+16:00"}], ["i", "tz"])]
    with pytest.raises(ValueRefused) as refused:
        load(conn, table, parts, use_binary=True)
    assert (refused.value.part, refused.value.row, refused.value.column) == (0, 1, "tz")


@needs_encoder
def test_a_column_type_changed_after_the_types_are_read_is_not_sent_in_the_old_types_binary(
    conn: psycopg.Connection[Any], postgres_db: Any
) -> None:
    """Another session (a concurrent writer widening a column) must not change a column's type
    between the read of the target's types and the COPY: binary int8 read as numeric is silently
    another number (1 -> 0.0). CSV text never depended on it."""
    table = make(conn, "race", {"i": "bigint", "x": "bigint"})
    real = copy._target_types
    altered: list[bool] = []

    def types_then_alter(cursor: psycopg.Cursor[Any], target: sql.Composable) -> dict[str, str]:
        types = real(cursor, target)
        with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as other:
            other.execute("SET lock_timeout = '500ms'")
            try:
                other.execute("ALTER TABLE race ALTER COLUMN x TYPE numeric USING x::numeric")
                altered.append(True)
            except psycopg.errors.LockNotAvailable:
                altered.append(False)
        return types

    parts = [pa.table({"i": pa.array([1, 2], pa.int64()), "x": pa.array([1, 255], pa.int64())})]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(copy, "_target_types", types_then_alter)
        load(conn, table, parts, use_binary=True)
    assert texts(conn, "race", ["i", "x"]) == [("1", "1"), ("2", "255")]
    assert altered == [False]  # the ALTER waited for the load's transaction


@needs_encoder
def test_a_type_named_like_a_builtin_in_another_schema_goes_as_csv(conn: psycopg.Connection[Any]) -> None:
    """Only pg_catalog's types are the ones KINDS means: a domain public.int8 over text (or
    public.jsonb) is text to the server, and binary int8 (or jsonb's version byte) is not its text."""
    conn.execute("CREATE DOMAIN public.int8 AS text")
    conn.execute("CREATE DOMAIN public.jsonb AS text")
    conn.execute("CREATE TABLE doms (i bigint, x public.int8, j public.jsonb)")
    names = ["i", "x", "j"]
    parts = [pa.table({"i": pa.array([1], pa.int64()), "x": pa.array([65], pa.int64()), "j": ['{"a": 1}']})]
    assert load(conn, sql.SQL("doms"), parts, use_binary=True) == []
    assert texts(conn, "doms", names) == [("1", "65", '{"a": 1}')]


@needs_encoder
def test_outside_a_transaction_block_a_load_goes_as_csv(conn: psycopg.Connection[Any]) -> None:
    """In autocommit, nothing holds the column types read before the COPY: CSV, which does not
    depend on them."""
    table = make(conn, "autocommit", {"i": "bigint", "n": "numeric"})
    went: list[bool] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(binary, "encode", lambda *a: went.append(True))
        with conn.cursor() as cursor:
            part = arrow([{"i": 1, "n": "1.50"}], ["i", "n"])
            copy.copy_batches(cursor, table, [Batch(part, 0)], ["i", "n"], None)
    assert went == []
    assert texts(conn, "autocommit", ["i", "n"]) == [("1", "1.50")]


@needs_encoder
def test_the_encoder_refuses_offsets_past_any_buffer_without_reading_there() -> None:
    """An offset near 2**63 made ``offset + rows`` (and the byte counts) overflow past the size
    checks: the validity bitmap was read far outside its buffer (a crash, hence a subprocess)."""
    script = (
        "from destination_postgres import _pgbinary as m\n"
        "for spec in [(m.INT8, b'\\xff', None, bytes(8), 2**63 - 1), (m.INT8, None, None, bytes(8), 2**61),\n"
        "             (m.TEXT, None, bytes(8), b'', 2**62), (m.BOOL, b'\\xff', None, b'\\x00', 2**63 - 8)]:\n"
        "    try:\n"
        "        m.encode_rows(1, [spec])\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
        "    else:\n"
        "        print('encoded')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "refused column 0: buffers too small for 1 rows (kind 1)",
        "refused column 0: buffers too small for 1 rows (kind 1)",
        "refused column 0: buffers too small for 1 rows (kind 6)",
        "refused column 0: buffers too small for 1 rows (kind 2)",
    ]


@needs_encoder
def test_the_encoders_error_names_the_columns_kind() -> None:
    """The error was formatted from the column array after it was freed (a use after free):
    with glibc filling freed memory (MALLOC_PERTURB_), the kind it named was garbage."""
    script = (
        "from destination_postgres import _pgbinary as m\n"
        "try:\n"
        "    m.encode_rows(2, [(m.INT8, None, None, bytes(16), 0), (m.TIME, None, None, bytes(8), 0)])\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PYTHONMALLOC": "malloc", "MALLOC_PERTURB_": "165"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "column 1: buffers too small for 2 rows (kind 5)"


@needs_encoder
def test_a_foreign_table_loads_as_csv(conn: psycopg.Connection[Any], postgres_db: Any) -> None:
    """LOCK TABLE (which holds the column types, above) does not take a foreign table, which COPY
    does: such a target goes as CSV."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    params = postgres_db.connection_params()
    options = {k: str(params[k]) for k in ("host", "port", "dbname") if params.get(k) is not None}
    pairs = [sql.SQL("{} {}").format(sql.SQL(k), sql.Literal(v)) for k, v in options.items()]
    server = sql.SQL(", ").join(pairs)
    conn.execute(sql.SQL("CREATE SERVER here FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})").format(server))
    user_options = sql.SQL("OPTIONS (user {})").format(sql.Literal(params.get("user", "postgres")))
    conn.execute(sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER here {}").format(user_options))
    make(conn, "far", {"i": "bigint", "n": "numeric"})
    conn.execute("CREATE FOREIGN TABLE near (i bigint, n numeric) SERVER here OPTIONS (table_name 'far')")
    assert load(conn, sql.SQL("near"), [arrow([{"i": 1, "n": "1.50"}], ["i", "n"])], use_binary=True) == []
    assert texts(conn, "far", ["i", "n"]) == [("1", "1.50")]


@needs_encoder
def test_a_partitioned_table_loads_in_binary(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE parted (i bigint, n numeric) PARTITION BY RANGE (i)")
    conn.execute("CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (10)")
    conn.execute("CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (10) TO (MAXVALUE)")
    rows = [{"i": 1, "n": "1.50"}, {"i": 20, "n": "2e-3"}]
    assert load(conn, sql.SQL("parted"), [arrow(rows, ["i", "n"])], use_binary=True) == [True]
    assert texts(conn, "parted", ["i", "n"]) == [("1", "1.50"), ("20", "0.002")]


def test_a_malformed_binary_field_is_not_a_refused_value(conn: psycopg.Connection[Any]) -> None:
    """A field length the server cannot take (22P04, bad COPY file format: what a value of 2 GB or
    more would be sent as) names its line and column like a refusal, but is the loader's fault:
    never NULLed as the data's."""
    make(conn, "framing", {"i": "bigint", "s": "text"})
    sent = copy._Sent()
    sent.add(0, None, 1)
    row = (2).to_bytes(2, "big") + (8).to_bytes(4, "big") + (1).to_bytes(8, "big") + b"\xff\xff\xff\xfe"
    statement = "COPY framing (i, s) FROM STDIN (FORMAT binary)"
    with pytest.raises(psycopg.DataError) as error, conn.cursor() as cursor, cursor.copy(statement) as stream:
        stream.write(binary.HEADER + row + binary.TRAILER)
    assert error.value.sqlstate == "22P04"
    assert "column s" in (error.value.diag.context or "")
    assert copy._refused(error.value, sent, ["i", "s"]) is None


@pytest.mark.parametrize("use_binary", [True, False])
def test_json_the_server_refuses_is_a_refused_value(conn: psycopg.Connection[Any], use_binary: bool) -> None:
    """jsonb's parse errors put their own CONTEXT line (``JSON data, line 1: ...``) before COPY's."""
    table = make(conn, f"badjson_{use_binary}", {"i": "bigint", "j": "jsonb"})
    parts = [arrow([{"i": 1, "j": "{}"}, {"i": 2, "j": '{"a": "\\ud800"}'}], ["i", "j"])]
    with pytest.raises(ValueRefused) as refused, conn.transaction():
        load(conn, table, parts, use_binary=use_binary)
    assert (refused.value.part, refused.value.row, refused.value.column) == (0, 1, "j")
