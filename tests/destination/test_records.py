"""RECORD lines as the consumer's fast path reads them."""

from __future__ import annotations

from decimal import Decimal

from dbkit.destination.records import NO_META, as_raw_record, decode_envelope, loads_lenient, source_changes


def test_a_record_with_meta_stays_on_the_fast_path() -> None:
    line = (
        b'{"type":"RECORD","record":{"stream":"s","emitted_at":1,"data":{"id":1},'
        b'"meta":{"changes":[{"field":"id","change":"NULLED","reason":"SOURCE_RETRIEVAL_ERROR"}]}}}'
    )
    record = decode_envelope(line).record
    assert record is not None
    assert bytes(record.data) == b'{"id":1}'
    assert source_changes(record.meta) == [
        {"field": "id", "change": "NULLED", "reason": "SOURCE_RETRIEVAL_ERROR"}
    ]


def test_a_record_without_meta_or_with_null_meta_has_no_changes() -> None:
    for meta in (b"", b',"meta":null'):
        line = b'{"type":"RECORD","record":{"stream":"s","data":{"id":1}%s}}' % meta
        record = decode_envelope(line).record
        assert record is not None
        assert record.meta == NO_META
        assert source_changes(record.meta) == []


def test_a_record_the_general_path_read_becomes_a_raw_record_with_the_same_values() -> None:
    data = {"n": Decimal("1.50"), "big": 2**80, "s": "\ud800 é\x00", "list": [1.5, None, True], "o": {}}
    meta = {"changes": [{"field": "x", "change": "NULLED", "reason": "SOURCE_RETRIEVAL_ERROR"}]}
    record = as_raw_record({"stream": "s", "namespace": "ns", "data": data, "emitted_at": 7, "meta": meta})
    assert (record.stream, record.namespace, record.emitted_at) == ("s", "ns", 7)
    assert loads_lenient(record.data) == {**data, "list": [Decimal("1.5"), None, True]}
    assert source_changes(record.meta) == meta["changes"]
    assert as_raw_record({"stream": "s", "data": {}}).meta == NO_META


def test_integers_past_the_digit_limit_are_read_exactly_by_the_lenient_reader() -> None:
    huge = "9" * 4999 + "7"
    value = loads_lenient(f'{{"n": {huge}, "s": "\\ud800", "m": [-{huge}]}}'.encode())
    assert value["n"] == Decimal(huge)
    assert str(value["n"]) == huge
    assert str(value["m"][0]) == "-" + huge
    assert value["s"] == "\ud800"
    record = as_raw_record({"stream": "s", "data": value})
    assert loads_lenient(record.data) == value
