"""The read path's shortcuts give exactly what the general path gives: each converter shortcut
equals its snapshot handler on edge and random values (errors included), and
``ChangeAssembler.feed_payload`` makes the same events and raises the same errors as
``feed(decode(...))`` on a real server's messages of every kind and on malformed ones, and
``render_row`` the same rows, as the bytes ``orjson.dumps`` makes of their data."""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from dbkit.db import Unrepresentable
from dbkit.testing.servers import TestDatabase
from source_postgres.catalog import type_rows
from source_postgres.cdc import (
    ChangeAssembler,
    PgOutputDecoder,
    RelationChanged,
    ReplicationConnection,
    RowChange,
    TableShape,
    TablesTruncated,
)
from source_postgres.cdc.changes import RenderedRow
from source_postgres.cdc.converters import HMS, IDENTITY, YMD, converter
from source_postgres.cdc.pgoutput import Insert, Relation
from source_postgres.cdc.render import compile_renderer
from source_postgres.types import (
    BITS,
    BOOLEAN,
    BYTEA,
    DATE,
    ENUM,
    FLOAT,
    INTEGER,
    JSONB,
    NUMERIC,
    NUMERIC_BOUNDED,
    OID,
    OTHER,
    QUOTED,
    RANGE,
    SESSION_SETTINGS,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    PgReadHandler,
    array_of,
    parse_array,
)

# -- converters ------------------------------------------------------------------------------------


def outcome(convert: Callable[[str], Any] | None, text: str) -> Any:
    """What a converter makes of ``text``: its JSON bytes, or the error it raised."""
    try:
        value = text if convert is None else convert(text)
    except Unrepresentable as exc:
        return ("Unrepresentable", exc.reason, orjson.dumps(exc.replacement))
    except (TypeError, ValueError, OverflowError) as exc:
        return (type(exc).__name__,)
    return orjson.dumps(value)


def random_timestamp(rng: random.Random) -> str:
    year = rng.choice([rng.randint(1, 9999), 1, 9999, 1970, 2000, rng.randint(10000, 294276)])
    text = (
        f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    )
    digits = rng.randint(0, 6)
    if digits:
        text += "." + "".join(rng.choice("0123456789") for _ in range(digits))
    return text


TIMESTAMPS = [
    "2024-02-29 23:59:59.999999",
    "2024-02-29 00:00:00",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59.5",
    "1970-01-01 00:00:00.1",
    "2000-01-01 12:34:56.000001",
    "2023-12-31 23:59:59.12345",
    "0001-01-01 00:00:00 BC",
    "4713-01-01 00:00:00 BC",
    "10000-01-01 00:00:00",
    "294276-12-31 23:59:59.999999",
    "0000-01-01 00:00:00",
]
DATES = ["2024-02-29", "0001-01-01", "9999-12-31", "0001-01-01 BC", "10000-01-01", "0000-01-01"]
NUMBERS = ["0", "-1", "1.50", "1e+20", "-1.5e-07", "123456789012345678901234567890.123", "NaN"]
NUMBERS += ["Infinity", "-Infinity", "inf", "-inf", "nan", "0.000000000000000001"]
INTEGERS = ["0", "-1", "2147483647", "-2147483648", "9223372036854775807", "-9223372036854775808"]


