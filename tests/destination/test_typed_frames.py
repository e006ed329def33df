"""Typed frames (``columns`` kind, :mod:`dbkit.protocol.arrow`) at a destination: the same table,
values, ``_airbyte_meta`` changes and STATE echoes as the RECORD lines they stand for (edge
values of every Airbyte type, frames cut by STATEs and batch sizes), and a frame whose columns do
not match the catalog's stream is an error naming it, with nothing after it loaded."""

# ruff: noqa: E501
from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from dbkit.db.types import AirbyteType
from dbkit.destination.frames import Frame, FrameRun, materialize, rebase, segments
from dbkit.entrypoint import launch
from dbkit.protocol import COLUMNS, encode_frame
from destination_sqlite import SqliteDestination

from .conftest import Harness, catalog, encode, record, state, status, stream

TYPES = {
    "id": AirbyteType.INTEGER,
    "flag": AirbyteType.BOOLEAN,
    "name": AirbyteType.STRING,
    "amount": AirbyteType.NUMBER,
    "day": AirbyteType.DATE,
    "at": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
    "local": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
    "clock": AirbyteType.TIME_WITHOUT_TIMEZONE,
    "zoned": AirbyteType.TIME_WITH_TIMEZONE,
    "blob": AirbyteType.BINARY,
    "doc": AirbyteType.OBJECT,
    "list": AirbyteType.ARRAY,
    "any": AirbyteType.UNKNOWN,
}
TOKENS = {"amount", "doc", "list", "any"}
# the JSON text of each field's values (None: absent), row by row: usual values, nulls, and the
# edges the per-value rules decide (BC and far dates, odd timestamps, big and odd numbers, NUL)
# fmt: off
ROWS: list[dict[str, Any]] = [
    {"id": 1, "flag": True, "name": "plain", "amount": "1.50", "day": "2024-02-29", "at": "2024-01-01T10:00:00.000000+00:00",
     "local": "2024-01-01T10:00:00.000000", "clock": "10:00:00.000000", "zoned": "10:00:00.000000+02:00",
     "blob": "aGVsbG8=", "doc": '{"a": [1, 2.50]}', "list": "[1,null]", "any": '"text"'},
    {"id": 2, "flag": None, "name": None, "amount": None, "day": None, "at": None, "local": None, "clock": None,
     "zoned": None, "blob": None, "doc": None, "list": None, "any": None},
    {"id": 3, "flag": False, "name": "q\"uo\\te\ttab\nnl \u00e9\u4e2d\U0001f600", "amount": "-1e+400",
     "day": "0044-03-15 BC", "at": "0044-03-15T12:00:00.000000+00:00 BC", "local": "+10000-01-01T00:00:00.000000",
     "clock": "23:59:59.999999", "zoned": "00:00:00.000000-05:30", "blob": "", "doc": "null", "list": "[]",
     "any": "12345678901234567890123"},
    {"id": 4, "flag": True, "name": "nul\u0000inside", "amount": "123456789012345678901234567890.123456789",
     "day": "+10000-01-01", "at": "2024-06-01T00:00:00Z", "local": "not a timestamp", "clock": "25:00:00",
     "zoned": "12:00:00", "blob": "not base64!", "doc": '{"nul": "\\u0000"}', "list": '[{"x": "y"}]', "any": "true"},
    {"id": -(2**63), "flag": True, "name": "", "amount": '"12"', "day": "2024-13-01", "at": "garbage", "local": None,
     "clock": None, "zoned": None, "blob": None, "doc": "[1]", "list": '[1e999]', "any": "{}"},
]
# fmt: on
CHANGES = [
    None,
    None,
    b'{"changes":[{"field":"amount","change":"NULLED","reason":"SOURCE_SERIALIZATION_ERROR"}]}',
]


def _catalog(mode: str = "append", **fields: AirbyteType) -> dict[str, Any]:
    return catalog(stream("t", fields or TYPES, mode))


def _value(field: str, text: Any) -> Any:
    if text is None or field not in TOKENS:
        return text
    return orjson.Fragment(text)


