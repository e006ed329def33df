"""Binlog value decoding without a server: MySQL's binary DECIMAL (the per-column decoder against
the plain reference, on random values of many layouts) and doubles in MariaDB's notation (the
forms a SELECT gave on MariaDB 10.11)."""

from __future__ import annotations

import random

import pytest

from source_mysql.cdc.events import Cursor
from source_mysql.cdc.values import _DIG2BYTES, decimal_decoder, decimal_text, double_text


def encode(negative: bool, whole: str, fraction: str, precision: int, scale: int) -> bytes:
    """A decimal's digits in MySQL's binary form."""
    i0, i0x = divmod(precision - scale, 9)
    f0, f0x = divmod(scale, 9)
    whole = whole.rjust(precision - scale, "0")
    fraction = fraction.ljust(scale, "0")
    out = b""
    if i0x:
        out += int(whole[:i0x]).to_bytes(_DIG2BYTES[i0x], "big")
    for k in range(i0):
        out += int(whole[i0x + 9 * k : i0x + 9 * k + 9]).to_bytes(4, "big")
    for k in range(f0):
        out += int(fraction[9 * k : 9 * k + 9]).to_bytes(4, "big")
    if f0x:
        out += int(fraction[9 * f0 :]).to_bytes(_DIG2BYTES[f0x], "big")
    data = bytearray(out)
    data[0] ^= 0x80
    return bytes(b ^ 0xFF for b in data) if negative else bytes(data)


@pytest.mark.parametrize(
    "layout", [(18, 6), (65, 30), (65, 0), (10, 2), (5, 5), (9, 0), (38, 9), (1, 0), (30, 30)]
)
def test_decimal_decoder_equals_the_reference(layout: tuple[int, int]) -> None:
    precision, scale = layout
    decode = decimal_decoder(precision, scale)
    rng = random.Random(precision * 100 + scale)  # noqa: S311 - reproducible test values
    for _ in range(2000):
        whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, precision - scale)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, scale)))
        negative = rng.random() < 0.5
        raw = encode(negative, whole, fraction, precision, scale)
        want, size = decimal_text(raw, precision, scale)
        assert size == len(raw)
        assert decode(Cursor(raw)) == want
        digits = (whole.lstrip("0") or "0") + ("." + fraction.ljust(scale, "0") if scale else "")
        sign = "-" if negative and (whole + fraction).strip("0") else ""
        assert want == sign + digits


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.1, "1.1"), (1e300, "1e300"), (1e-300, "1e-300"), (1e15, "1e15"), (1e16, "1e16"),
        (999999999999999.0, "999999999999999"), (1234567890123456.8, "1234567890123456.8"),
        (1.2345678901234568e16, "1.2345678901234568e16"), (0.000000000000001, "0.000000000000001"),
        (1e-16, "1e-16"), (9.999999747378752e-06, "0.000009999999747378752"), (100.0, "100"),
        (-0.0, "0"), (-123.5, "-123.5"), (1.0000000150474662e30, "1.0000000150474662e30"),
        (5e-324, "5e-324"), (16777216.0, "16777216"),
    ],
)  # fmt: skip
def test_doubles_read_as_mariadb_writes_them(value: float, text: str) -> None:
    assert double_text(value) == text
