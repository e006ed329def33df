"""Records -> typed Arrow batches (dbkit.destination.batch): every Airbyte type, edge values,
rejected values with their ``_airbyte_meta`` changes, and the vectorized path agreeing with the
per-value path; then the same values through destination-sqlite into a real table."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkit.db.temporal import DAY_MICROS, days_from_civil
from dbkit.db.types import AirbyteType as T
from dbkit.destination.batch import (
    SIZE,
    TYPECAST,
    BatchBuilder,
    BatchColumn,
    ColumnCaster,
    ColumnResult,
    Limits,
)
from dbkit.destination.input import parse_message
from dbkit.destination.records import DECODE_ERRORS, RawRecord, as_raw_record, decode_envelope
from dbkit.protocol.jsonio import loads_exact

PG_LIMITS = Limits()  # PostgreSQL-like: years -4712..294276, exact numerics
SQLITE_LIMITS = Limits(min_year=-999_999, max_year=999_999, float_json_numbers=True)

D60 = "123456789012345678901234567890.123456789012345678901234567890"


def micros(year: int, month: int, day: int, h: int = 0, m: int = 0, s: int = 0, us: int = 0) -> int:
    return days_from_civil(year, month, day) * DAY_MICROS + ((h * 60 + m) * 60 + s) * 1_000_000 + us


class Bad:
    """An expected rejection: the value stored (None unless TRUNCATED) and the change."""

    def __init__(self, reason: str = TYPECAST, change: str = "NULLED", stored: Any = None) -> None:
        self.reason, self.change, self.stored = reason, change, stored

    def __repr__(self) -> str:
        return f"Bad({self.reason}, {self.change}, {self.stored!r})"


def plain(array: pa.Array) -> list[Any]:
    """Arrow values as comparable Python values (temporal ones as day / microsecond numbers)."""
    if pa.types.is_date32(array.type):
        return array.cast(pa.int32()).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_timestamp(array.type) or pa.types.is_time64(array.type):
        return array.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    return array.to_pylist()  # type: ignore[no-any-return]


CASES: list[tuple[T, Any, Any]] = [
    # strings: other JSON values are kept as their JSON text
    (T.STRING, "abc", "abc"),
    (T.STRING, "", ""),
    (T.STRING, "nul\x00byte", "nul\x00byte"),
    (T.STRING, 123, "123"),
    (T.STRING, True, "true"),
    (T.STRING, Decimal("1.10"), "1.10"),
    (T.STRING, {"a": [1, None]}, '{"a":[1,null]}'),
    # booleans: only true/false
    (T.BOOLEAN, True, True),
    (T.BOOLEAN, False, False),
    (T.BOOLEAN, 0, Bad()),
    (T.BOOLEAN, 1, Bad()),
    (T.BOOLEAN, "true", Bad()),
    # integers: int64, integral numbers
    (T.INTEGER, 0, 0),
    (T.INTEGER, 2**63 - 1, 2**63 - 1),
    (T.INTEGER, -(2**63), -(2**63)),
    (T.INTEGER, 2**63, Bad(SIZE)),
    (T.INTEGER, -(2**63) - 1, Bad(SIZE)),
    (T.INTEGER, 3.0, 3),
    (T.INTEGER, 1e20, Bad(SIZE)),
    (T.INTEGER, Decimal("5.000"), 5),
    (T.INTEGER, 3.5, Bad()),
    (T.INTEGER, Decimal(D60), Bad()),
    (T.INTEGER, "5", Bad()),
    (T.INTEGER, True, Bad()),
    # numbers: exact decimal text
    (T.NUMBER, 1, "1"),
    (T.NUMBER, 1.5, "1.5"),
    (T.NUMBER, -0.25, "-0.25"),
    (T.NUMBER, 123.0, "123"),
    (T.NUMBER, 2**63, "9223372036854775808"),
    (T.NUMBER, 2**100, str(2**100)),
    (T.NUMBER, Decimal(D60), D60),
    (T.NUMBER, Decimal("-" + D60), "-" + D60),
    (T.NUMBER, Decimal("1E-40"), "1E-40"),
    (T.NUMBER, "1.5", Bad()),
    (T.NUMBER, True, Bad()),
    (T.NUMBER, [1], Bad()),
    # dates, BC and past 9999
    (T.DATE, "2024-02-29", days_from_civil(2024, 2, 29)),
    (T.DATE, "1970-01-01", 0),
    (T.DATE, "0001-01-01", days_from_civil(1, 1, 1)),
    (T.DATE, "0044-03-15 BC", days_from_civil(-43, 3, 15)),
    (T.DATE, "0001-12-31 BC", days_from_civil(0, 12, 31)),
    (T.DATE, "10000-01-01", days_from_civil(10000, 1, 1)),
    (T.DATE, "+12345-06-07", days_from_civil(12345, 6, 7)),
    (T.DATE, "2024-02-30", Bad()),
    (T.DATE, "2023-02-29", Bad()),
    (T.DATE, "2024-13-01", Bad()),
    (T.DATE, "0000-01-01 BC", Bad()),
    (T.DATE, "2024-01-01T00:00:00", Bad()),
    (T.DATE, 20240101, Bad()),
    (T.DATE, "300000-01-01", Bad(SIZE)),  # past PostgreSQL's range
    # timestamps with time zone: normalized to UTC
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00:00Z", micros(2024, 1, 1)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00:00.123456Z", micros(2024, 1, 1, us=123456)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T05:30:00+05:30", micros(2024, 1, 1)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2023-12-31T19:00:00-0500", micros(2024, 1, 1)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01 00:00:00", micros(2024, 1, 1)),  # naive = UTC
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01t00:00:00z", micros(2024, 1, 1)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00:00.1234567Z", micros(2024, 1, 1, us=123456)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00:00.123456789+00:00", micros(2024, 1, 1, us=123456)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2016-12-31T23:59:60Z", micros(2016, 12, 31, 23, 59, 59)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T24:00:00Z", micros(2024, 1, 2)),
    (T.TIMESTAMP_WITH_TIMEZONE, "0044-03-15T12:00:00Z BC", micros(-43, 3, 15, 12)),
    (T.TIMESTAMP_WITH_TIMEZONE, "10000-01-01T00:00:00Z", micros(10000, 1, 1)),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-02-30T00:00:00Z", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T24:00:01Z", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:61:00Z", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00:00+24:00", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "2024-01-01T00:00Z", Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, 1704067200, Bad()),
    (T.TIMESTAMP_WITH_TIMEZONE, "yesterday", Bad()),
    # timestamps without time zone: an offset is dropped (local time kept)
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01T10:00:00", micros(2024, 1, 1, 10)),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01 10:00:00.5", micros(2024, 1, 1, 10, us=500000)),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01T10:00:00+05:00", micros(2024, 1, 1, 10)),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01T10:00:00Z", micros(2024, 1, 1, 10)),
    (
        T.TIMESTAMP_WITHOUT_TIMEZONE,
        "3004-10-19T10:23:54.123456 BC",
        micros(-3003, 10, 19, 10, 23, 54, 123456),
    ),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01T00", Bad()),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2024-01-01", Bad()),
    (T.TIMESTAMP_WITHOUT_TIMEZONE, "2023-02-29T00:00:00", Bad()),
    # times
    (T.TIME_WITHOUT_TIMEZONE, "01:23:45.123456", ((1 * 60 + 23) * 60 + 45) * 1_000_000 + 123456),
    (T.TIME_WITHOUT_TIMEZONE, "00:00:00", 0),
    (T.TIME_WITHOUT_TIMEZONE, "24:00:00", DAY_MICROS - 1),
    (T.TIME_WITHOUT_TIMEZONE, "23:59:60", DAY_MICROS - 1_000_000),
    (T.TIME_WITHOUT_TIMEZONE, "12:00:00.9999999", 12 * 3600 * 1_000_000 + 999999),
    (T.TIME_WITHOUT_TIMEZONE, "25:00:00", Bad()),
    (T.TIME_WITHOUT_TIMEZONE, "12:00", Bad()),
    (T.TIME_WITHOUT_TIMEZONE, "12:00:00+05:00", Bad()),
    (T.TIME_WITH_TIMEZONE, "01:23:45.123456+05:00", "01:23:45.123456+05:00"),
    (T.TIME_WITH_TIMEZONE, "13:00:04Z", "13:00:04.000000+00:00"),
    (T.TIME_WITH_TIMEZONE, "13:00:03.1-08:00", "13:00:03.100000-08:00"),
    (T.TIME_WITH_TIMEZONE, "13:00:03-0800", "13:00:03.000000-08:00"),
    (T.TIME_WITH_TIMEZONE, "13:00:03", "13:00:03.000000+00:00"),
    (T.TIME_WITH_TIMEZONE, "23:59:60Z", "23:59:59.000000+00:00"),
    (T.TIME_WITH_TIMEZONE, "24:00:00+01:00", "23:59:59.999999+01:00"),
    (T.TIME_WITH_TIMEZONE, "10:00:00+05:30:15", "10:00:00.000000+05:30:15"),
    (T.TIME_WITH_TIMEZONE, "10:00:00.1234567+01:00", "10:00:00.123456+01:00"),
    (T.TIME_WITH_TIMEZONE, "10:00:00+25:00", Bad()),
    (T.TIME_WITH_TIMEZONE, "noon", Bad()),
    # binary: strict base64
    (T.BINARY, "aGVsbG8=", b"hello"),
    (T.BINARY, "", b""),
    (T.BINARY, base64.b64encode(bytes(range(256))).decode(), bytes(range(256))),
    (T.BINARY, "aGVsbG8", Bad()),
    (T.BINARY, "a GVsbG8=", Bad()),
    (T.BINARY, "héllo", Bad()),
    (T.BINARY, 12, Bad()),
    # JSON values: exact JSON text
    (T.OBJECT, {"a": Decimal("1.10"), "b": [1, None], "c": "é"}, '{"a":1.10,"b":[1,null],"c":"é"}'),
    (T.OBJECT, {"big": 2**70}, '{"big":' + str(2**70) + "}"),
    (T.OBJECT, "text", '"text"'),
    (T.ARRAY, [1, "x", True], '[1,"x",true]'),
    (T.UNKNOWN, 5, "5"),
    (T.UNKNOWN, False, "false"),
]


def _id(case: tuple[T, Any, Any]) -> str:
    return f"{case[0].value}-{case[1]!r}"[:60]


@pytest.mark.parametrize(("airbyte_type", "value", "expected"), CASES, ids=[_id(c) for c in CASES])
def test_cast_value(airbyte_type: T, value: Any, expected: Any) -> None:
    caster = ColumnCaster(airbyte_type, PG_LIMITS)
    for result in (caster.cast([value, None]), caster.slow([value, None])):
        if isinstance(expected, Bad):
            assert plain(result.array) == [expected.stored, None]
            assert result.changes == [(0, expected.change, expected.reason)]
        else:
            assert plain(result.array) == [expected, None]
            assert result.changes == []
    # alone or next to a value the vectorized path cannot take, the outcome is the same
    assert plain(caster.cast([value, [0]]).array)[:1] == plain(caster.cast([value]).array)


def test_nul_bytes_where_text_cannot_hold_them() -> None:
    caster = ColumnCaster(T.STRING, Limits(nul_in_text=False))
    result = caster.cast(["ok", "a\x00b"])
    assert plain(result.array) == ["ok", "ab"]
    assert result.changes == [(1, "TRUNCATED", "DESTINATION_SERIALIZATION_ERROR")]


def test_numbers_stay_exact_even_where_json_numbers_are_doubles() -> None:
    values = [
        Decimal(D60),
        Decimal("0.1"),
        Decimal("1.2345678901234567"),
        Decimal("12345678901234567890"),
        2**63 - 1,
        2**63,
        Decimal("1E+400"),
        Decimal("1.50"),
    ]
    result = ColumnCaster(T.NUMBER, SQLITE_LIMITS).cast(values)
    assert plain(result.array) == [
        D60,
        "0.1",
        "1.2345678901234567",
        "12345678901234567890",
        str(2**63 - 1),
        str(2**63),
        "1E+400",
        "1.50",
    ]
    assert result.changes == []
    # a bare number in a JSON column of such a database is stored as a double: rounded, recorded
    truncated = ("TRUNCATED", SIZE)
    json_caster = ColumnCaster(T.UNKNOWN, SQLITE_LIMITS)
    result = json_caster.cast([Decimal(D60), {"a": Decimal(D60)}, 7])
    assert plain(result.array) == [repr(float(Decimal(D60))), '{"a":' + D60 + "}", "7"]
    assert result.changes == [(0, *truncated)]


def test_years_past_the_limits_are_rejected_as_size() -> None:
    caster = ColumnCaster(T.TIMESTAMP_WITH_TIMEZONE, Limits(min_year=1, max_year=9999))
    result = caster.cast(["9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z BC"])
    assert plain(result.array) == [micros(9999, 12, 31, 23, 59, 59), None, None]
    assert result.changes == [(1, "NULLED", SIZE), (2, "NULLED", SIZE)]
    # an offset can move a value across the limit
    assert caster.cast(["9999-12-31T23:00:00-02:00"]).changes == [(0, "NULLED", SIZE)]


# ------------------------------------------------------------------ whole batches


def _builder(
    limits: Limits = PG_LIMITS, sync_id: int | None = 42, generation: int | None = 3
) -> BatchBuilder:
    columns = [
        BatchColumn("id", "id", T.INTEGER),
        BatchColumn("when", "when_", T.DATE),
        BatchColumn("amount", "amount", T.NUMBER),
    ]
    return BatchBuilder(columns, limits, sync_id=sync_id, generation_id=generation)


def _raw(records: list[dict[str, Any]]) -> list[RawRecord]:
    """Records as the consumer's door hands them on."""
    return [as_raw_record(r) for r in records]