def _lines(rows: list[dict[str, Any]], first: int = 0) -> list[Any]:
    out = []
    for i, row in enumerate(rows):
        changes = CHANGES[first + i] if first + i < len(CHANGES) else None
        data = {k: _value(k, v) for k, v in row.items()}
        line = record("t", {}, changes=json.loads(changes)["changes"] if changes else None)
        line["record"]["data"] = data
        out.append(orjson.dumps(line))
    return out


def _frame(rows: list[dict[str, Any]], first: int = 0, **override: pa.Array) -> bytes:
    arrays, names = [], []
    for name, airbyte_type in TYPES.items():
        values = [row[name] for row in rows]
        kind = {AirbyteType.INTEGER: pa.int64(), AirbyteType.BOOLEAN: pa.bool_()}.get(
            airbyte_type, pa.string()
        )
        arrays.append(override.get(name, pa.array(values, kind)))
        names.append(name)
    metas = [CHANGES[first + i] if first + i < len(CHANGES) else None for i in range(len(rows))]
    arrays.append(pa.array(metas, pa.binary()))
    batch = pa.RecordBatch.from_arrays(arrays, names=[*names, "meta"])
    return encode_frame("t", None, 1_700_000_000_000, batch, kind=COLUMNS)


def _write(dest: Harness, cat: dict[str, Any], body: bytes, **config: Any) -> tuple[int, bytes]:
    cfg, cat_path = dest.files(cat, **config)
    out = BytesIO()
    argv = ["write", "--config", str(cfg), "--catalog", str(cat_path), "--transport", "arrow"]
    return launch(SqliteDestination(), argv, stdin=BytesIO(body), stdout=out), out.getvalue()


def _table(dest: Harness) -> tuple[list[dict[str, Any]], list[Any]]:
    """Rows and metas, as stored (number and JSON values as their tokens' text on both paths)."""
    return dest.rows("t", order_by="id"), dest.meta("t", order_by="id")


def _echoed(output: bytes) -> list[Any]:
    return [json.loads(x)["state"]["stream"]["stream_state"] for x in output.splitlines() if b'"STATE"' in x]


@pytest.mark.parametrize(("mode", "batch_records"), [("append", 2), ("overwrite", 2), ("append", 50_000)])
def test_typed_frames_load_what_their_records_would(tmp_path: Path, mode: str, batch_records: int) -> None:
    """Frames cut by STATEs and by the batch size (runs split between loads; a refresh loads what
    its STATEs cover): the same rows, values, changes and echoes as the RECORD lines."""
    (tmp_path / "lines").mkdir()
    (tmp_path / "frames").mkdir()
    by_lines, by_frames = Harness(tmp_path / "lines"), Harness(tmp_path / "frames")
    tail = [state("t", {"n": 1}), state("t", {"n": 2}), status("t")]
    lines = encode([*_lines(ROWS[:3]), tail[0], *_lines(ROWS[3:], 3), tail[1], tail[2]])
    frames = _frame(ROWS[:3]) + encode([tail[0]]) + _frame(ROWS[3:], 3) + encode(tail[1:])
    code, want = _write(by_lines, _catalog(mode), lines, batch_records=batch_records)
    assert code == 0, want.decode()[-2000:]
    code, got = _write(by_frames, _catalog(mode), frames, batch_records=batch_records)
    assert code == 0, got.decode()[-2000:]
    assert _table(by_frames) == _table(by_lines)
    assert len(_table(by_frames)[0]) == len(ROWS)
    assert any(m["changes"] for m in _table(by_frames)[1]), "the edges make changes"
    assert _echoed(got) == _echoed(want) == [{"n": 1}, {"n": 2}]


