"""Values PostgreSQL cannot hold in their column: NULL plus an ``_airbyte_meta.changes`` entry with
the Airbyte reason (NUL bytes: removed, ``TRUNCATED``); the row is never dropped and the batch
never fails. Numbers are exact to the last digit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import DestinationSuite, stream, sync_messages

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "vals"
TYPECAST = "DESTINATION_TYPECAST_ERROR"
SIZE = "DESTINATION_FIELD_SIZE_LIMITATION"
SERIALIZATION = "DESTINATION_SERIALIZATION_ERROR"
DIGITS_100 = "1234567890" * 10
PROPS = {
    "id": json_schema_for(AirbyteType.INTEGER),
    "i": json_schema_for(AirbyteType.INTEGER),
    "wide": {"type": "integer", "maximum": 2**80},
    "big": {"type": "integer", "airbyte_type": "big_integer"},
    "n": json_schema_for(AirbyteType.NUMBER),
    "b": json_schema_for(AirbyteType.BOOLEAN),
    "d": json_schema_for(AirbyteType.DATE),
    "ts": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE),
    "tsn": json_schema_for(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE),
    "tz": json_schema_for(AirbyteType.TIME_WITH_TIMEZONE),
    "bin": json_schema_for(AirbyteType.BINARY),
    "s": json_schema_for(AirbyteType.STRING),
    "o": json_schema_for(AirbyteType.OBJECT),
}


def load(pg: Any, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Write the rows; every stored row by id, each column as PostgreSQL's text of it
    (psycopg cannot return BC dates), ``_meta`` parsed."""
    cat = catalog([stream(NAME, PROPS)], "append", cursor=None, pk=None)
    pg.write(cat, sync_messages(NAME, rows)).raise_on_failure()
    columns = [c.name for c in pg.plan(cat, NAME).columns]
    assert columns == list(PROPS)
    selected = ", ".join(f'"{c}"::text' for c in columns)
    stored = {}
    for row in pg.query(f"SELECT {selected}, _airbyte_meta::text FROM {NAME}"):
        values = dict(zip(columns, row, strict=False))
        values["_meta"] = json.loads(row[-1])
        stored[int(values["id"])] = values
    assert sorted(stored) == sorted(r["id"] for r in rows), "no row is ever dropped"
    return stored


def changes(row: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["field"]: (c["change"], c["reason"]) for c in row["_meta"]["changes"]}


def test_values_that_do_not_fit_are_null_with_the_airbyte_reason(pg: Any) -> None:
    rows = [
        {"id": 1, "i": 2**63, "wide": 2**70, "big": -(2**100), "n": Decimal(f"{DIGITS_100}.{DIGITS_100}")},
        {"id": 2, "i": {"an": "object"}, "b": [1], "d": 20240101, "n": "1.5", "bin": "not base64!"},
        {"id": 3, "ts": "300000-01-01T00:00:00Z", "tsn": "300000-01-01T00:00:00", "tz": "10:00:00+16:00"},
        {"id": 4, "ts": "0044-03-15T12:00:00Z BC", "tsn": "4713-11-24T00:00:00 BC", "d": "0001-01-01 BC"},
        {"id": 8, "ts": "99999-12-31T23:59:59.5Z", "tsn": "294246-12-31T23:59:59", "d": "99999-01-01"},
        {"id": 9, "tsn": "294270-01-01T00:00:00"},  # PostgreSQL holds it, an Arrow batch cannot
        {"id": 5, "ts": "5000-01-01T00:00:00Z BC", "n": Decimal("1e200000")},
        {"id": 6, "s": "a\u0000b\u0000", "o": {"k": Decimal(f"0.{DIGITS_100}"), "nul": "x"}},
        {"id": 7, "i": -(2**63), "n": Decimal("-0.000000000000000000000000000000000000001")},
    ]
    stored = load(pg, rows)

    one = stored[1]
    assert one["i"] is None
    assert changes(one) == {"i": ("NULLED", SIZE)}, "out of bigint range: NULL, field size limitation"
    assert one["wide"] == str(2**70), "integers that may be wider than 64 bits get numeric: every digit"
    assert one["big"] == str(-(2**100))
    assert one["n"] == f"{DIGITS_100}.{DIGITS_100}", "numeric keeps 100 + 100 digits exactly"

    two = stored[2]
    assert [two[f] for f in ("i", "b", "d", "n", "bin")] == [None] * 5
    assert changes(two) == dict.fromkeys(("i", "b", "d", "n", "bin"), ("NULLED", TYPECAST))

    three = stored[3]
    assert [three[f] for f in ("ts", "tsn", "tz")] == [None] * 3, "year 300000, offset +16:00: PG cannot"
    assert changes(three) == dict.fromkeys(("ts", "tsn", "tz"), ("NULLED", SIZE))

    four = stored[4]
    assert changes(four) == {}, "BC values PostgreSQL holds are stored"
    assert (four["ts"], four["tsn"], four["d"]) == (
        "0044-03-15 12:00:00+00 BC",
        "4713-11-24 00:00:00 BC",
        "0001-01-01 BC",
    )
    eight = stored[8]
    assert changes(eight) == {}, "years past 9999 that PostgreSQL holds are stored"
    assert (eight["ts"], eight["tsn"], eight["d"]) == (
        "99999-12-31 23:59:59.5+00",
        "294246-12-31 23:59:59",
        "99999-01-01",
    )

    five = stored[5]
    assert five["ts"] is None
    assert five["n"] is None
    assert changes(five) == {"ts": ("NULLED", SIZE), "n": ("NULLED", SIZE)}

    six = stored[6]
    assert six["s"] == "ab", "NUL removed"
    assert changes(six) == {"s": ("TRUNCATED", SERIALIZATION)}
    assert json.loads(six["o"], parse_float=Decimal) == {"k": Decimal(f"0.{DIGITS_100}"), "nul": "x"}
    (obj,) = pg.query("SELECT (o->>'k')::text FROM vals WHERE id = 6")
    assert obj[0] == f"0.{DIGITS_100}", "numbers inside JSON keep every digit"

    seven = stored[7]
    assert seven["i"] == str(-(2**63))
    assert seven["n"] == "-0.000000000000000000000000000000000000001"
    assert changes(seven) == {}