def test_batch_meta_columns_and_changes() -> None:
    source_change = {"field": "secret", "change": "NULLED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}
    records = [
        {
            "stream": "s",
            "data": {"id": 1, "when": "2024-01-01", "amount": 1.5},
            "emitted_at": 1_700_000_000_001,
        },
        {
            "stream": "s",
            "data": {"id": "x", "when": "2024-02-30", "amount": 2},
            "emitted_at": 1_700_000_000_002,
            "meta": {"changes": [source_change]},
        },
        {"stream": "s", "data": {}, "emitted_at": 1_700_000_000_003.0, "meta": {"changes": [source_change]}},
    ]
    batch = _builder().build(_raw(records))
    table = batch.table
    assert table.column_names == [
        "id",
        "when_",
        "amount",
        "_airbyte_raw_id",
        "_airbyte_extracted_at",
        "_airbyte_meta",
        "_airbyte_generation_id",
    ]
    assert table.column("id").to_pylist() == [1, None, None]
    assert plain(table.column("when_").combine_chunks()) == [days_from_civil(2024, 1, 1), None, None]
    assert table.column("amount").to_pylist() == ["1.5", "2", None]
    raw_ids = table.column("_airbyte_raw_id").to_pylist()
    assert len(set(raw_ids)) == 3
    assert all(str(uuid.UUID(r)) == r for r in raw_ids)
    assert table.column("_airbyte_extracted_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("_airbyte_extracted_at").cast(pa.int64()).to_pylist() == [
        1_700_000_000_001_000,
        1_700_000_000_002_000,
        1_700_000_000_003_000,
    ]
    metas = [json.loads(m) for m in table.column("_airbyte_meta").to_pylist()]
    assert metas == [
        {"changes": [], "sync_id": 42},
        {
            "changes": [
                source_change,  # the source's changes first, then ours
                {"field": "id", "change": "NULLED", "reason": TYPECAST},
                {"field": "when", "change": "NULLED", "reason": TYPECAST},  # the field's own name
            ],
            "sync_id": 42,
        },
        {"changes": [source_change], "sync_id": 42},
    ]
    assert table.column("_airbyte_generation_id").to_pylist() == [3, 3, 3]
    assert batch.changed_rows == 2


@pytest.mark.parametrize("limits", [PG_LIMITS, Limits(nul_in_json=False)], ids=["nul-ok", "no-nul"])
def test_source_changes_that_are_not_changes_are_dropped_and_text_repaired(limits: Limits) -> None:
    """A source's ``meta.changes`` go into ``_airbyte_meta`` first, as they came; an entry that
    is not an object of scalars (the protocol's ``{field, change, reason}``) is dropped, and
    text no database stores is repaired, so that ``_airbyte_meta`` never fails a batch."""
    good = {"field": "a", "change": "NULLED", "reason": "SOURCE_RETRIEVAL_ERROR"}
    deep = b"[" * 20_000 + b"]" * 20_000
    meta = b'{"changes":[%s,5,"x",null,{"field":[1]},{"field":"b\\u0000\\ud800","n":1.5},%s,{"f":%s}]}' % (
        orjson.dumps(good),
        deep,
        deep,
    )
    line = b'{"type":"RECORD","record":{"stream":"s","data":{"id":1},"meta":%s}}' % meta
    batch = _builder(limits).build(_from_lines([line]))
    (text,) = batch.table.column("_airbyte_meta").to_pylist()
    repaired = "b\x00\ufffd" if limits.nul_in_json else "b\ufffd"
    assert json.loads(text)["changes"] == [good, {"field": repaired, "n": 1.5}]


def test_batch_without_sync_or_generation_ids() -> None:
    batch = _builder(sync_id=None, generation=None).build(_raw([{"data": {"id": 1}, "emitted_at": 5}]))
    assert json.loads(batch.table.column("_airbyte_meta")[0].as_py()) == {"changes": [], "sync_id": None}
    assert batch.table.column("_airbyte_generation_id").to_pylist() == [None]


def test_extracted_at_when_emitted_at_is_missing_or_odd() -> None:
    before = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    batch = _builder().build(
        _raw([{"data": {}}, {"data": {}, "emitted_at": "soon"}, {"data": {}, "emitted_at": 7}])
    )
    after = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    stamps = batch.table.column("_airbyte_extracted_at").cast(pa.int64()).to_pylist()
    assert before - 1000 <= stamps[0] <= after
    assert before - 1000 <= stamps[1] <= after
    assert stamps[2] == 7000


# ------------------------------------------------------------------ vectorized == per value

_OFFSET = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
_DATETIMES = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
_BC_DATES = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{min(d, 28):02d} BC",
    st.integers(1, 4000),
    st.integers(1, 12),
    st.integers(1, 31),
)