def test_a_frame_missing_a_field_reads_it_as_null_and_integers_may_type_a_number(dest: Harness) -> None:
    """Also: a field named ``meta`` is a column like any other (the record's meta is the last)."""
    cat = _catalog(
        id=AirbyteType.INTEGER, amount=AirbyteType.NUMBER, extra=AirbyteType.STRING, meta=AirbyteType.STRING
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2]), pa.array([7, None]), pa.array(["m", None]), pa.array([None, None], pa.binary())],
        names=["id", "amount", "meta", "meta"],
    )
    body = encode_frame("t", None, 1, batch, kind=COLUMNS) + encode([state("t", 1), status("t")])
    code, out = _write(dest, cat, body)
    assert code == 0, out.decode()[-2000:]
    assert [(r["id"], r["amount"], r["extra"], r["meta"]) for r in dest.rows("t", order_by="id")] == [
        (1, 7, None, "m"),
        (2, None, None, None),
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"surprise": pa.array([1] * 3)}, "column 'surprise' the stream does not have"),
        ({"name": pa.array([1, 2, 3])}, "column 'name' has type int64, not string"),
        # a token that is not one JSON value: its record is read as its RECORD line would be
        (
            {"doc": pa.array(["{}", "[1", "2],3"])},
            "line 3 of the input: record 1 of a typed frame of t: not valid JSON",
        ),
        (
            {"amount": pa.array(["1", "NaN", None])},
            "line 3 of the input: record 1 of a typed frame of t: not valid",
        ),
    ],
)
def test_a_frame_that_does_not_match_the_stream_is_an_error(
    dest: Harness, override: dict[str, pa.Array], message: str
) -> None:
    good = _frame(ROWS[:2]) + encode([state("t", {"n": 1})])
    rows = ROWS[:3]
    arrays = {name: override.pop(name) for name in list(override) if name in TYPES}
    frame = _frame(rows, **arrays)
    if override:  # a column the stream lacks, before meta
        batch = _decode(frame)
        index = batch.num_columns - 1
        for name, array in override.items():
            batch = batch.add_column(index, name, array)
        frame = encode_frame("t", None, 1, batch, kind=COLUMNS)
    code, out = _write(dest, _catalog(), good + frame + encode([status("t")]))
    assert code == 1
    assert message in out.decode()
    assert "nothing after it was loaded" in out.decode()
    assert _echoed(out) == [{"n": 1}], "what came before it is loaded and echoed"
    assert len(dest.rows("t")) == 2


def _decode(frame: bytes) -> pa.RecordBatch:
    from dbkit.protocol import decode_body, parse_header

    newline = frame.index(b"\n")
    header = parse_header(frame[:newline])
    return decode_body(header, frame[newline + 1 :])


def test_runs_of_a_frame_stand_for_their_rows_when_a_buffer_is_cut_inside_one() -> None:
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3, 4]), pa.array([None] * 4, pa.binary())], names=["id", "meta"]
    )
    frame = Frame("t", None, 1, batch, [("id", "integer")], "t")
    lone = record("t", {"id": 0})
    buffered: list[Any] = [lone, FrameRun(frame, 0, 1), *[FrameRun(frame, 1, 4)] * 3]
    taken, rest = buffered[:3], buffered[3:]
    rebase(taken, rest)
    assert [(r is None, lo, hi) for r, lo, hi in segments(taken)] == [
        (True, 0, 1),
        (False, 1, 2),
        (False, 2, 3),
    ]
    assert [orjson.loads(bytes(r.data))["id"] for r in materialize(taken)[1:]] == [1, 2]
    assert [orjson.loads(bytes(r.data))["id"] for r in materialize(rest)] == [3, 4]


def _both_ways(tmp_path: Path, cat: dict[str, Any], lines: bytes, frames: bytes, **config: Any) -> list[Any]:
    """The table written from the lines and from the frames (each into a fresh database whose
    ``setup`` lines went first), checked equal; returns it."""
    tables = []
    for name, body in (("lines", lines), ("frames", frames)):
        (tmp_path / name).mkdir()
        dest = Harness(tmp_path / name)
        for before in config.pop("setup", []) if name == "frames" else config.get("setup", []):
            code, out = _write(dest, before[0], before[1])
            assert code == 0, out.decode()[-2000:]
        code, out = _write(dest, cat, body, **{k: v for k, v in config.items() if k != "setup"})
        assert code == 0, out.decode()[-2000:]
        tables.append((dest.raw_rows("t", order_by="id"), _echoed(out)))
    for rows in (tables[0][0], tables[1][0]):
        for row in rows:
            row.pop("_airbyte_raw_id")
            row.pop("_airbyte_extracted_at")
    assert tables[1] == tables[0]
    return tables[0][0]


