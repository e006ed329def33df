"""RECORD lines as the consumer's fast path reads them."""

from __future__ import annotations

from dbkit.destination.records import NO_META, decode_envelope, source_changes


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