def _iso(value: dt.datetime, sep: str, z: bool) -> str:
    text = value.isoformat(sep=sep)
    return text.replace("+00:00", "Z") if z else text


VALID: dict[T, st.SearchStrategy[Any]] = {
    T.STRING: st.text(),
    T.BOOLEAN: st.booleans(),
    T.INTEGER: st.integers(-(2**63), 2**63 - 1),
    T.NUMBER: st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(10**12), 10**12).map(float),
    ),
    T.DATE: st.one_of(st.dates().map(dt.date.isoformat), _BC_DATES),
    T.TIMESTAMP_WITH_TIMEZONE: st.builds(
        _iso,
        st.builds(lambda d, tz: d.replace(tzinfo=tz), _DATETIMES, _OFFSET),
        st.sampled_from("T "),
        st.booleans(),
    ),
    T.TIMESTAMP_WITHOUT_TIMEZONE: st.builds(_iso, _DATETIMES, st.sampled_from("T "), st.just(False)),
    T.TIME_WITHOUT_TIMEZONE: st.times().map(dt.time.isoformat),
    T.TIME_WITH_TIMEZONE: st.builds(lambda t, tz: t.replace(tzinfo=tz).isoformat(), st.times(), _OFFSET),
    T.BINARY: st.binary().map(lambda b: base64.b64encode(b).decode()),
    T.OBJECT: st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(), st.none())),
}
BAD: dict[T, Any] = {
    T.STRING: {"forces": "the slow path"},
    T.BOOLEAN: 1,
    T.INTEGER: "1",
    T.NUMBER: "1.5",
    T.DATE: "2024-02-30",
    T.TIMESTAMP_WITH_TIMEZONE: "2024-02-30T00:00:00Z",
    T.TIMESTAMP_WITHOUT_TIMEZONE: "not a timestamp",
    T.TIME_WITHOUT_TIMEZONE: "25:00:00",
    T.TIME_WITH_TIMEZONE: "25:00:00Z",
    T.BINARY: "!!",
    T.OBJECT: {1, 2},  # not JSON at all
}
FAST_TYPES = {T.STRING, T.BOOLEAN, T.INTEGER, T.DATE, T.TIMESTAMP_WITH_TIMEZONE, T.TIMESTAMP_WITHOUT_TIMEZONE}