def test_tokens_the_vectorized_check_cannot_vouch_for_load_as_their_lines_would(tmp_path: Path) -> None:
    """Whitespace around a JSON value, lone surrogate escapes (PostgreSQL's json keeps them) and
    nesting deeper than the fast decoder goes: the frame's records take the lines' way."""
    docs = [' {"a" : 1}\t ', '["\\ud800", "\\udc00x"]', "[" * 1500 + "]" * 1500, '{"b": 2}']
    cat = _catalog(id=AirbyteType.INTEGER, doc=AirbyteType.UNKNOWN)
    tail = encode([state("t", {"n": 1}), status("t")])
    lines = b"".join(
        orjson.dumps(
            {
                "type": "RECORD",
                "record": {"stream": "t", "data": {"id": i, "doc": orjson.Fragment(d)}, "emitted_at": 1},
            }
        )
        + b"\n"
        for i, d in enumerate(docs)
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array(range(len(docs))), pa.array(docs), pa.array([None] * len(docs), pa.binary())],
        names=["id", "doc", "meta"],
    )
    rows = _both_ways(tmp_path, cat, lines + tail, encode_frame("t", None, 1, batch, kind=COLUMNS) + tail)
    assert len(rows) == len(docs)


def test_a_table_that_stores_a_column_as_another_type_loads_frames_as_their_lines(tmp_path: Path) -> None:
    """A column stored as text (an earlier sync's type) that the stream now calls an integer: the
    frame's int64 column is stored as the JSON path stores the integers."""
    first = _catalog(id=AirbyteType.INTEGER, v=AirbyteType.STRING)
    earlier = encode([record("t", {"id": 0, "v": "text"}), state("t", {"n": 0}), status("t")])
    cat = _catalog(id=AirbyteType.INTEGER, v=AirbyteType.INTEGER)
    tail = encode([state("t", {"n": 1}), status("t")])
    lines = encode([record("t", {"id": 1, "v": 5}), record("t", {"id": 2, "v": None})])
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2]), pa.array([5, None]), pa.array([None, None], pa.binary())],
        names=["id", "v", "meta"],
    )
    frames = encode_frame("t", None, 1, batch, kind=COLUMNS)
    rows = _both_ways(tmp_path, cat, lines + tail, frames + tail, setup=[(first, earlier)])
    assert [(r["id"], r["v"]) for r in rows] == [(0, "text"), (1, "5"), (2, None)]


def test_a_frame_read_as_lines_is_read_a_batch_at_a_time(tmp_path: Path) -> None:
    """A frame whose records take the lines' way (a column stored as text) and that is larger
    than the batch: read in slices of the batch size, with the same rows and STATE echoes."""
    first = _catalog(id=AirbyteType.INTEGER, v=AirbyteType.STRING)
    earlier = encode([record("t", {"id": 0, "v": "text"}), state("t", {"n": 0}), status("t")])
    cat = _catalog(id=AirbyteType.INTEGER, v=AirbyteType.NUMBER)
    tokens = ["1", "2.50", None, "-3e2", "4", "5", "6"]
    lines = encode(
        [record("t", {"id": i + 1, "v": None}) for i in range(len(tokens))]
        + [state("t", {"n": 1}), status("t")]
    )
    lines = b"".join(
        line.replace(b'"v":null', b'"v":' + t.encode()) if t is not None else line
        for line, t in zip(lines.splitlines(keepends=True), [*tokens, None, None], strict=True)
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array(range(1, 8)), pa.array(tokens), pa.array([None] * 7, pa.binary())],
        names=["id", "v", "meta"],
    )
    frames = encode_frame("t", None, 1, batch, kind=COLUMNS) + encode([state("t", {"n": 1}), status("t")])
    rows = _both_ways(tmp_path, cat, lines, frames, setup=[(first, earlier)], batch_records=2)
    assert [(r["id"], r["v"]) for r in rows] == [
        (0, "text"),
        (1, "1"),
        (2, "2.50"),
        (3, None),
        (4, "-3E+2"),
        (5, "4"),
        (6, "5"),
        (7, "6"),
    ]