def shortcut_cases() -> list[tuple[PgReadHandler, str]]:
    rng = random.Random(11)  # noqa: S311 - test data, not secrets
    cases: list[tuple[PgReadHandler, str]] = []
    stamps = TIMESTAMPS + [random_timestamp(rng) for _ in range(3000)]
    for text in stamps:
        cases.append((TIMESTAMP, text))
        cases.append((TIMESTAMP, text + "+00"))  # not a timestamp's form: both refuse it
        for zone in ("+00", "-05", "+05:30", "+00:00:12", "+00 BC"):
            if text.endswith(" BC"):
                cases.append((TIMESTAMPTZ, text[:-3] + zone[:3] + " BC"))
            else:
                cases.append((TIMESTAMPTZ, text + zone))
    for text in ("infinity", "-infinity", "", "2024-13-01 00:00:00+00", "2024-01-01T00:00:00+00"):
        cases += [(TIMESTAMPTZ, text), (TIMESTAMP, text), (DATE, text)]
    cases += [(TIMESTAMPTZ, "2024-01-01 24:00:00+00"), (TIMESTAMPTZ, "2024-01-01 00:00:60+00")]
    for text in DATES + [s.split(" ")[0] for s in stamps] + ["2023-02-30"]:
        cases.append((DATE, text))
    for handler in (NUMERIC, NUMERIC_BOUNDED, FLOAT):
        cases += [(handler, text) for text in NUMBERS]
    for handler in (INTEGER, OID):
        cases += [(handler, text) for text in INTEGERS]
    cases += [(BOOLEAN, text) for text in ("t", "f", "true", "false", "yes", "")]
    texts = ["", "é x", '"quoted"\n\\', "\x01", "[1,5)", "00000000-0000-0000-0000-000000000000", "101"]
    cases += [(BYTEA, text) for text in ("\\x", "\\x00ff10", "\\xABcd", "\\x0", "\\xzz", "abc", "")]
    for _ in range(300):
        cases.append((BYTEA, "\\x" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))).hex()))
    cases += [(JSONB, text) for text in ('{"a": 1}', "[]", "null", '"x"', "1.50", '{"k": "é\\n"}')]
    for handler in (TEXT, QUOTED, OTHER, ENUM, RANGE, BITS):
        cases += [(handler, text) for text in texts]
    return cases


def test_every_converter_shortcut_equals_its_handler() -> None:
    shortcuts = 0
    for handler, text in shortcut_cases():
        fast = converter(handler)
        if fast is not handler.convert:
            shortcuts += 1
        assert outcome(fast, text) == outcome(handler.convert, text), (handler.type_name, text)
    assert shortcuts > 10_000  # the cases went through shortcuts, not the handlers themselves


def test_shortcuts_cover_the_common_types_and_nothing_else() -> None:
    assert converter(TEXT) is IDENTITY
    assert converter(QUOTED) is IDENTITY
    assert converter(INTEGER) is int
    for handler in (NUMERIC, BOOLEAN, TIMESTAMPTZ, TIMESTAMP, DATE, BYTEA, JSONB):
        assert converter(handler) is not handler.convert
    from source_postgres.types import JSON, MONEY, TIME, TIMETZ

    for handler in (JSON, MONEY, TIME, TIMETZ):
        assert converter(handler) is handler.convert


# -- renderers -------------------------------------------------------------------------------------


def tuple_bytes(values: list[str | None]) -> bytes:
    """An Insert of relation 1 with these text values (None: NULL)."""
    out = b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">H", len(values))
    for value in values:
        if value is None:
            out += b"n"
        else:
            data = value.encode()
            out += b"t" + struct.pack(">I", len(data)) + data
    return out


def general_json(columns: list[tuple[str, Any, bool]], values: list[str | None], sparse: bool) -> Any:
    """``orjson.dumps`` of the general path's data for ``values``, or None when a value has no
    JSON form (the general path nulls it with a meta change: the renderer must leave it)."""
    data: dict[str, Any] = {}
    for (name, convert, is_key), value in zip(columns, values, strict=True):
        if value is None:
            if not sparse or is_key:
                data[name] = None
            continue
        try:
            data[name] = value if convert is None else convert(value)
        except (Unrepresentable, TypeError, ValueError, OverflowError):
            return None
    return orjson.dumps(data)


# forms a renderer takes by their shape alone; the shortcuts also check the fields' ranges, and
# no server writes a month 13, an hour 24 or a year 0000 (both then differ: never sent)
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
_RANGED = [
    (TIMESTAMPTZ, _STAMP + r"\+00", rf"{YMD} {HMS}(\.[0-9]{{1,6}})?\+00"),
    (TIMESTAMP, _STAMP, rf"{YMD} {HMS}(\.[0-9]{{1,6}})?"),
    (DATE, r"[0-9]{4}-[0-9]{2}-[0-9]{2}", YMD),
]


def never_sent(handler: PgReadHandler, text: str) -> bool:
    return any(
        handler is h and re.fullmatch(shape, text) and not re.fullmatch(ranged, text)
        for h, shape, ranged in _RANGED
    )