def _same(a: ColumnResult, b: ColumnResult) -> None:
    assert a.array.type == b.array.type
    assert plain(a.array) == plain(b.array)
    assert a.changes == b.changes


@pytest.mark.parametrize("airbyte_type", list(VALID), ids=[t.value for t in VALID])
@pytest.mark.parametrize("limits", [PG_LIMITS, SQLITE_LIMITS], ids=["exact", "doubles"])
def test_fast_and_slow_paths_agree(airbyte_type: T, limits: Limits) -> None:
    caster = ColumnCaster(airbyte_type, limits)
    bad = BAD[airbyte_type]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.one_of(st.none(), VALID[airbyte_type]), min_size=1, max_size=15))
    def check(values: list[Any]) -> None:
        if airbyte_type is T.OBJECT and bad is BAD[T.OBJECT]:
            values = [loads_exact(json.dumps(v)) for v in values]
        fast = caster.fast(values)
        slow = caster.slow(values)
        assert slow.changes == []
        if fast is not None:
            _same(fast, slow)
        # a bad value forces the per-value path: the other values come out the same
        if airbyte_type is not T.OBJECT:
            mixed = caster.cast([*values, bad])
            assert plain(mixed.array)[:-1] == plain(slow.array)
            if airbyte_type is not T.STRING:
                assert mixed.changes == [(len(values), "NULLED", TYPECAST)]

    check()