def test_one_bad_value_in_a_big_batch_costs_one_null(pg: Any) -> None:
    rows = [{"id": i, "i": i, "ts": f"2024-01-01T00:00:{i % 60:02d}Z"} for i in range(1, 3001)]
    rows[1234] = {"id": 1235, "i": "x", "ts": "300000-01-01T00:00:00Z"}
    stored = load(pg, rows)
    assert len(stored) == 3000
    assert stored[1235]["i"] is None
    assert changes(stored[1235]) == {"i": ("NULLED", TYPECAST), "ts": ("NULLED", SIZE)}
    assert sum(1 for r in stored.values() if r["_meta"]["changes"]) == 1
    assert stored[3000]["ts"] == "2024-01-01 00:00:00+00"
    assert stored[1236]["ts"] == "2024-01-01 00:00:36+00"


def test_a_5000_digit_numeric_read_by_source_postgres_is_stored_exactly(pg: Any) -> None:
    """End to end (issue 10 item 2): source-postgres writes a numeric of 5,000 digits exactly;
    destination-postgres used to fail on it (Python's 4,300-digit limit) and lose the batch."""
    from dbkit.testing import ConnectorRunner, configured_catalog

    huge = "9" * 4999 + "7"
    pg.execute(
        "CREATE SCHEMA src",
        "CREATE TABLE src.wide (id integer PRIMARY KEY, n numeric, w numeric)",
        f"INSERT INTO src.wide VALUES (1, {huge}, -{huge}.5), (2, 1.50, NULL)",
    )
    source = ConnectorRunner("source-postgres", workdir=pg.tmp_path)
    config = pg.config(schemas=["src"])
    found = source.discover(config).raise_on_failure().stream("wide", "src")
    read = source.read(config, configured_catalog([found], destination_sync_mode="append")).raise_on_failure()
    assert [Decimal(str(r["n"])) for r in read.records("wide")] == [Decimal(huge), Decimal("1.50")]
    found["namespace"] = "landed"  # the destination writes next to the source table, not over it
    for message in read.messages:
        if message["type"] == "RECORD":
            message["record"]["namespace"] = "landed"
        elif message["type"] == "STATE":
            message["state"]["stream"]["stream_descriptor"]["namespace"] = "landed"
        elif message["type"] == "TRACE" and message["trace"]["type"] == "STREAM_STATUS":
            message["trace"]["stream_status"]["stream_descriptor"]["namespace"] = "landed"
    cat = configured_catalog([found], destination_sync_mode="append")
    pg.write(cat, [m for m in read.messages if m["type"] != "LOG"]).raise_on_failure()
    stored = pg.query("SELECT id, n::text, w::text, _airbyte_meta::text FROM landed.wide ORDER BY id")
    assert stored[0][:3] == (1, huge, f"-{huge}.5")
    assert (stored[1][0], Decimal(stored[1][1]), stored[1][2]) == (2, Decimal("1.50"), None)
    assert all(json.loads(meta)["changes"] == [] for *_, meta in stored)


@pytest.mark.parametrize("binary", [True, False])
def test_number_tokens_with_exponents_store_what_numeric_input_reads(
    pg: Any, binary: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exponent forms (a float's text, ``1E+20``, ``1.5E-7``) keep the value and the scale
    PostgreSQL's own input gives the token, in binary and in CSV, with no change recorded; one
    past numeric's range is NULLed as before."""
    if not binary:
        monkeypatch.setenv("DBKIT_COPY_FORMAT", "csv")
    tokens = [
        "1E+20",
        "1.5E-7",
        "-2.50E+3",
        "1.000E-999",
        "9.99E+999",
        "5E-1000",
        "0E-5",
        "-0E+3",
        "1E+131072",
    ]
    rows = [{"id": i, "n": Decimal(t)} for i, t in enumerate(tokens)]
    stored = load(pg, rows)
    for i, token in enumerate(tokens[:-1]):
        (expected,) = pg.query(f"SELECT '{token}'::numeric::text")[0]
        assert stored[i]["n"] == expected, token
        assert stored[i]["_meta"]["changes"] == [], token
    assert stored[len(tokens) - 1]["n"] is None
    assert changes(stored[len(tokens) - 1]) == {"n": ("NULLED", SIZE)}