def test_a_renderer_writes_what_orjson_writes_of_the_general_path() -> None:
    """Every shortcut case and array case as a one-column tuple between a key and a text column:
    the renderer's bytes are the general path's JSON, or it leaves the row to the general path."""
    rendered = fallbacks = 0
    cases = shortcut_cases() + [(array_of(INTEGER), text) for text in [*ARRAYS, "{-5,12}", "{{1,2},{3}}"]]
    compiled: dict[int, Any] = {}
    for handler, text in cases:
        if never_sent(handler, text):
            continue
        columns = [("id", int, True), ("v", converter(handler), False), ("t", None, False)]
        if id(handler) not in compiled:
            compiled[id(handler)] = (handler, [compile_renderer(columns, sparse=s) for s in (False, True)])
        tuples: list[tuple[bool, list[str | None]]] = [
            (False, ["7", text, 'x"\n']),
            (True, [None, text, None]),
        ]
        for sparse, values in tuples:
            render = compiled[id(handler)][1][sparse]
            want = general_json(columns, values, sparse)
            try:
                got = render(tuple_bytes(values))
            except Exception:  # left to the general path
                fallbacks += 1
                continue
            assert got == want, (handler.type_name, values, sparse)
            rendered += 1
    assert rendered > 15_000
    assert fallbacks > 100


def test_a_sparse_renderer_leaves_out_the_nulls_outside_the_key() -> None:
    columns = [("a", None, False), ("id", int, True), ("b", None, False)]
    sparse = compile_renderer(columns, sparse=True)
    full = compile_renderer(columns, sparse=False)
    assert sparse(tuple_bytes([None, "5", None])) == b'{"id":5}'
    assert sparse(tuple_bytes([None, None, None])) == b'{"id":null}'
    assert full(tuple_bytes([None, "5", None])) == b'{"a":null,"id":5,"b":null}'
    assert compile_renderer([], sparse=False)(tuple_bytes([])) == b"{}"
    assert compile_renderer([("x", None, False)], sparse=True)(tuple_bytes([None])) == b"{}"
    with pytest.raises(Exception):  # noqa: B017 - any error: the general path decides
        full(tuple_bytes([None, "5", None]) + b"!")  # a trailing byte


def array_reference(element: PgReadHandler, text: str) -> Any:
    """What an array handler made of ``text`` before its one-dimension shortcut: parse_array, then
    each element converted, those without a JSON form nulled (and the array's error says so)."""
    nulled = False

    def walk(node: Any) -> Any:
        nonlocal nulled
        if isinstance(node, list):
            return [walk(n) for n in node]
        if node is None or element.convert is None:
            return node
        try:
            return element.convert(node)
        except Unrepresentable as exc:
            nulled = True
            return exc.replacement

    out = walk(parse_array(text))
    if nulled:
        raise Unrepresentable("an element has no JSON form", replacement=out)
    return out


ARRAYS = ["{}", "{1}", "{1,2,3}", "{1,NULL,3}", "{null,NuLl}", "{ 1 , 2 }", "{1,}", "{,}", "{ }"]
ARRAYS += ['{"a b",c}', '{"NULL",NULL}', "{{1,2},{3,4}}", "{{}}", "[0:1]={1,2}", "{a\\,b}", "{1,x}"]
ARRAYS += ["{NaN,1.5}", "{t,f}", "{1,2", "1,2}", "{", "}", "", "{}}", "{{1}"]


@pytest.mark.parametrize("element", [INTEGER, TEXT, NUMERIC, BOOLEAN, TIMESTAMPTZ], ids=lambda h: h.type_name)
def test_array_shortcut_equals_the_parser(element: PgReadHandler) -> None:
    handler = array_of(element)
    rng = random.Random(5)  # noqa: S311 - test data, not secrets
    cases = list(ARRAYS)
    for _ in range(300):
        items = [rng.choice(["NULL", str(rng.randint(-(2**40), 2**40))]) for _ in range(rng.randint(0, 9))]
        cases.append("{" + ",".join(items) + "}")
    for text in cases:
        assert outcome(handler.convert, text) == outcome(lambda t: array_reference(element, t), text), text


# -- feed_payload ------------------------------------------------------------------------------------

BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) AS i)"


