"""Arrow frames' line parsing (:mod:`dbkit.protocol.arrow`)."""

from __future__ import annotations

from typing import Any

from dbkit.protocol import batch_from_lines


def test_a_row_larger_than_a_parser_block_is_one_row() -> None:
    # Arrow's CSV reader refuses a row that straddles two blocks: the block holds the whole input
    big = b"{" + b'"a":"' + b"x" * (130 << 20) + b'"}'
    batch = batch_from_lines([b"\x1f{}\n", b"\x1f" + big + b"\n", b'{"m":1}\x1f{"b":2}\n'])
    assert batch.num_rows == 3
    assert batch.column(0)[1].as_py() == big
    assert batch.column(1).to_pylist() == [None, None, b'{"m":1}']


def _frame_batch(kind: str, column: Any) -> Any:
    import pyarrow as pa

    from dbkit.protocol import decode_body, encode_frame, parse_header

    batch = pa.RecordBatch.from_arrays(
        [column, pa.array([None] * len(column), pa.binary())], names=["d", "meta"]
    )
    frame = encode_frame("t", None, 1, batch, kind=kind)
    newline = frame.index(b"\n")
    return decode_body(parse_header(frame[:newline]), frame[newline + 1 :])


def test_native_columns_belong_to_native_frames() -> None:
    """A ``native`` frame may carry a date, timestamp, time or binary field natively; a
    ``columns`` frame may not (its reader would take the values for text), and neither may carry
    a native type for another field."""
    import pyarrow as pa
    import pytest

    from dbkit.protocol import COLUMNS, NATIVE, FrameError, check_columns

    days = pa.array([0, None], pa.int32()).cast(pa.date32())
    batch = _frame_batch(NATIVE, days)
    assert check_columns(batch.schema, [("d", "date")], "t", native=True) == [0]
    assert check_columns(
        _frame_batch(NATIVE, pa.array(["1970-01-01", None])).schema, [("d", "date")], "t", True
    ) == [0]
    with pytest.raises(FrameError, match="has type date32"):
        check_columns(batch.schema, [("d", "string")], "t", native=True)
    with pytest.raises(FrameError, match="has type date32"):
        check_columns(batch.schema, [("d", "date")], "t")
    with pytest.raises(FrameError, match="has type date32"):
        _frame_batch(COLUMNS, days)
    with pytest.raises(FrameError, match="not valid"):  # 24:00:00 is no Arrow time: the string
        _frame_batch(NATIVE, pa.array([86_400_000_000], pa.int64()).cast(pa.time64("us")))


def test_canonical_strings_are_the_json_paths_dates_and_timestamps() -> None:
    """Every day of a few ranges (BC, around year 1, 9999/10000, Arrow's last timestamps) and
    microseconds around them: the canonical string is the one dbkit's formatting gives (the JSON
    path's), and the destination's per-value parsing gives the value back."""
    import pyarrow as pa

    from dbkit.db.temporal import DAY_MICROS, format_date, format_time_micros, format_timestamp
    from dbkit.destination.casting import Limits, parse_date, parse_timestamp
    from dbkit.protocol import canonical_strings

    limits = Limits(min_year=-999_999, max_year=9_999_999)
    days = [*range(-2_440_600, -2_440_500), *range(-720_000, -718_000), *range(2_932_000, 2_933_500), 19_782,
            106_751_990, 106_751_991, 2_145_042_905]  # fmt: skip
    texts = canonical_strings(pa.array(days, pa.int32()).cast(pa.date32())).to_pylist()
    assert texts == [format_date(d) for d in days]
    assert [parse_date(t, limits) for t in texts] == days
    micros = [d * DAY_MICROS + offset for d in days[::7] for offset in (0, 1, DAY_MICROS - 1, 45_296_000_007)]
    micros = [m for m in micros if m < 2**63] + [2**63 - 1, -(2**63)]
    for zone, arrow_type in ((False, pa.timestamp("us")), (True, pa.timestamp("us", tz="UTC"))):
        texts = canonical_strings(pa.array(micros, pa.int64()).cast(arrow_type)).to_pylist()
        assert texts == [format_timestamp(m, zone).replace("Z", "+00:00") for m in micros]
        assert [parse_timestamp(t, zone, limits) for t in texts] == micros
    clock = [0, 1, 999_999, 45_296_000_007, DAY_MICROS - 1]
    times = canonical_strings(pa.array(clock, pa.int64()).cast(pa.time64("us"))).to_pylist()
    assert times == [format_time_micros(m) for m in clock]