@pytest.mark.parametrize("airbyte_type", sorted(FAST_TYPES, key=str), ids=lambda t: t.value)
def test_the_fast_path_takes_canonical_values(airbyte_type: T) -> None:
    samples: list[Any] = {
        T.STRING: ["a", None],
        T.BOOLEAN: [True, None],
        T.INTEGER: [1, -(2**63), None],
        T.DATE: ["2024-01-01", "0001-01-01", None],
        T.TIMESTAMP_WITH_TIMEZONE: [
            "2024-01-01T00:00:00Z",
            "2024-01-01 00:00:00.5+05:30",
            "2024-01-01T00:00:00",
        ],
        T.TIMESTAMP_WITHOUT_TIMEZONE: ["2024-01-01T00:00:00", "2024-01-01 00:00:00.123456"],
    }[airbyte_type]  # type: ignore[assignment]
    caster = ColumnCaster(airbyte_type, PG_LIMITS)
    fast = caster.fast(samples)
    assert fast is not None
    _same(fast, caster.slow(samples))
    number = ColumnCaster(T.NUMBER, PG_LIMITS)
    assert number.fast([1, 2.5, None]) is not None
    assert number.fast([1e10, 0.5]) is None  # above 1e10 ints in a double column are not plain


# ------------------------------------------------------------------ integers past 4,300 digits

HUGE = "9" * 4999 + "7"  # 5,000 digits: Python refuses int(text) past 4,300 (sys.int_info)
PG_NUMERIC = Limits(number_digits=(131072, 16383))


def _from_lines(lines: list[bytes]) -> list[RawRecord]:
    """Records as the consumer's door reads them from input lines (msgspec, or the general path
    for a line msgspec cannot decode)."""
    out = []
    for line in lines:
        try:
            record = decode_envelope(line).record
        except DECODE_ERRORS:
            message = parse_message(line)
            assert message is not None
            record = as_raw_record(message["record"])
        assert record is not None
        out.append(record)
    return out