def raw_messages(
    db: TestDatabase, cdc: Any, statements: list[str], commits: int, **start: Any
) -> list[tuple[int, bytes]]:
    """(LSN, payload) of every message a slot sends for ``statements`` up to the ``commits``-th
    Commit, read with ``read_many``."""
    with ReplicationConnection.connect(cdc.params(db), settings=SESSION_SETTINGS) as conn:
        slot = conn.create_slot("raw_" + db.name[-12:], temporary=True, snapshot="nothing")
        cdc.run(db, *statements)
        stream = conn.start(slot.slot_name, slot.consistent_point, publications=["pub"], **start)
        out: list[tuple[int, bytes]] = []
        seen = 0
        while seen < commits:
            got = stream.read_many(timeout=10, limit=7)
            assert got, f"nothing within 10s after {len(out)} messages"
            assert len(got) <= 7
            for x in got:
                out.append((x.data_start, bytes(x.payload)))
                seen += x.payload[0] == ord("C")
        stream.stop()
    return out


def comparable(event: Any) -> Any:
    """An event with its values as JSON bytes (orjson fragments have no equality) and its table
    as its description (each assembler makes its own array handlers, which compare by identity)."""
    if isinstance(event, RowChange):
        table = described(event.table)
        return (event.op, table, orjson.dumps(event.data), orjson.dumps(event.before), *event[4:])
    if isinstance(event, RelationChanged):
        return ("relation changed", described(event.table), described(event.previous))
    if isinstance(event, TablesTruncated):
        return ("truncate", tuple(described(t) for t in event.tables), *event[1:])
    return event


def described(table: TableShape) -> Any:
    return (table.oid, table.qualified, table.replica_identity, table.columns)


def run_both(
    db: TestDatabase, messages: list[tuple[int, bytes]], rendered: int = 0
) -> tuple[list[Any], list[Any]]:
    """Each message through ``feed(decode(...))`` and through ``feed_payload``, each on its own
    decoder and assembler: the event or the error (type and text) per message. A third run, the
    read loop's way (Insert, Update and Delete through ``render_row``, every table rendered),
    must equal the second, with at least ``rendered`` rows rendered (the others fell back)."""
    engine = sa.create_engine(db.url)
    results: list[list[Any]] = []
    renders = 0
    try:
        with engine.connect() as conn:
            for way in ("decode", "payload", "row"):
                decoder = PgOutputDecoder(1)
                assembler = ChangeAssembler(lambda oids: type_rows(conn, oids), render=lambda shape: True)
                out: list[Any] = []
                for lsn, payload in messages:
                    event: Any
                    try:
                        if way == "row" and payload[:1] in (b"I", b"U", b"D"):
                            event = assembler.render_row(decoder, payload, lsn)
                            if isinstance(event, RenderedRow):
                                renders += 1
                                table = described(event.table)
                                event = (event.op, table, event.data, b"null", [], *event[3:], (), None)
                        elif way != "decode":
                            event = assembler.feed_payload(decoder, payload, lsn)
                        else:
                            event = assembler.feed(decoder.decode(payload, lsn), lsn)
                        out.append(comparable(event))
                    except Exception as exc:
                        out.append(("error", type(exc).__name__, str(exc)))
                results.append(out)
    finally:
        engine.dispose()
    for one, two in zip(results[1], results[2], strict=True):
        assert two == one, "render_row differs from feed_payload"
    assert renders >= rendered
    return results[0], results[1]


