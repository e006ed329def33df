"""The C decoder of records' ``data`` into typed-frame columns (dbkit.destination.rows): each
kind's values, what it refuses (so the batch takes the msgspec path), and, over generated records
of every Airbyte type (wrong kinds, odd strings, edge numbers, unknown and nested fields, any
white space), the same batch (values, ``_airbyte_meta`` changes) as the msgspec path."""

# ruff: noqa: E501
from __future__ import annotations

import json
import struct
import threading
import time
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkit.db.types import AirbyteType as T
from dbkit.destination import _rows, rows
from dbkit.destination.batch import BatchBuilder, BatchColumn, Limits
from dbkit.destination.frames import Frame
from dbkit.destination.records import RawRecord
from dbkit.destination.rows import RowDecoder

pytestmark = pytest.mark.skipif(not rows.available(), reason="dbkit was built without its C decoder")

FIELDS = {
    "id": T.INTEGER,
    "flag": T.BOOLEAN,
    "name": T.STRING,
    "amount": T.NUMBER,
    "day": T.DATE,
    "at": T.TIMESTAMP_WITH_TIMEZONE,
    "local": T.TIMESTAMP_WITHOUT_TIMEZONE,
    "clock": T.TIME_WITHOUT_TIMEZONE,
    "zoned": T.TIME_WITH_TIMEZONE,
    "blob": T.BINARY,
    "doc": T.OBJECT,
    "list": T.ARRAY,
    "any": T.UNKNOWN,
}
DECODER = RowDecoder(list(FIELDS.items()))


def decode(*datas: bytes) -> dict[str, list[Any]] | None:
    arrays = DECODER.arrays([msgspec.Raw(d) for d in datas])
    if arrays is None:
        return None
    for array in arrays:
        array.validate(full=True)
    return {name: array.to_pylist() for name, array in zip(FIELDS, arrays, strict=True)}


def test_each_kind_holds_what_a_typed_frame_holds() -> None:
    out = decode(
        b'{"id": -9223372036854775808, "flag": true, "name": "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000",'
        b' "amount": -1.50e+3, "doc": {"a" : [1, {"b": null}] }, "list": [], "any": "x", "day": "2024-02-29"}',
        b"{}",
        b'{"id":9223372036854775807,"flag":false,"name":"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80","amount":0,'
        b'"doc":null,"list":[1,"]"],"any":12345678901234567890123,"extra":{"deep":[[[{"x":"\\u00e9"}]]]}}',
        b'{"flag":null,"name":null,"any":null,"amount":null}',
    )
    assert out is not None
    assert out["id"] == [-(2**63), None, 2**63 - 1, None]
    assert out["flag"] == [True, None, False, None]
    assert out["name"] == ['a"b\\c/d\b\f\n\r\t\u00e9\U0001f600\x00', None, "\u00e9\u4e2d\U0001f600", None]
    assert out["amount"] == ["-1.50e+3", None, "0", None]
    assert out["doc"] == ['{"a" : [1, {"b": null}] }', None, None, None]
    assert out["list"] == ["[]", None, '[1,"]"]', None]
    assert out["any"] == ['"x"', None, "12345678901234567890123", None]
    assert out["day"] == ["2024-02-29", None, None, None]
    assert out["blob"] == [None] * 4


