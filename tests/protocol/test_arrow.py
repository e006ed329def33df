"""Arrow frames' line parsing (:mod:`dbkit.protocol.arrow`)."""

from __future__ import annotations

from dbkit.protocol import batch_from_lines


def test_a_row_larger_than_a_parser_block_is_one_row() -> None:
    # Arrow's CSV reader refuses a row that straddles two blocks: the block holds the whole input
    big = b"{" + b'"a":"' + b"x" * (130 << 20) + b'"}'
    batch = batch_from_lines([b"\x1f{}\n", b"\x1f" + big + b"\n", b'{"m":1}\x1f{"b":2}\n'])
    assert batch.num_rows == 3
    assert batch.column(0)[1].as_py() == big
    assert batch.column(1).to_pylist() == [None, None, b'{"m":1}']