# rows of every value form the renderer handles or leaves to the general path (non-finite numbers,
# BC and far dates, infinities, escapes, control characters, non-ASCII, NULLs, arrays...)
RENDER_CASES = [
    "INSERT INTO r VALUES (E'q\"uo\\\\te\\ttab\\nnl\\x01 \u00e9\u4e2d\U0001f600 /\x7f', 1, -32768,"
    " -1234567.125, 'NaN', '-1.5e-300', true, 'vc\"x', '2024-02-29 23:59:59.000001+00',"
    " '2024-02-29 23:59:59.5', '2024-02-29', '{\"k\": [1, \"\u00e9\"], \"z\": null}',"
    " '{ \"raw\" : 1 }', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '{1,-2,NULL}',"
    " '{\"a b\",NULL,\"c\\\"d\"}', '1 day 02:03:04', '23:59:59.999', 'happy')",
    "INSERT INTO r (a, id) VALUES ('plain', 2), (NULL, 3)",
    "INSERT INTO r (id, r4, d8, tz, ts, d, by, ia, ta) VALUES (4, 'Infinity', '-Infinity',"
    " 'infinity', '-infinity', 'infinity', '', '{}', '{}')",
    "INSERT INTO r (id, tz, ts, d, n) VALUES (5, '0044-03-15 12:00:00+00 BC', '10000-01-01 00:00:00',"
    " '0001-01-01 BC', 'NaN')",
    "INSERT INTO r (id, b, tz, ts, ia) VALUES (6, false, '1999-12-31 23:00:00-05',"
    " '2000-01-01 00:00:00', '{{1,2},{3,4}}')",
    "INSERT INTO r (id, n, d8, a) VALUES (7, 0, 0, ''), (8, '1e-3', 1e300, E'\u00e9')",
    "INSERT INTO r (id, tz, ts, d, ia, by) VALUES (9, '2001-02-03 04:05:06.12+00', '2001-02-03 04:05:06.123',"
    " '2001-02-03', '{}', ''), (10, '2001-02-03 04:05:06.1234+00', '2001-02-03 04:05:06.12345', NULL,"
    " '{-5}', '\\xff')",
    "UPDATE r SET a = 'updated', s = 1 WHERE id = 1",
    "DELETE FROM r WHERE id = 2",
    "ALTER TABLE r REPLICA IDENTITY FULL",
    "DELETE FROM r WHERE id = 3",
    "UPDATE r SET vc = 'full' WHERE id = 4",
]