def test_no_nulls_means_no_validity_bitmap() -> None:
    arrays = RowDecoder([("id", T.INTEGER)]).arrays([b'{"id": 1}', b'{"id": 2}'])
    assert arrays is not None
    assert arrays[0].buffers()[0] is None
    assert arrays[0].to_pylist() == [1, 2]


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": 1.0}',  # msgspec decides what an integral float in an integer column becomes
        b'{"id": 1e2}',
        b'{"id": 9223372036854775808}',
        b'{"id": -9223372036854775809}',
        b'{"id": "1"}',
        b'{"id": true}',
        b'{"flag": 1}',
        b'{"flag": "true"}',
        b'{"name": 5}',
        b'{"name": {"a": 1}}',
        b'{"name": "\\ud800"}',  # lone surrogates
        b'{"name": "\\udc00x"}',
        b'{"name": "\\ud800\\u0041"}',
        b'{"name": "\xff"}',  # invalid UTF-8, an overlong form, an encoded surrogate
        b'{"name": "\xc0\xaf"}',
        b'{"name": "\xed\xa0\x80"}',
        b'{"name": "\xf4\x90\x80\x80"}',
        b'{"name": "tab\there"}',  # a raw control character
        b'{"name": "\\x"}',
        b'{"name": "\\u12"}',
        b'{"na\\u006de": "x"}',  # a key with an escape
        b'{"id": 1, "id": 2}',  # a field given twice
        b'{"id": 01}',
        b'{"id": -}',
        b'{"amount": 1.}',
        b'{"amount": .5}',
        b'{"amount": 1e}',
        b'{"amount": NaN}',
        b'{"doc": {"a": 1]}',
        b'{"doc": [1, 2}',
        b'{"doc": {"a" 1}}',
        b'{"doc": {1: 2}}',
        b'{"doc": [1,]}',
        b'{"doc": tru}',
        b'{"other": [1, {"x": "\\ud800"}]}',  # unknown fields are checked too
        b'{"other": "\xff"}',
        b'{"\xff": 1}',
        b'{"id": 1',
        b'{"id": 1}}',
        b'{"id": 1,}',
        b"[1]",
        b'"text"',
        b"",
        b"   ",
        b'{"id" 1}',
    ],
)
def test_what_it_refuses_goes_the_msgspec_way(data: bytes) -> None:
    assert decode(data) is None
    assert decode(b'{"id": 1}', data) is None  # one such record: the whole batch


def test_depth_past_its_limit_is_refused_and_deep_nesting_within_it_read() -> None:
    assert decode(b'{"doc": ' + b"[" * 10_001 + b"]" * 10_001 + b"}") is None
    out = decode(b'{"doc": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    assert out is not None
    assert out["doc"] == ["[" * 10_000 + "]" * 10_000]


def test_names_the_decoder_cannot_match_turn_it_off() -> None:
    assert not RowDecoder([("a\\b", T.STRING)]).usable
    assert not RowDecoder([('a"b', T.STRING)]).usable
    assert not RowDecoder([("a\nb", T.STRING)]).usable
    assert not RowDecoder([("a", T.STRING), ("a", T.INTEGER)]).usable
    assert RowDecoder([("\u00e9t\u00e9", T.STRING)]).arrays([b'{"\xc3\xa9t\xc3\xa9": "x"}']) is not None


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBKIT_ROW_DECODER", "python")
    assert RowDecoder([("id", T.INTEGER)]).arrays([b'{"id": 1}']) is None


# ---------------------------------------------------------------- against the msgspec path

_TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "2024-02-29",
            "+10000-01-01",
            "0044-03-15 BC",
            "2024-13-01",
            "2024-01-01T10:00:00.000000+00:00",
            "2024-06-01T00:00:00Z",
            "2024-01-01T10:00:00",
            "0001-01-01T00:00:00 BC",
            "10:00:00",
            "23:59:60",
            "24:00:00",
            "10:00:00.1234567",
            "10:00:00+02:00",
            "aGVsbG8=",
            "not base64!",
            "nul\u0000",
            "",
        ]
    ),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        ["0", "-0", "1.50", "-1e+400", "1E5", "1.2e-05", "0.000", "1" * 40, "9" * 1200, "1e99999"]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