@pytest.mark.parametrize(
    ("tokens", "metas", "message"),
    [
        (["1", "2", "3", "4", "{bad"], [None] * 5, "record 4 of a typed frame of t: not valid JSON"),
        (["1", "2", "3", "4", "5"], [None, None, None, b"{bad", None], "record 3 of a typed frame of t"),
    ],
)
def test_a_frame_read_as_lines_is_checked_whole_before_any_of_it_is_read(
    dest: Harness, tokens: list[str], metas: list[bytes | None], message: str
) -> None:
    """Read a batch at a time, but all of the frame or none of it: a line that is not JSON in the
    last slice fails the write before the first slice is buffered."""
    first = _catalog(id=AirbyteType.INTEGER, v=AirbyteType.STRING)
    code, out = _write(dest, first, encode([record("t", {"id": 0, "v": "text"}), state("t", 0), status("t")]))
    assert code == 0, out.decode()[-2000:]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(range(1, 6)), pa.array(tokens), pa.array(metas, pa.binary())], names=["id", "v", "meta"]
    )
    body = encode_frame("t", None, 1, batch, kind=COLUMNS) + encode([state("t", 1), status("t")])
    code, out = _write(dest, _catalog(id=AirbyteType.INTEGER, v=AirbyteType.NUMBER), body, batch_records=2)
    assert code == 1
    assert message in out.decode()
    assert "nothing after it was loaded" in out.decode()
    assert [r["id"] for r in dest.rows("t")] == [0]