@pytest.mark.postgres
@pytest.mark.slow
def test_feed_payload_equals_decode_and_feed(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(
        db,
        "CREATE TYPE mood AS ENUM ('sad', 'happy')",
        "CREATE TABLE k (id int PRIMARY KEY, v text, n numeric, at timestamptz, d date, b boolean,"
        " f float8, m mood, big text)",
        "CREATE TABLE f (id int, v text, big text)",
        "ALTER TABLE f REPLICA IDENTITY FULL",
        f"INSERT INTO f VALUES (1, 'a', {BIG})",
        "INSERT INTO k VALUES (100, 'old', 1, now(), '2024-01-01', true, 1, 'sad', 'x')",
        "CREATE TABLE r (a text, id bigint PRIMARY KEY, s smallint, n numeric(10,3), r4 real,"
        " d8 float8, b boolean, vc varchar(9), tz timestamptz, ts timestamp, d date, jb jsonb,"
        " j json, u uuid, by bytea, ia int[], ta text[], iv interval, tm time, e mood)",
        "CREATE PUBLICATION pub FOR TABLE k, f, r",
    )
    messages = raw_messages(
        db,
        cdc,
        [
            "INSERT INTO k VALUES (1, 'é', 1.50, '2024-02-29 23:59:59.5+00', '0001-01-01 BC', true,"
            " 'NaN', 'happy', NULL), (2, NULL, 'NaN', 'infinity', 'infinity', false, '-Infinity',"
            " NULL, NULL), (3, 'x', 1e20, '0001-01-01 00:00:00+00 BC', '10000-01-01', NULL, 1.5e-7,"
            " 'sad', NULL)",
            "UPDATE k SET v = 'y' WHERE id = 1",
            "UPDATE k SET id = 4 WHERE id = 2",
            f"UPDATE k SET big = {BIG} WHERE id = 3",
            "UPDATE k SET v = 'z' WHERE id = 3",  # unchanged TOAST, default identity: left out
            "DELETE FROM k WHERE id = 1",
            "UPDATE f SET v = 'b'",  # unchanged TOAST, full identity: filled in
            "DELETE FROM f",
            "TRUNCATE k",
            "ALTER TABLE k ADD COLUMN extra int",
            "INSERT INTO k (id, extra) VALUES (5, 7)",
            "SELECT pg_logical_emit_message(true, 'dbkit', 'note')",
            *RENDER_CASES,
        ],
        commits=11 + len(RENDER_CASES) - 1,  # the ALTER TABLE sends none
        messages=True,
    )
    kinds = {chr(p[0]) for _, p in messages}
    assert kinds >= set("BCIUDRTYM")
    slow, fast = run_both(db, messages, rendered=12)
    assert fast == slow
    assert [e for e in slow if isinstance(e, tuple) and e[0] == "error"] == []
    rows = [e for e in slow if isinstance(e, tuple) and e[0] in ("insert", "update", "delete")]
    assert len(rows) == 11 + 14
    # the unchanged TOAST under default identity: named, with the key's text to look it up by
    assert [(e[-2], e[-1]) for e in rows if e[-2]] == [(("big",), {"id": "3"})]
    assert any(isinstance(e, tuple) and e[0] == "truncate" for e in slow)

    # malformed payloads after the stream's Relation messages: the same errors, message for message
    relations = [m for m in messages if m[1][:1] == b"R"]
    described = [PgOutputDecoder().decode(p, 0) for _, p in relations]
    k = [m for m in described if isinstance(m, Relation) and m.name == "k"][-1]
    k_oid, columns = k.oid, len(k.columns)
    head = b"I" + struct.pack(">I", k_oid)
    binary = b"N" + struct.pack(">H", columns) + b"b\x00\x00\x00\x01a" + b"n" * (columns - 1)
    bad = [
        b"",
        b"B" + bytes(20) + b"!",  # trailing byte
        b"B" + bytes(10),  # short
        b"C" + bytes(10),
        b"C" + bytes(26),  # trailing byte
        head + b"X",  # no 'N'
        head + b"N\x00\x01x",  # unknown value kind
        head + b"N\x00\x01t\x00\x00\x00\x09abc",  # a value past the end
        head + b"N\x00\x01t\x00\x00\x00\x01a!",  # trailing byte
        head + b"N\x00\x01t\x00\x00\x00\x01a",  # one value for many columns
        head + binary,  # a binary value
        head + b"N\x00\x01t\x00\x00\x00\x02\xff\xfe",  # not UTF-8
        b"I\x00\x00\x00\x01N\x00\x00",  # an unknown relation
        b"U" + struct.pack(">I", k_oid) + b"Q",  # no 'N' after the old tuple marker
        b"U" + struct.pack(">I", k_oid) + b"K\x00\x00X",
        b"D" + struct.pack(">I", k_oid) + b"N\x00\x00",  # no 'K'/'O'
        b"D" + struct.pack(">I", 999) + b"K\x00\x00",
    ]
    probe = relations + [(0x10000 + i, payload) for i, payload in enumerate(bad)]
    slow, fast = run_both(db, probe)
    assert fast == slow
    assert [e[:2] for e in slow[len(relations) :]] == [("error", "PgOutputError")] * len(bad)


@pytest.mark.postgres
@pytest.mark.slow
def test_read_many_returns_what_is_buffered_in_order(postgres_db_logical: TestDatabase, cdc: Any) -> None:
    db = postgres_db_logical
    cdc.run(db, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE PUBLICATION pub FOR TABLE t")
    statements = [f"INSERT INTO t VALUES ({i})" for i in range(50)]
    messages = raw_messages(db, cdc, statements, commits=50)
    decoder = PgOutputDecoder()
    decoded = [decoder.decode(p, lsn) for lsn, p in messages]
    assert [m.new for m in decoded if isinstance(m, Insert)] == [(str(i),) for i in range(50)]
    lsns = [lsn for lsn, _ in messages if lsn]  # a Relation message comes at 0/0
    assert lsns == sorted(lsns)
    with ReplicationConnection.connect(cdc.params(db)) as conn:
        slot = conn.create_slot("quiet", temporary=True, snapshot="nothing")
        stream = conn.start(slot.slot_name, slot.consistent_point, publications=["pub"])
        assert stream.read_many(timeout=0.2) == []
        cdc.run(db, "INSERT INTO t VALUES (1000)")
        got: list[Any] = []
        while not got or got[-1].payload[0] != ord("C"):
            more = stream.read_many(timeout=10)
            assert more
            got += more
        assert bytes(x.payload[0] for x in got) == b"BRIC"
        assert stream.received_lsn >= got[-1].data_start
        stream.stop()