@pytest.mark.parametrize("limits", [PG_NUMERIC, SQLITE_LIMITS], ids=["numeric", "json-doubles"])
@pytest.mark.parametrize("sign", ["", "-"])
def test_integers_past_the_digit_limit_in_every_column_kind(limits: Limits, sign: str) -> None:
    """Stored exactly where the column holds the number (number, string, JSON), else NULL with a
    change; never an error that loses the batch."""
    columns = [
        BatchColumn("id", "id", T.INTEGER),
        BatchColumn("n", "n", T.NUMBER),
        BatchColumn("i", "i", T.INTEGER),
        BatchColumn("s", "s", T.STRING),
        BatchColumn("u", "u", T.UNKNOWN),
    ]
    builder = BatchBuilder(columns, limits, sync_id=1, generation_id=1)
    huge = sign + HUGE
    past = sign + "1" + "0" * 131072  # past PostgreSQL's numeric: 131,072 digits before the point
    lines = [
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":1,"n":%s}}}' % huge.encode(),
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":2,"i":%s}}}' % huge.encode(),
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":3,"s":%s}}}' % huge.encode(),
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":4,"u":%s,"n":1}}}' % huge.encode(),
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":5,"u":[%s],"n":%s}}}'
        % (huge.encode(), past.encode()),
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":6,"n":2}}}',
    ]
    batch = builder.build(_from_lines(lines))
    table = batch.table
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5, 6]
    size = {"change": "NULLED", "reason": SIZE}
    if limits.number_digits is None:
        assert table.column("n").to_pylist() == [huge, None, None, "1", past, "2"]
    else:
        assert table.column("n").to_pylist() == [huge, None, None, "1", None, "2"]
    assert table.column("i").to_pylist() == [None] * 6
    assert table.column("s").to_pylist() == [None, None, huge, None, None, None]
    metas = {row: json.loads(table.column("_airbyte_meta")[row].as_py())["changes"] for row in range(6)}
    assert metas[1] == [{"field": "i", **size}]
    assert metas[0] == metas[2] == metas[5] == []
    if limits.float_json_numbers:  # a bare number in a JSON column is a double there: none is near
        assert table.column("u").to_pylist() == [None, None, None, None, f"[{huge}]", None]
        assert metas[3] == [{"field": "u", **size}]
    else:
        assert table.column("u").to_pylist() == [None, None, None, huge, f"[{huge}]", None]
        assert metas[3] == []
    assert metas[4] == ([] if limits.number_digits is None else [{"field": "n", **size}])


# ------------------------------------------------------------------ any nesting depth
# msgspec and the standard library's parser stop near 1,000 levels (Python's recursion limit),
# orjson's writer at 255, Arrow's type inference slows to a crawl past a few thousand: values of
# any depth are stored where the column holds them, and NULL with a change where it cannot.

PG_JSONB = Limits(json_depth=10_000, nul_in_json=False, number_digits=(131072, 16383))


def _nested(depth: int) -> str:
    return "[" * (depth - 1) + '{"v":2}' + "]" * (depth - 1)


@pytest.mark.parametrize("depth", [100, 300, 600, 1000, 10_000, 10_001, 100_000])
@pytest.mark.parametrize("limits", [SQLITE_LIMITS, PG_JSONB], ids=["no-limit", "jsonb"])
def test_values_of_any_depth(depth: int, limits: Limits) -> None:
    columns = [
        BatchColumn("id", "id", T.INTEGER),
        BatchColumn("j", "j", T.UNKNOWN),
        BatchColumn("s", "s", T.STRING),
        BatchColumn("i", "i", T.INTEGER),
    ]
    builder = BatchBuilder(columns, limits, sync_id=1, generation_id=1)
    deep = _nested(depth).encode()
    lines = [
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":1,"j":%s}}}'
        % deep,  # typed path if msgspec can
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":2,"j":%s,"i":"x"}}}' % deep,  # general path
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":3,"s":%s}}}' % deep,
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":4,"i":%s}}}' % deep,
        b'{"type":"RECORD","record":{"stream":"s","data":{"id":5,"j":[1]}}}',
    ]
    batch = builder.build(_from_lines(lines))
    table = batch.table
    stored = limits.json_depth is None or depth <= limits.json_depth
    text = _nested(depth)
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("j").to_pylist() == ([text, text] if stored else [None, None]) + [None, None, "[1]"]
    assert table.column("s").to_pylist() == [None, None, text, None, None]  # text: any depth
    assert table.column("i").to_pylist() == [None] * 5
    changes = [json.loads(m)["changes"] for m in table.column("_airbyte_meta").to_pylist()]
    too_deep = [] if stored else [{"field": "j", "change": "NULLED", "reason": SIZE}]
    typecast = {"field": "i", "change": "NULLED", "reason": TYPECAST}
    assert changes == [too_deep, [*too_deep, typecast], [], [typecast], []]


def test_a_json_value_past_the_depth_limit_is_found_among_typed_rows() -> None:
    """The typed path sends JSON text as it came; a value long enough to be too deep is checked."""
    caster = ColumnCaster(T.UNKNOWN, Limits(json_depth=3))
    builder = BatchBuilder(
        [BatchColumn("j", "j", T.UNKNOWN)], Limits(json_depth=3), sync_id=None, generation_id=None
    )
    values = ["[[[1]]]", "[[[[1]]]]", '["[[[[[[[["]', "[1,2,3,4,5,6,7,8,9]"]
    records = _from_lines(
        [b'{"type":"RECORD","record":{"stream":"s","data":{"j":%s}}}' % v.encode() for v in values]
    )
    table = builder.build(records).table
    assert table.column("j").to_pylist() == ["[[[1]]]", None, '["[[[[[[[["]', "[1,2,3,4,5,6,7,8,9]"]
    assert plain(caster.cast([[[[[1]]]], [[1]]]).array) == [None, "[[1]]"]