_SCALARS = st.one_of(
    st.none().map(lambda _: "null"),
    st.booleans().map(lambda b: "true" if b else "false"),
    _NUMBERS,
    _TEXTS.map(json.dumps),
    _TEXTS.map(lambda t: json.dumps(t, ensure_ascii=False)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(_TEXTS, inner, max_size=3).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)
_SPACE = st.sampled_from(["", " ", "\t", "\n", "\r\n  "])


@st.composite
def _data(draw: st.DrawFn) -> bytes:
    names = [*FIELDS, "extra", "other"]
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    members = [f"{json.dumps(name)}{draw(_SPACE)}:{draw(_SPACE)}{draw(_VALUES)}" for name in chosen]
    text = f"{{{draw(_SPACE)}{(draw(_SPACE) + ',').join(members)}{draw(_SPACE)}}}"
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate unescaped: invalid UTF-8


_VALID_TEXTS = _TEXTS.filter(lambda t: _valid_text(t))
_OF_KIND = {
    T.INTEGER: st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    T.BOOLEAN: st.sampled_from(["true", "false"]),
    T.NUMBER: _NUMBERS,
    T.OBJECT: _VALUES,
    T.ARRAY: _VALUES,
    T.UNKNOWN: _VALUES,
}


@st.composite
def _canonical_data(draw: st.DrawFn) -> bytes:
    """Every value of its column's JSON kind (or null, or absent): what the C decoder takes."""
    members = []
    for name, kind in FIELDS.items():
        if draw(st.integers(0, 5)) == 0:
            continue
        if draw(st.integers(0, 5)) == 0:
            value = "null"
        elif kind in _OF_KIND:
            value = draw(_OF_KIND[kind])
        else:
            value = json.dumps(draw(_VALID_TEXTS), ensure_ascii=draw(st.booleans()))
        members.append(f"{json.dumps(name)}:{draw(_SPACE)}{value}")
    order = draw(st.permutations(members))
    return ("{" + ", ".join(order) + "}").encode()


LIMITS = [
    Limits(),
    Limits(min_year=-999_999, max_year=999_999, float_json_numbers=True),
    Limits(number_digits=(131072, 16383), json_depth=10_000, nul_in_json=False, max_zone_seconds=57599),
    Limits(min_year=1000, max_year=9999, number_digits=(35, 30), nul_in_text=False),
]


def _batch(datas: list[bytes], limits: Limits, monkeypatch: pytest.MonkeyPatch, c: bool) -> Any:
    """The batch of records of ``datas``: with the C decoder (``c``), or without."""
    with monkeypatch.context() as m:
        if not c:
            m.setenv("DBKIT_ROW_DECODER", "python")
        columns = [BatchColumn(name, name, t) for name, t in FIELDS.items()]
        builder = BatchBuilder(columns, limits, sync_id=1, generation_id=2, raw_ids=False)
        assert builder.rows.usable is c
        records = [RawRecord("t", msgspec.Raw(d), emitted_at=1_700_000_000_000) for d in datas]
        return builder.build(records)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datas=st.lists(_data(), min_size=1, max_size=6), limits=st.sampled_from(LIMITS))
def test_the_c_decoder_gives_the_batch_msgspec_gives(
    datas: list[bytes], limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _batch(datas, limits, monkeypatch, c=True)
    slow = _batch(datas, limits, monkeypatch, c=False)
    assert fast.table.schema == slow.table.schema
    for name in slow.table.column_names:
        assert _plain(fast.table.column(name)) == _plain(slow.table.column(name)), name
    assert fast.row_changes == slow.row_changes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datas=st.lists(_canonical_data(), min_size=1, max_size=6), limits=st.sampled_from(LIMITS))