WIDENED: dict[str, tuple[AirbyteType, AirbyteType, pa.Array, list[Any]]] = {
    # stored, catalog, the frame's column, the same values in the lines (JSON text)
    "array in unknown": (AirbyteType.UNKNOWN, AirbyteType.ARRAY, pa.array(["[1,2]", "[]", None, '[{"a": 1.50}]']),
                         ["[1,2]", "[]", None, '[{"a": 1.50}]']),
    "integer in number": (AirbyteType.NUMBER, AirbyteType.INTEGER, pa.array([5, -(2**63), None, 2**63 - 1]),
                          ["5", str(-(2**63)), None, str(2**63 - 1)]),
    "boolean in unknown": (AirbyteType.UNKNOWN, AirbyteType.BOOLEAN, pa.array([True, False, None, True]),
                           ["true", "false", None, "true"]),
    "number in unknown": (AirbyteType.UNKNOWN, AirbyteType.NUMBER, pa.array(["1.50", "-0", None, "1e400"]),
                          ["1.50", "-0", None, "1e400"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WIDENED))
def test_a_column_stored_as_a_json_type_types_frames_column_by_column(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table that stores a column as a type taking JSON tokens (what a widening leaves; what
    PostgreSQL's jsonb reads back as for an array) while the stream calls it another: the frame
    is typed column by column (never rebuilt as lines) and stores what its lines store."""
    from dbkit.destination import batch, consumer

    stored, catalog_type, column, texts = WIDENED[case]
    widened: list[tuple[AirbyteType, AirbyteType]] = []
    token_widening = batch.token_widening

    def spy(catalog: AirbyteType, storage: AirbyteType) -> bool:
        widened.append((catalog, storage))
        return token_widening(catalog, storage)

    def never(*args: Any) -> Any:
        raise AssertionError("the frame was rebuilt as RECORD lines")

    monkeypatch.setattr(batch, "token_widening", spy)
    monkeypatch.setattr(consumer, "frame_lines", never)
    first = _catalog(id=AirbyteType.INTEGER, v=stored)
    earlier = encode([record("t", {"id": 0, "v": None}), state("t", {"n": 0}), status("t")])
    cat = _catalog(id=AirbyteType.INTEGER, v=catalog_type)
    tail = encode([state("t", {"n": 1}), status("t")])
    lines = b"".join(
        orjson.dumps(
            {
                "type": "RECORD",
                "record": {
                    "stream": "t",
                    "data": {"id": i + 1, "v": None if t is None else orjson.Fragment(t)},
                    "emitted_at": 1,
                },
            }
        )
        + b"\n"
        for i, t in enumerate(texts)
    )
    batch_ = pa.RecordBatch.from_arrays(
        [pa.array(range(1, len(texts) + 1)), column, pa.array([None] * len(texts), pa.binary())],
        names=["id", "v", "meta"],
    )
    frames = encode_frame("t", None, 1, batch_, kind=COLUMNS)
    rows = _both_ways(tmp_path, cat, lines + tail, frames + tail, setup=[(first, earlier)])
    assert len(rows) == len(texts) + 1
    assert (catalog_type, stored) in widened


@pytest.mark.parametrize("stored", [AirbyteType.INTEGER, AirbyteType.NUMBER], ids=["same-type", "widened"])
def test_a_frame_whose_meta_is_not_json_is_refused_as_its_lines_would_be(
    dest: Harness, stored: AirbyteType
) -> None:
    """A ``meta`` value that is not JSON fails the write, naming the record, with nothing of the
    frame loaded: typed column by column or not (a table whose column the stream calls integer
    and that stores it as integer, or as number)."""
    if stored is not AirbyteType.INTEGER:
        code, out = _write(
            dest,
            _catalog(id=AirbyteType.INTEGER, v=stored),
            encode([record("t", {"id": 0, "v": 1.5}), state("t", 0), status("t")]),
        )
        assert code == 0, out.decode()[-2000:]
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3]), pa.array([1, 2, 3]), pa.array([None, b"{bad", None], pa.binary())],
        names=["id", "v", "meta"],
    )
    body = encode_frame("t", None, 1, batch, kind=COLUMNS) + encode([state("t", 1), status("t")])
    code, out = _write(dest, _catalog(id=AirbyteType.INTEGER, v=AirbyteType.INTEGER), body)
    assert code == 1
    assert "record 1 of a typed frame of t: not valid JSON" in out.decode()
    assert "nothing after it was loaded" in out.decode()
    assert [r["id"] for r in dest.rows("t")] == ([] if stored is AirbyteType.INTEGER else [0])


# native columns (``native`` frames): each value as Arrow holds it, and the canonical string the
# JSON path sends for it; years past what the destination stores, BC, far, and the last of Arrow's
_DAY = 86_400_000_000
NATIVE_CASES: dict[str, tuple[pa.DataType, list[Any], list[Any]]] = {
    "day": (
        pa.date32(),
        [19782, -735160, -2440550, 2145042905, 2932897, -719162, -719163, None],
        ["2024-02-29", "0044-03-15 BC", "4713-01-01 BC", "+5874897-12-31", "+10000-01-01", "0001-01-01",
         "0001-12-31 BC", None],
    ),
    "at": (
        pa.timestamp("us", tz="UTC"),
        [1704157445123456, -63517780800000000, -210863520000000000, 253402300800000000, 2**63 - 1,
         -62135596800000001, 0, None],
        ["2024-01-02T01:04:05.123456+00:00", "0044-03-15T12:00:00.000000+00:00 BC",
         "4713-01-01T00:00:00.000000+00:00 BC", "+10000-01-01T00:00:00.000000+00:00",
         "+294247-01-10T04:00:54.775807+00:00", "0001-12-31T23:59:59.999999+00:00 BC",
         "1970-01-01T00:00:00.000000+00:00", None],
    ),
    "local": (
        pa.timestamp("us"),
        [1704164645000000, -63517780800000000, -210863520000000000, 253402300800000000, 2**63 - 1,
         -62135596800000001, 1, None],
        ["2024-01-02T03:04:05.000000", "0044-03-15T12:00:00.000000 BC", "4713-01-01T00:00:00.000000 BC",
         "+10000-01-01T00:00:00.000000", "+294247-01-10T04:00:54.775807", "0001-12-31T23:59:59.999999 BC",
         "1970-01-01T00:00:00.000001", None],
    ),
    "clock": (
        pa.time64("us"),
        [0, _DAY - 1, 3_723_000_005, None, 1, 43_200_000_000, 5, 6],
        ["00:00:00.000000", "23:59:59.999999", "01:02:03.000005", None, "00:00:00.000001", "12:00:00.000000",
         "00:00:00.000005", "00:00:00.000006"],
    ),
    "blob": (
        pa.binary(),
        [b"\x00\xff\x10", b"", None, b"hello", bytes(range(256)), b"a", b"ab", b"abc"],
        ["AP8Q", "", None, "aGVsbG8=", __import__("base64").b64encode(bytes(range(256))).decode(), "YQ==",
         "YWI=", "YWJj"],
    ),
}  # fmt: skip


def test_native_columns_are_their_canonical_strings() -> None:
    from dbkit.protocol import canonical_strings

    for name, (arrow_type, natives, strings) in NATIVE_CASES.items():
        assert canonical_strings(_native_array(arrow_type, natives)).to_pylist() == strings, name


def _native_array(arrow_type: pa.DataType, values: list[Any]) -> pa.Array:
    if pa.types.is_binary(arrow_type):
        return pa.array(values, arrow_type)
    storage = pa.int32() if pa.types.is_date32(arrow_type) else pa.int64()
    return pa.array(values, storage).cast(arrow_type)


@pytest.mark.parametrize("min_year", [None, 1900])
def test_native_frames_load_what_their_records_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_year: int | None
) -> None:
    """A ``native`` frame (dates, timestamps, times and binary as Arrow values) gives the table,
    values and changes of the RECORD lines with the canonical strings (years the destination
    cannot store NULL with the same change); a native frame's RECORD lines, where a destination
    needs them, are those lines byte for byte."""
    import dataclasses

    from dbkit.destination import casting
    from dbkit.destination.frames import frame_lines
    from dbkit.protocol import NATIVE

    n = 8
    names = ["id", *NATIVE_CASES]
    cat = _catalog(id=AirbyteType.INTEGER, **{k: TYPES[k] for k in NATIVE_CASES})
    lines = [
        orjson.dumps({"type": "RECORD", "record": {"stream": "t", "data": {"id": i, **{k: v[2][i] for k, v in NATIVE_CASES.items()}},
                                                   "emitted_at": 1}})
        for i in range(n)
    ]  # fmt: skip
    batch = pa.RecordBatch.from_arrays(
        [pa.array(range(n)), *(_native_array(t, v) for t, v, _ in NATIVE_CASES.values()), pa.array([None] * n, pa.binary())],
        names=[*names, "meta"],
    )  # fmt: skip
    fields = [("id", "integer"), *((k, TYPES[k].value) for k in NATIVE_CASES)]
    assert frame_lines("t", None, 1, batch, fields) == lines
    if min_year is not None:  # the destination's years: fewer than Arrow's (NULL, with a change)
        original = casting.Limits.of.__func__  # type: ignore[attr-defined]

        def narrow(cls: Any, capabilities: Any) -> Any:
            return dataclasses.replace(original(cls, capabilities), min_year=min_year, max_year=9999)

        monkeypatch.setattr(casting.Limits, "of", classmethod(narrow))
    tail = encode([state("t", {"n": 1}), status("t")])
    frames = encode_frame("t", None, 1, batch, kind=NATIVE)
    rows = _both_ways(tmp_path, cat, b"\n".join(lines) + b"\n" + tail, frames + tail)
    assert len(rows) == n
    changed = [r["id"] for r in rows if json.loads(r["_airbyte_meta"])["changes"]]
    assert changed == ([3, 4] if min_year is None else [1, 2, 3, 4, 5, 6]), (
        "past Arrow's years, or the database's"
    )


def test_a_columns_frame_with_a_native_column_is_refused(dest: Harness) -> None:
    """Natives are a ``native`` frame's: a ``columns`` frame (a reader of the first version's
    frames) never takes a date32 column as text."""
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1]), _native_array(pa.date32(), [0]), pa.array([None], pa.binary())],
        names=["id", "day", "meta"],
    )
    cat = _catalog(id=AirbyteType.INTEGER, day=AirbyteType.DATE)
    code, out = _write(dest, cat, encode_frame("t", None, 1, batch, kind=COLUMNS) + encode([status("t")]))
    assert code == 1
    assert "has type date32[day]" in out.decode()


def test_times_as_strings_are_cast_as_the_per_value_rules_cast_them() -> None:
    from dbkit.destination.casting import ColumnCaster, Limits
    from dbkit.destination.typed import TypedDecoder

    times = ["00:00:00", "23:59:59.999999", "01:02:03.5", "12:34:56.000001", None, "24:00:00", "24:00:00.000000",
             "23:59:60", "01:02:03.1234567", " 01:02:03", "1:02:03", "01:02", "01:02:03+02:00", "25:00:00", "", "x"]  # fmt: skip
    caster = ColumnCaster(AirbyteType.TIME_WITHOUT_TIMEZONE, Limits())
    decoder = TypedDecoder([("t", AirbyteType.TIME_WITHOUT_TIMEZONE)], [caster], Limits())
    (by_arrow,) = decoder.arrow_columns([pa.array(times, pa.string())])
    slow = caster.slow(times)
    assert by_arrow.array.to_pylist() == slow.array.to_pylist()
    assert by_arrow.changes == slow.changes
    assert len(slow.changes) == 6  # " 01:02:03" is a time (stripped), "1:02:03" is not


def test_a_refresh_frame_larger_than_twice_the_batch_is_buffered_in_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh buffer full and waiting for a STATE takes the rest of a big frame in runs up to
    the forced load at twice the batch size, not record by record (each record then became a
    run and a batch part of its own: 160 s per million rows); the table is the lines'."""
    from dbkit.destination.batch import BatchBuilder

    n = 1000
    built: list[int] = []
    original = BatchBuilder._build_frame

    def counted(self: Any, frame: Any, start: int, stop: int) -> Any:
        built.append(stop - start)
        return original(self, frame, start, stop)

    monkeypatch.setattr(BatchBuilder, "_build_frame", counted)
    cat = _catalog("overwrite", id=AirbyteType.INTEGER, name=AirbyteType.STRING)
    tail = encode([state("t", {"n": 1}), status("t")])
    lines = encode([record("t", {"id": i, "name": f"r{i}"}) for i in range(n)])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(range(n)), pa.array([f"r{i}" for i in range(n)]), pa.array([None] * n, pa.binary())],
        names=["id", "name", "meta"],
    )
    rows = _both_ways(
        tmp_path, cat, lines + tail, encode_frame("t", None, 1, batch, kind=COLUMNS) + tail, batch_records=100
    )
    assert len(rows) == n
    assert sum(built) == n
    assert len(built) < 30, f"{len(built)} parts for {n} rows"


def test_lines_rebuilt_from_a_frame_hold_their_own_size() -> None:
    """orjson's output keeps its whole buffer (4 KB for a short line): the lines and records a
    frame is rebuilt as are compacted, so a batch of them costs about their text."""
    import tracemalloc

    from dbkit.destination.frames import compact, frame_lines

    batch = _decode(_frame(ROWS * 200))
    fields = [(name, t.value) for name, t in TYPES.items()]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = frame_lines("t", None, 1, batch, fields)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(lines) == len(ROWS) * 200
    assert held < 3 * sum(map(len, lines)), (held, sum(map(len, lines)))
    assert compact([b'{"a":1}', b"[]"]) == [b'{"a":1}', b"[]"]
    assert compact([]) == []
