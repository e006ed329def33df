"""source-sqlite passes the source acceptance suite (one line, plus its type table)."""

from __future__ import annotations

from decimal import Decimal

from dbkit.testing.suites import SourceSuite, SqliteSourceHarness, TypeCase

STR = {"type": ["string", "null"]}
INT = {"type": ["integer", "null"]}
NUM = {"type": ["number", "null"]}


class SqliteTypes(SqliteSourceHarness):
    type_cases = (
        TypeCase("INTEGER", "9223372036854775807", 9223372036854775807, INT, id="integer-max"),
        TypeCase("INTEGER", "-9223372036854775808", -9223372036854775808, INT, id="integer-min"),
        TypeCase("INTEGER", "'abc'", None, INT, change="SOURCE_SERIALIZATION_ERROR", id="integer-text"),
        TypeCase("BIGINT", "42", 42, INT),
        TypeCase("REAL", "1.5", 1.5, NUM),
        TypeCase("REAL", "9e999", None, NUM, change="SOURCE_SERIALIZATION_ERROR", id="real-infinity"),
        # SQLite's NUMERIC affinity itself keeps only 15 digits of a wide number (a REAL)...
        TypeCase(
            "NUMERIC", "'12345678901234567890.123456789'", 1.2345678901234567e19, NUM, id="numeric-affinity"
        ),
        # ...a column without affinity (destination-sqlite's number type) keeps every digit
        TypeCase(
            "DECIMAL_BLOB",
            "'12345678901234567890.123456789'",
            Decimal("12345678901234567890.123456789"),
            NUM,
            id="decimal-exact",
        ),
        TypeCase("DECIMAL_BLOB", "1.5", 1.5, NUM, id="decimal-real"),
        TypeCase("DECIMAL(10,2)", "'1.10'", 1.1, NUM),
        TypeCase("TEXT", "'héllo ✓ 日本'", "héllo ✓ 日本", STR, id="text-unicode"),
        TypeCase("TEXT", "''", "", STR, id="text-empty"),
        TypeCase("VARCHAR(20)", "NULL", None, STR, id="varchar-null"),
        TypeCase("BLOB", "x'00ff10'", "AP8Q", {"type": ["string", "null"], "contentEncoding": "base64"}),
        TypeCase("BOOLEAN", "1", True, {"type": ["boolean", "null"]}),
        TypeCase("BOOLEAN", "2", None, {"type": ["boolean", "null"]}, change="SOURCE_SERIALIZATION_ERROR"),
        TypeCase("DATE", "'2024-02-29'", "2024-02-29", {"type": ["string", "null"], "format": "date"}),
        TypeCase("DATE", "'2023-02-29'", None, change="SOURCE_SERIALIZATION_ERROR", id="date-impossible"),
        TypeCase("DATE", "'0044-03-15 BC'", "0044-03-15 BC", id="date-bc"),
        TypeCase("DATETIME", "'2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456", id="datetime"),
        TypeCase("TIMESTAMPTZ", "'2024-01-02T03:04:05Z'", "2024-01-02T03:04:05+00:00", id="timestamptz"),
        TypeCase("TIME", "'23:59:59.5'", "23:59:59.5", id="time"),
        TypeCase(
            "JSON",
            "'{\"a\": [1, 2.50, 123456789012345678901234567890]}'",
            {"a": [1, 2.5, 123456789012345678901234567890]},
            {},
            id="json-exact",
        ),
        TypeCase("JSON", "'not json'", None, change="SOURCE_SERIALIZATION_ERROR", id="json-invalid"),
        TypeCase("", "x'01'", "AQ==", {}, id="no-declared-type-blob"),
    )


class TestSqliteSource(SourceSuite):
    harness = SqliteTypes
