"""Typed frames (``columns`` kind, :mod:`dbkit.protocol.arrow`) in a stream's buffer.

The consumer buffers a typed frame's records without making a record of each: a run of rows
``[start, stop)`` of a :class:`Frame` is one :class:`FrameRun` object, put in the buffer's list
once per row it stands for (the same object ``stop - start`` times: a list of references, made in
C). So the buffer's length still counts records, and every rule built on it (batch sizes, what
a STATE covers, refresh tails) is unchanged. Within a list a run's references are contiguous and
the first one stands for row ``start``; a list cut inside a run (:func:`rebase`) gets a new run
for the rest. The batch builder takes each run as Arrow columns (:func:`segments`); whatever
needs records one by one (raw tables, :func:`materialize`) gets them rebuilt from the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dbkit.destination.records import NO_META, RawRecord
from dbkit.destination.rows import single_values
from dbkit.protocol import COLUMN_TYPES, TOKEN_TYPES, canonical_strings, check_columns

_ARROW = {"int64": pa.int64(), "bool": pa.bool_(), "string": pa.string()}


class NeedsRecords(Exception):
    """A typed frame whose columns match its stream but cannot be typed column by column (a token
    the vectorized check cannot vouch for, or a table whose stored types differ from the stream's):
    its records take the JSON path's way, as the RECORD lines of :func:`frame_lines`."""


def frame_lines(
    stream: str,
    namespace: str | None,
    emitted_at: int,
    batch: pa.RecordBatch,
    fields: Sequence[tuple[str, str]],
) -> list[bytes]:
    """The RECORD lines a typed frame stands for (``fields``: the stream's (name, Airbyte type), as
    the frame was checked against; keys in column order, tokens as they were sent)."""
    datas = _data_objects(batch, 0, batch.num_rows, _token_columns(batch.schema, fields))
    metas = batch.column(batch.num_columns - 1).to_pylist()
    lines = []
    for i in range(batch.num_rows):
        record: dict[str, Any] = {"stream": stream}
        if namespace is not None:
            record["namespace"] = namespace
        record["data"] = datas[i]
        record["emitted_at"] = emitted_at
        if metas[i] is not None:
            record["meta"] = orjson.Fragment(metas[i])
        lines.append(orjson.dumps({"type": "RECORD", "record": record}))
    return compact(lines)


def compact(texts: list[bytes]) -> list[bytes]:
    """The same JSON texts, each in a bytes object of its own size: ``orjson.dumps`` returns one
    that keeps its whole output buffer (4 KB or more for a line of 300 bytes), which a list of a
    batch's records would hold (measured: 1.2 GB at the peak of a frame read as lines). JSON
    text holds no raw newline, so joining on one and splitting again gives them back."""
    if not texts:
        return texts
    return b"\n".join(texts).split(b"\n")


def lines_are_json(batch: pa.RecordBatch, fields: Sequence[tuple[str, str]]) -> bool:
    """Whether every line :func:`frame_lines` makes of ``batch`` is JSON, told from the columns
    (no line made): orjson writes every value but the token columns' and the ``meta`` column's
    text as it is, so the lines are JSON when each of those values is one JSON value. False
    means: check the lines one by one."""
    try:
        _check_json_columns(batch, _token_columns(batch.schema, fields), "")
    except NeedsRecords:
        return False
    return True


def _check_json_columns(batch: pa.RecordBatch, tokens: Mapping[int, str], label: str) -> None:
    """Each value of the ``tokens`` columns and of the ``meta`` column is one JSON value, as the
    lines' parser would insist (:func:`_check_tokens`); raises :class:`NeedsRecords`."""
    for i, name in tokens.items():
        _check_tokens(batch.column(i), name, label)
    meta = batch.column(batch.num_columns - 1)
    if meta.null_count < len(meta):
        _check_tokens(meta.view(pa.string()), "meta", label)


def _token_columns(schema: pa.Schema, fields: Sequence[tuple[str, str]]) -> dict[int, str]:
    """Position -> name of the columns that hold JSON tokens (a number or JSON field as text)."""
    types = dict(fields)
    return {
        i: schema.field(i).name
        for i in range(len(schema) - 1)
        if types[schema.field(i).name] in TOKEN_TYPES and pa.types.is_string(schema.field(i).type)
    }


def _data_objects(
    batch: pa.RecordBatch, start: int, stop: int, tokens: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Rows ``[start, stop)`` as the ``data`` objects of their records (keys in column order,
    the ``tokens`` columns' text as JSON fragments, native columns as their canonical strings)."""
    names = batch.schema.names[:-1]
    columns = []
    for k in range(len(names)):
        values = canonical_strings(batch.column(k).slice(start, stop - start)).to_pylist()
        if k in tokens:
            values = [None if v is None else orjson.Fragment(v) for v in values]
        columns.append(values)
    return (
        [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        if columns
        else [{} for _ in range(stop - start)]
    )


class Frame:
    """A typed frame of one stream, checked against the stream's fields."""

    __slots__ = ("batch", "emitted_at", "namespace", "positions", "stream", "tokens")

    def __init__(
        self,
        stream: str,
        namespace: str | None,
        emitted_at: int,
        batch: pa.RecordBatch,
        fields: Sequence[tuple[str, str]],
        label: str,
        native: bool = False,
    ) -> None:
        """``fields``: (field name, Airbyte type) of the stream's columns, in the builder's order;
        a column of the batch that is not one of them, or of another type, raises
        :class:`~dbkit.protocol.FrameError` (``native``: a ``native`` frame, whose date, time and
        binary columns may be native); a token column whose values the vectorized check cannot
        vouch for raises :class:`NeedsRecords`."""
        self.stream = stream
        self.namespace = namespace
        self.emitted_at = emitted_at
        self.batch = batch
        self.positions = check_columns(batch.schema, fields, label, native)
        self.tokens = _token_columns(batch.schema, fields)
        _check_json_columns(batch, self.tokens, label)

    def columns(self, start: int, stop: int, fields: Sequence[tuple[str, str]]) -> list[pa.Array]:
        """The rows ``[start, stop)`` of each field's column (all NULL for a field the frame lacks;
        a native column as it is)."""
        n = stop - start
        out = []
        for (_, airbyte_type), position in zip(fields, self.positions, strict=True):
            if position is None:
                out.append(pa.nulls(n, _ARROW[COLUMN_TYPES[airbyte_type]]))
            else:
                column = self.batch.column(position).slice(start, n)
                if airbyte_type in TOKEN_TYPES and not pa.types.is_string(column.type):
                    column = column.cast(pa.string())  # an integer's or a boolean's JSON token
                out.append(column)
        return out

    def metas(self, start: int, stop: int) -> list[tuple[int, msgspec.Raw]]:
        """(row within the slice, ``meta`` JSON) of the rows that have a ``meta``."""
        meta = self.batch.column(self.batch.num_columns - 1).slice(start, stop - start)
        if meta.null_count == len(meta):
            return []
        return [(i, msgspec.Raw(m)) for i, m in enumerate(meta.to_pylist()) if m is not None]

    def records(self, start: int, stop: int) -> list[RawRecord]:
        """The rows as records, their ``data`` JSON rebuilt from the columns (keys in column order)."""
        datas = compact([orjson.dumps(d) for d in _data_objects(self.batch, start, stop, self.tokens)])
        metas = dict(self.metas(start, stop))
        return [
            RawRecord(self.stream, msgspec.Raw(data), self.namespace, self.emitted_at, metas.get(i, NO_META))
            for i, data in enumerate(datas)
        ]


_RAWS = msgspec.json.Decoder(list[msgspec.Raw])


def _check_tokens(column: pa.Array, name: str, label: str) -> None:
    """Each value of a token column is one JSON value (as each would be in a RECORD line, whose
    JSON the consumer checks): the values joined by commas are a JSON array of as many values,
    each exactly one of them."""
    checked = single_values(column)
    if checked is not None:
        if not checked:
            raise NeedsRecords(f"column {name!r} of a typed frame of {label}")
        return
    tokens = column.drop_null()
    n = len(tokens)
    if n == 0:
        return
    listed = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), tokens)
    joined = pc.binary_join(listed, ",")[0].as_buffer()
    try:
        raws = _RAWS.decode(b"".join((b"[", joined.to_pybytes(), b"]")))
    except (msgspec.DecodeError, RecursionError):
        raws = []
    if len(raws) != n or list(map(len, raws)) != pc.binary_length(tokens).to_pylist():
        # whitespace around a value, a lone surrogate escape, deep nesting, or not JSON at all:
        # the lines' parser decides, as it would for the RECORD lines
        raise NeedsRecords(f"column {name!r} of a typed frame of {label}")


class FrameRun:
    """Rows ``[start, stop)`` of ``frame`` (see the module doc)."""

    __slots__ = ("frame", "start", "stop")

    def __init__(self, frame: Frame, start: int, stop: int) -> None:
        self.frame = frame
        self.start = start
        self.stop = stop


def has_frames(records: Sequence[Any]) -> bool:
    return FrameRun in set(map(type, records))


def segments(records: Sequence[Any]) -> Iterator[tuple[FrameRun | None, int, int]]:
    """The list ``records`` as consecutive pieces ``(run, lo, hi)``: positions ``[lo, hi)`` are
    rows ``run.start ..`` of a run, or records (``run`` None)."""
    n = len(records)
    i = 0
    while i < n:
        item = records[i]
        if type(item) is FrameRun:
            m = min(item.stop - item.start, n - i)
            if records[i + m - 1] is not item:
                raise AssertionError("a buffered frame run is not contiguous")
            yield item, i, i + m
            i += m
        else:
            j = i + 1
            while j < n and type(records[j]) is not FrameRun:
                j += 1
            yield None, i, j
            i = j


def rebase(taken: list[Any], rest: list[Any]) -> None:
    """After a list was cut into ``taken`` and ``rest`` inside a run, give ``rest``'s part of it
    a run of its own (so that it stands for the rows after those ``taken`` holds)."""
    if not taken or not rest or type(rest[0]) is not FrameRun or rest[0] is not taken[-1]:
        return
    run: FrameRun = rest[0]
    cut = len(taken) - taken.index(run)
    left = run.stop - run.start - cut
    rest[:left] = [FrameRun(run.frame, run.start + cut, run.stop)] * left


def materialize(records: Sequence[Any]) -> Sequence[RawRecord]:
    """``records`` with every frame run replaced by its rows as records."""
    if not has_frames(records):
        return records
    out: list[RawRecord] = []
    for run, lo, hi in segments(records):
        if run is None:
            out.extend(records[lo:hi])
        else:
            out.extend(run.frame.records(run.start, run.start + hi - lo))
    return out