def test_numbers_inside_json_past_the_range_are_found_and_strings_like_exponents_are_not() -> None:
    """With numbers in JSON held to the number type's range, a value with a number past it is
    NULLed with its change; a string that merely looks like an exponent (``"e12345"``) is kept."""
    limits = Limits(number_digits=(131072, 16383), json_number_digits=True)
    builder = BatchBuilder([BatchColumn("j", "j", T.OBJECT)], limits, sync_id=None, generation_id=None)
    values = ['{"n": 1e200000}', '{"s": "e12345"}', '{"s": "E-12345", "n": 1.5E+12}', '{"n": -2.5e-99999}']
    records = _from_lines(
        [b'{"type":"RECORD","record":{"stream":"s","data":{"j":%s}}}' % v.encode() for v in values]
    )
    batch = builder.build(records)
    assert batch.table.column("j").to_pylist() == [None, values[1], values[2], None]
    assert sorted(batch.row_changes) == [0, 3]


@pytest.mark.parametrize("limits", [Limits(number_digits=(131072, 16383)), Limits(number_digits=(65, 30))])
@pytest.mark.parametrize("decoder", ["c", "python"])
def test_a_number_no_decimal_holds_is_nulled_with_its_change(
    limits: Limits, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``1E11111111111111111111`` is valid JSON past every database's numbers (and Python's
    ``Decimal``, where it used to stop the write): where numbers are checked against a range, NULL
    with DESTINATION_FIELD_SIZE_LIMITATION, in a number column and inside a JSON value, on both
    decoders; the row is kept. (Where the database has no range, ``number_digits`` None, the
    token goes to it as every number token does.)"""
    if decoder == "python":
        monkeypatch.setenv("DBKIT_ROW_DECODER", "python")
    columns = [
        BatchColumn("id", "id", T.INTEGER),
        BatchColumn("n", "n", T.NUMBER),
        BatchColumn("o", "o", T.OBJECT),
    ]
    builder = BatchBuilder(columns, limits, sync_id=None, generation_id=None)
    values = [
        b'{"id": 1, "n": 1E11111111111111111111, "o": {"x": 1}}',
        b'{"id": 2, "n": 1.5, "o": {"x": [-2.5e-11111111111111111111]}}',
        b'{"id": 3, "n": 2, "o": {}}',
    ]
    records = _from_lines([b'{"type":"RECORD","record":{"stream":"s","data":%s}}' % v for v in values])
    batch = builder.build(records)
    assert batch.table.column("id").to_pylist() == [1, 2, 3]
    assert batch.table.column("n").to_pylist() == [None, "1.5", "2"]
    assert batch.table.column("o").to_pylist() == ['{"x": 1}', None, "{}"]
    assert batch.row_changes == {
        0: [{"field": "n", "change": "NULLED", "reason": SIZE}],
        1: [{"field": "o", "change": "NULLED", "reason": SIZE}],
    }


# ------------------------------------------------------------------ through SQLite

ALL_TYPES = {
    "s": "string",
    "b": "boolean",
    "i": "integer",
    "n": "number",
    "d": "date",
    "tstz": "timestamp_with_timezone",
    "ts": "timestamp_without_timezone",
    "t": "time_without_timezone",
    "ttz": "time_with_timezone",
    "bin": "binary",
    "o": "object",
    "a": "array",
    "u": "unknown",
}


def test_every_type_stored_in_sqlite(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("types", ALL_TYPES, sync_id=99, generation_id=4, minimum_generation_id=0))
    good = {
        "s": "héllo 'quoted'",
        "b": True,
        "i": 2**63 - 1,
        "n": 0.1,
        "d": "0044-03-15 BC",
        "tstz": "2024-01-01T05:30:00.1234567+05:30",
        "ts": "10000-01-01T00:00:00",
        "t": "24:00:00",
        "ttz": "13:00:03.1-08:00",
        "bin": "aGVsbG8=",
        "o": {"k": [1, 2]},
        "a": [1, "x"],
        "u": "plain",
    }
    bad = {
        "s": 12,
        "b": 1,
        "i": 2**63,
        "n": "1.5",
        "d": "2024-02-30",
        "tstz": "2024-01-01T24:00:01Z",
        "ts": 5,
        "t": "25:00:00",
        "ttz": "x",
        "bin": "aGVsbG8",
        "o": {"a": 1},
        "a": [],
        "u": None,
    }
    source_change = {"field": "s", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}
    big = (
        '{"type":"RECORD","record":{"stream":"types","data":{"n":'
        + D60
        + ',"i":-1},"emitted_at":1700000000003}}'
    )
    lines = [
        m.record("types", {**good, "id_": 1}, emitted_at=1_700_000_000_001),
        m.record("types", bad, emitted_at=1_700_000_000_002, changes=[source_change]),
        big.encode(),
        m.record("types", {"b": False, "n": 2**63, "i": -(2**63)}, emitted_at=1_700_000_000_004),
        m.status("types"),
    ]
    dest.ok(cat, lines)
    rows = dest.rows("types", order_by="_airbyte_extracted_at")
    assert rows == [
        {
            "s": "héllo 'quoted'",
            "b": 1,
            "i": 2**63 - 1,
            "n": 0.1,
            "d": "0044-03-15 BC",
            "tstz": "2024-01-01T00:00:00.123456Z",
            "ts": "+10000-01-01T00:00:00.000000",
            "t": "23:59:59.999999",
            "ttz": "13:00:03.100000-08:00",
            "bin": b"hello",
            "o": '{"k":[1,2]}',
            "a": '[1,"x"]',
            "u": '"plain"',
        },
        {
            "s": "12",
            "b": None,
            "i": None,
            "n": None,
            "d": None,
            "tstz": None,
            "ts": None,
            "t": None,
            "ttz": None,
            "bin": None,
            "o": '{"a":1}',
            "a": "[]",
            "u": None,
        },
        {**dict.fromkeys(ALL_TYPES), "n": D60, "i": -1},
        {**dict.fromkeys(ALL_TYPES), "b": 0, "n": str(2**63), "i": -(2**63)},
    ]
    raw = dest.raw_rows("types", order_by="_airbyte_extracted_at")
    assert [r["_airbyte_extracted_at"] for r in raw] == [
        m.extracted_at_text(1_700_000_000_000 + k) for k in (1, 2, 3, 4)
    ]
    assert dest.generations("types") == [4, 4, 4, 4]
    assert len({r["_airbyte_raw_id"] for r in raw}) == 4
    typecast = [
        {"field": f, "change": "NULLED", "reason": TYPECAST} for f in ("b", "n", "d", "tstz", "ts", "t")
    ]
    assert (
        [json.loads(r["_airbyte_meta"]) for r in raw]
        == [
            {"changes": [], "sync_id": 99},
            {
                "changes": [
                    source_change,  # the source's first, then ours in column order
                    typecast[0],
                    {"field": "i", "change": "NULLED", "reason": SIZE},
                    *typecast[1:],
                    {"field": "ttz", "change": "NULLED", "reason": TYPECAST},
                    {"field": "bin", "change": "NULLED", "reason": TYPECAST},
                ],
                "sync_id": 99,
            },
            {"changes": [], "sync_id": 99},
            {"changes": [], "sync_id": 99},
        ]
    )
    with dest.connect() as conn:
        kinds = conn.execute(
            "SELECT typeof(i), typeof(n), typeof(b), typeof(bin) FROM types ORDER BY _airbyte_extracted_at"
        ).fetchall()
    assert kinds[0] == ("integer", "real", "integer", "blob")
    assert kinds[2] == ("integer", "text", "null", "null"), "a number wider than a double: exact text"
    assert kinds[3] == ("integer", "text", "integer", "null")


def test_exact_numbers_in_sqlite(dest: Any, msgs: Any) -> None:
    m = msgs
    cat = m.catalog(m.stream("nums", {"n": "number", "k": "integer"}))
    texts = ["0.1", "1.5", "-2", "9007199254740993", "1e-7", "0.30000000000000004", "12345.678901234"]
    lines = [
        b'{"type":"RECORD","record":{"stream":"nums","emitted_at":1,"data":{"k":'
        + f'{i},"n":{t}'.encode()
        + b"}}}"
        for i, t in enumerate(texts)
    ]
    dest.ok(cat, [*lines, m.status("nums")])
    with dest.connect() as conn:
        stored = conn.execute("SELECT n, typeof(n) FROM nums ORDER BY k").fetchall()
    assert [Decimal(repr(v)) if isinstance(v, float) else Decimal(v) for v, _ in stored] == [
        Decimal(t) for t in texts
    ]
    assert [kind for _, kind in stored] == ["real", "real", "integer", "integer", "real", "real", "real"]
    assert all(meta == {"changes": [], "sync_id": None} for meta in dest.meta("nums"))


def test_a_row_read_value_by_value_keeps_its_number_and_json_tokens() -> None:
    """A row msgspec cannot decode with the stream's types (a date it refuses) is read value by
    value, but its number and JSON values are stored as their tokens, as in every other row."""
    columns = [
        BatchColumn("id", "id", T.INTEGER),
        BatchColumn("d", "d", T.DATE),
        BatchColumn("n", "n", T.NUMBER),
        BatchColumn("j", "j", T.OBJECT),
        BatchColumn("u", "u", T.UNKNOWN),
    ]
    builder = BatchBuilder(columns, PG_LIMITS, sync_id=1, generation_id=1)
    tokens = b'"n": 1e5, "j": {"a" : 1, "a": 2, "x": 1e5}, "u": [1, 2.50]'
    records = [
        RawRecord("s", msgspec.Raw(b'{"id": 1, "d": "2024-01-01", ' + tokens + b"}"), None, 1),
        RawRecord("s", msgspec.Raw(b'{"id": 2, "d": "0044-03-15 BC", ' + tokens + b"}"), None, 1),
        RawRecord("s", msgspec.Raw(b'{"id": "3", "d": null, "n": "7", "j": null}'), None, 1),
    ]
    table = builder.build(records).table
    assert table.column("n").to_pylist()[:2] == ["1e5", "1e5"]
    assert table.column("j").to_pylist()[:2] == ['{"a" : 1, "a": 2, "x": 1e5}'] * 2
    assert table.column("u").to_pylist() == ["[1, 2.50]", "[1, 2.50]", None]
    # a string where a number belongs is still judged by the per-value rules
    assert table.column("n").to_pylist()[2] == builder.casters[2].cast(["7"]).array.to_pylist()[0]