def test_batches_the_c_decoder_takes_are_those_msgspec_gives(
    datas: list[bytes], limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DECODER.arrays(datas) is not None
    test_the_c_decoder_gives_the_batch_msgspec_gives.hypothesis.inner_test(  # type: ignore[attr-defined]
        datas, limits, monkeypatch
    )


@settings(max_examples=200, deadline=None)
@given(datas=st.lists(_data(), min_size=1, max_size=6))
def test_it_decodes_every_batch_whose_values_are_of_their_columns_kinds(datas: list[bytes]) -> None:
    """It refuses only what the module doc lists: a batch of values of the right JSON kinds (and
    integers within int64, strings of valid text, no key twice) is decoded."""
    expected = True
    for data in datas:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            expected = False
            continue
        fields = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
        for name, raw in fields.items():
            value = json.loads(bytes(raw))
            if name not in FIELDS:
                expected &= all(not isinstance(s, str) or _valid_text(s) for s in _strings(value))
                continue
            if value is None:
                continue
            kind = FIELDS[name]
            if kind is T.INTEGER:
                token = bytes(raw).lower()
                ok = type(value) is int and b"." not in token and b"e" not in token
                expected &= ok and -(2**63) <= value < 2**63
            elif kind is T.BOOLEAN:
                expected &= type(value) is bool
            elif kind not in (T.NUMBER, T.OBJECT, T.ARRAY, T.UNKNOWN):
                expected &= type(value) is str and _valid_text(value)
            elif any(isinstance(s, str) and not _valid_text(s) for s in _strings(value)):
                expected = False
    assert (DECODER.arrays([msgspec.Raw(d) for d in datas]) is not None) == expected


def _plain(column: pa.ChunkedArray) -> list[Any]:
    """Comparable values (temporal ones as integers: Python's datetime holds no BC year)."""
    if pa.types.is_temporal(column.type):
        width = pa.int32() if pa.types.is_date32(column.type) else pa.int64()
        return column.cast(width).to_pylist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _strings(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value]


def test_a_large_batch_of_long_strings() -> None:
    text = "x\u00e9" * 50_000
    datas = [json.dumps({"name": text, "id": i}).encode() for i in range(300)]
    arrays = RowDecoder([("name", T.STRING), ("id", T.INTEGER)]).arrays(datas)
    assert arrays is not None
    assert arrays[0].to_pylist() == [text] * 300
    assert arrays[1].to_pylist() == list(range(300))
    assert isinstance(arrays[0], pa.StringArray)


@pytest.mark.parametrize(
    ("values", "single"),
    [
        (["1", "-1.5e+3", '"x"', '{"a": [1, {}]}', "[]", "true", "null", None], True),
        ([None, None], True),
        ([], True),
        ([" 1"], False),
        (["1 "], False),
        (["1,2"], False),
        ([""], False),
        (['"\\ud800"'], False),
        (["{"], False),
        (["01"], False),
        (["[1]]"], False),
        (["[" * 10_001 + "]" * 10_001], False),
    ],
)
def test_single_values_checks_each_token_is_one_json_value(values: list[str | None], single: bool) -> None:
    array = pa.array(values, pa.string())
    assert rows.single_values(array) is single
    padded = pa.array(["[", *values, "]"], pa.string()).slice(1, len(values))  # an offset array
    assert rows.single_values(padded) is single


def test_tokens_checks_offset_and_length_against_the_buffers_without_overflow() -> None:
    """(offset + length + 1) * 4 past Py_ssize_t wrapped to a small number that passed the check,
    and the offsets were then read far outside their buffer."""
    offsets = struct.pack("<3i", 0, 1, 2)
    for offset, length in [(2**62 - 1, 1), (0, 2**62), (2**61, 2**61), (2, 1), (0, 2**63 - 1)]:
        with pytest.raises(ValueError, match="shorter"):
            _rows.tokens(None, offsets, b"12", offset, length)
    with pytest.raises(ValueError, match="shorter"):
        _rows.tokens(b"\x03", struct.pack("<10i", *range(10)), b"1" * 9, 7, 2)  # validity: 1 byte
    assert _rows.tokens(None, offsets, b"12", 0, 2) is True
    assert _rows.tokens(None, offsets, b"12", 2, 0) is True


def test_tokens_reads_offsets_of_any_alignment() -> None:
    """An offsets buffer at an odd address (a memoryview slice) was read as int32 in place (a
    misaligned load: undefined behaviour, found by UBSan)."""
    offsets = memoryview(b"\x00" + struct.pack("<4i", 0, 1, 3, 5))[1:]
    assert _rows.tokens(None, offsets, b"1[]{}", 0, 3) is True
    assert _rows.tokens(bytearray(b"\x03"), offsets, b"1[]x}", 0, 3) is True
    assert _rows.tokens(None, offsets, b"1[]x}", 1, 2) is False


def test_single_values_of_an_empty_array_with_empty_buffers() -> None:
    """Arrow lets an array of no values have an empty offsets buffer (Arrow Java writes one in
    IPC): the check raised ValueError (buffers shorter than the array) where the msgspec check
    finds nothing to refuse."""
    empty = pa.Array.from_buffers(pa.string(), 0, [None, pa.py_buffer(b""), pa.py_buffer(b"")])
    empty.validate(full=True)
    assert rows.single_values(empty) is True
    assert _rows.tokens(None, b"", b"", 0, 0) is True
    batch = pa.record_batch([empty, pa.array([], pa.string())], names=["doc", "_airbyte_meta"])
    assert Frame("s", None, 1, batch, [("doc", "object")], "a frame of no rows").tokens == {0: "doc"}
    with pytest.raises(ValueError, match="negative"):
        _rows.tokens(None, b"", b"", -1, 0)


def test_decode_keeps_its_names_while_another_thread_changes_the_list() -> None:
    """decode() read the names' bytes, borrowed from the list it was given, with the GIL released:
    another thread that replaced a name in that list freed the bytes it was matching keys with
    (a use after free; the rows read after it lost their values)."""
    k, j = b"k" * 50, b"j" * 50
    data = b'{"' + k + b'": 1, "' + j + b'": 2, "other": "' + b"x" * 20_000 + b'"}'
    datas = [data] * 2000
    for _ in range(2):
        names = [bytes(bytearray(k))]
        go, done = threading.Event(), threading.Event()

        def replace(
            names: list[bytes] = names, go: threading.Event = go, done: threading.Event = done
        ) -> None:
            go.wait()
            time.sleep(0.02)  # decode() is reading the records (the GIL released)
            while not done.is_set():
                names[0] = bytes(bytearray(j))

        thread = threading.Thread(target=replace)
        thread.start()
        go.set()
        try:
            out = _rows.decode(datas, names, b"i")
        finally:
            done.set()
            thread.join()
        assert out is not None
        nulls, _, values, _ = out[0]
        assert nulls == 0
        assert set(memoryview(values).cast("q")) == {1}


def test_decode_out_of_memory_at_each_allocation() -> None:
    """When Py_BuildValue failed to make a column's tuple, it had released the buffers given to it
    with "N" and decode() released them again (a double free, ASan with PYTHONMALLOC=malloc)."""
    testcapi = pytest.importorskip("_testcapi")
    datas = [b'{"a": 1, "b": "x", "c": true}', b'{"a": null}'] * 200
    outcomes = set()
    for start in range(40):
        hold = [(i, i, i, i) for i in range(3000)]  # no 4-tuple left to reuse: a tuple is allocated
        testcapi.set_nomemory(start, 0)
        try:
            out = _rows.decode(datas, [b"a", b"b", b"c"], b"isb")
        except MemoryError:
            out = None
        finally:
            testcapi.remove_mem_hooks()
        del hold
        outcomes.add(out is not None)
        if out is not None:
            assert [nulls for nulls, *_ in out] == [200, 200, 200]
    assert outcomes == {False, True}


# ---------------------------------------------------------------------------- raw ids


@given(st.lists(st.binary(min_size=16, max_size=16), max_size=40))
@settings(max_examples=200, deadline=None)
def test_uuid_text_is_the_version_4_uuid_of_each_16_bytes(chunks: list[bytes]) -> None:
    """C and the bytes-operations fallback give ``str(uuid.UUID(bytes=..., version=4))``."""
    import uuid

    from dbkit.destination.batch import _uuid_text

    random = b"".join(chunks)
    expected = "".join(str(uuid.UUID(bytes=c, version=4)) for c in chunks).encode()
    assert _rows.uuid_text(random) == expected
    assert _uuid_text(random, len(chunks)) == expected


def test_uuid_text_edges_and_refusals() -> None:
    assert _rows.uuid_text(b"") == b""
    assert _rows.uuid_text(b"\x00" * 16) == b"00000000-0000-4000-8000-000000000000"
    assert _rows.uuid_text(b"\xff" * 16) == b"ffffffff-ffff-4fff-bfff-ffffffffffff"
    with pytest.raises(ValueError, match="whole number"):
        _rows.uuid_text(b"\x00" * 17)
    with pytest.raises(TypeError):
        _rows.uuid_text("not bytes")  # type: ignore[arg-type]


def test_random_uuids_are_distinct_version_4_uuids(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from dbkit.destination import batch

    for c_module in (True, False):
        if not c_module:
            monkeypatch.setattr(batch, "uuid_text", lambda random: None)
        values = batch.random_uuids(5000).to_pylist()
        assert len(set(values)) == 5000
        assert all(uuid.UUID(v).version == 4 and str(uuid.UUID(v)) == v for v in values)
        assert batch.random_uuids(0).to_pylist() == []
