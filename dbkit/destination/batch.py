"""Buffered records -> typed Arrow batches: data columns, then the ``_airbyte_*`` columns.

Records come as :class:`~dbkit.destination.records.RawRecord` (what the consumer buffers), their
``data`` decoded by the stream's typed decoder (:mod:`dbkit.destination.typed`), or, for a record
it cannot read, parsed exactly and cast value by value. Either way every value follows the rules of
:mod:`dbkit.destination.casting` (re-exported here): a value that cannot be stored is NULL with a
``_airbyte_meta.changes`` entry (the source's changes first, then ours in column order), and the
row is never dropped. A source change that is not an object of scalars is dropped.

A batch is built in parts of a few thousand rows (:meth:`BatchBuilder.parts`): Arrow's kernels
and the CSV writer run fastest on batches that fit the CPU caches, and a loader can send one part
while the next is built.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from dbkit.db.types import AirbyteType
from dbkit.destination.casting import (
    ARROW_TYPES,
    INT64_MAX,
    INT64_MIN,
    SERIALIZATION,
    SIZE,
    TYPECAST,
    ColumnCaster,
    ColumnResult,
    Limits,
    Rejected,
    double_exact,
    float_texts,
    normalize_timetz,
    parse_date,
    parse_time,
    parse_timestamp,
    repaired_text,
    to_json_text,
)
from dbkit.destination.frames import Frame, has_frames, segments
from dbkit.destination.records import DECODE_ERRORS, NO_META, RawRecord, loads_lenient, source_changes
from dbkit.destination.rows import RowDecoder, uuid_text
from dbkit.destination.typed import RAW_NULL, TOKEN_COLUMNS, TypedDecoder
from dbkit.protocol import TOKEN_TYPES, deepjson

__all__ = [
    "ARROW_TYPES",
    "EXTRACTED_AT",
    "GENERATION_ID",
    "META",
    "META_COLUMNS",
    "RAW_ID",
    "SERIALIZATION",
    "SIZE",
    "TYPECAST",
    "Batch",
    "BatchBuilder",
    "BatchColumn",
    "ColumnCaster",
    "ColumnResult",
    "Limits",
    "Rejected",
    "double_exact",
    "float_texts",
    "normalize_timetz",
    "parse_date",
    "parse_time",
    "parse_timestamp",
    "random_uuids",
    "to_json_text",
]

RAW_ID = "_airbyte_raw_id"
EXTRACTED_AT = "_airbyte_extracted_at"
META = "_airbyte_meta"
GENERATION_ID = "_airbyte_generation_id"
META_COLUMNS = (RAW_ID, EXTRACTED_AT, META, GENERATION_ID)

PART_ROWS = 5000


@dataclass(frozen=True)
class BatchColumn:
    """A data column of the target table: which record field fills it and with which type."""

    field: str
    name: str
    airbyte_type: AirbyteType


@dataclass
class Batch:
    """A typed batch: ``table`` holds the data columns then the metadata columns.

    ``changed`` are the rows whose ``_airbyte_meta`` has changes; every other row's is
    ``empty_meta`` (a loader may write those as a column default).
    """

    table: pa.Table
    changed_rows: int
    changed: list[int] = field(default_factory=list)
    empty_meta: str = ""
    row_changes: dict[int, list[Any]] = field(default_factory=dict)
    encoded: Any = None
    """What the bulk loader made of ``table`` ahead of its load (:meth:`BulkLoader.encode`), or
    None. A batch derived from this one (rows taken, a column added) does not carry it."""


_TOKEN_OF_VALUE = frozenset({AirbyteType.INTEGER, AirbyteType.BOOLEAN})
"""Catalog types whose typed-frame column (int64, bool) cast to text is the value's JSON token."""


def token_widening(catalog: AirbyteType, stored: AirbyteType) -> bool:
    """Whether a typed frame's column of a ``catalog`` field types as a column stored as ``stored``
    exactly as the field's records would: ``stored`` takes JSON tokens (number, object, array,
    unknown) and the frame's column holds the token of each value (a token column, or integers
    and booleans, whose text is their token). Such a table is what a widening leaves (an integer
    column become number, a JSON column that took another JSON type) and what a database whose
    one JSON type reads back as ``unknown`` (PostgreSQL's jsonb for an array) holds."""
    return stored.value in TOKEN_TYPES and (catalog.value in TOKEN_TYPES or catalog in _TOKEN_OF_VALUE)


class BatchBuilder:
    """Turns buffered records of one stream into typed Arrow tables (data + metadata columns)."""

    def __init__(
        self,
        columns: Sequence[BatchColumn],
        limits: Limits,
        *,
        sync_id: int | None,
        generation_id: int | None,
        raw_ids: bool = True,
        catalog_types: Sequence[AirbyteType] | None = None,
    ) -> None:
        """``catalog_types``: the stream's types in the catalog, column by column, where the table
        stores some column as another (wider) type; a typed frame is made of the catalog's."""
        self.columns = list(columns)
        self.catalog_types = (
            list(catalog_types) if catalog_types is not None else [c.airbyte_type for c in columns]
        )
        self.limits = limits
        self.casters = [ColumnCaster(c.airbyte_type, limits) for c in columns]
        self.decoder = TypedDecoder([(c.field, c.airbyte_type) for c in self.columns], self.casters, limits)
        self.rows = RowDecoder([(c.field, c.airbyte_type) for c in self.columns])
        self.sync_id = sync_id
        self.generation_id = generation_id
        self.raw_ids = raw_ids
        self.empty_meta = to_json_text({"changes": [], "sync_id": sync_id})

    def build(self, records: Sequence[RawRecord]) -> Batch:
        """The whole sequence as one batch."""
        return self._build(records)

    def parts(self, records: Sequence[RawRecord], rows: int = PART_ROWS) -> Iterator[Batch]:
        """The records as consecutive batches of at most ``rows`` rows, built one at a time
        (the rows of typed frames, :mod:`dbkit.destination.frames`, from their columns)."""
        if not has_frames(records):
            for start in range(0, len(records), rows):
                yield self._build(records[start : start + rows])
            return
        for run, lo, hi in segments(records):
            for start in range(lo, hi, rows):
                stop = min(hi, start + rows)
                if run is None:
                    yield self._build(records[start:stop])
                else:
                    offset = run.start - lo
                    yield self._build_frame(run.frame, start + offset, stop + offset)

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(field, Airbyte type) of each data column as the table stores it."""
        return [(c.field, c.airbyte_type.value) for c in self.columns]

    @property
    def catalog_fields(self) -> list[tuple[str, str]]:
        """(field, Airbyte type) of each data column in the catalog: what a typed frame is made of
        and checked against."""
        return [(c.field, t.value) for c, t in zip(self.columns, self.catalog_types, strict=True)]

    @property
    def columnar(self) -> bool:
        """True when typed frames can be typed column by column: the table stores every column as
        the catalog's type, or as a type whose frame column is the JSON token of the catalog's
        value (:func:`token_widening`); else their records go the JSON path's way."""
        return all(
            c.airbyte_type == t or token_widening(t, c.airbyte_type)
            for c, t in zip(self.columns, self.catalog_types, strict=True)
        )

    def _build_frame(self, frame: Frame, start: int, stop: int) -> Batch:
        """Rows ``[start, stop)`` of a typed frame: the same batch as from their records."""
        results = self.decoder.arrow_columns(frame.columns(start, stop, self.fields))
        emitted = [frame.emitted_at] * (stop - start)
        return self._assemble(
            stop - start, results, self._source_changes_of(frame.metas(start, stop)), emitted
        )

    # ------------------------------------------------------------------ building
    def _build(self, records: Sequence[RawRecord]) -> Batch:
        n = len(records)
        metas = ((i, r.meta) for i, r in enumerate(records) if r.meta != NO_META)
        emitted = [r.emitted_at for r in records]
        arrays = self.rows.arrays([r.data for r in records])
        if arrays is not None:  # every record in a typed frame's form: decoded in C
            results = self.decoder.arrow_columns(arrays)
            return self._assemble(n, results, self._source_changes_of(metas), emitted)
        typed_rows, typed, general_rows, general = self._decode(records)
        results = self.decoder.columns(typed)
        if general:
            datas = [d if isinstance(d, Mapping) else {} for d in general]
            tokens = _raw_fields([records[i].data for i in general_rows])
            slow = [
                self.decoder.raw_column(
                    caster,
                    [t.get(c.field, RAW_NULL) for t in tokens],
                    number=c.airbyte_type is AirbyteType.NUMBER,
                )
                if tokens is not None and c.airbyte_type in TOKEN_COLUMNS
                # number and JSON values as their tokens, as in every other row (not written again
                # from Python values); the rest value by value
                else caster.cast([d.get(c.field) for d in datas])
                for c, caster in zip(self.columns, self.casters, strict=True)
            ]
            results = _merge(results, slow, typed_rows, general_rows)
        return self._assemble(n, results, self._source_changes_of(metas), emitted)

    def _assemble(
        self,
        n: int,
        results: Sequence[ColumnResult],
        source: Iterator[tuple[int, list[Any]]],
        emitted: Sequence[Any],
    ) -> Batch:
        """The batch of ``n`` rows from their data columns, source changes and ``emitted_at``."""
        arrays: list[pa.Array] = []
        names: list[str] = []
        row_changes: dict[int, list[Any]] = {}
        for column, result in zip(self.columns, results, strict=True):
            arrays.append(result.array)
            names.append(column.name)
            for row, kind, reason in result.changes:
                row_changes.setdefault(row, []).append(
                    {"field": column.field, "change": kind, "reason": reason}
                )
        for row, changes in source:
            row_changes[row] = [*changes, *row_changes.get(row, ())]
        if self.raw_ids:
            arrays.append(random_uuids(n))
            names.append(RAW_ID)
        arrays.append(self._extracted_at(emitted))
        names.append(EXTRACTED_AT)
        changed = sorted(row_changes)
        metas = [self.empty_meta] * n
        for row in changed:
            metas[row] = to_json_text({"changes": row_changes[row], "sync_id": self.sync_id})
        arrays.append(pa.array(metas, pa.string()))
        names.append(META)
        arrays.append(
            pa.nulls(n, pa.int64()) if self.generation_id is None else _repeat(self.generation_id, n)
        )
        names.append(GENERATION_ID)
        return Batch(
            pa.Table.from_arrays(arrays, names=names), len(changed), changed, self.empty_meta, row_changes
        )

    def _decode(self, records: Sequence[RawRecord]) -> tuple[list[int], list[Any], list[int], list[Any]]:
        """Rows decoded by the typed decoder, and the ``data`` of the rest, parsed exactly, for
        the general path."""
        decode = self.decoder.decode
        try:
            return list(range(len(records))), [decode(r.data) for r in records], [], []
        except DECODE_ERRORS:
            pass
        typed_rows: list[int] = []
        typed: list[Any] = []
        general_rows: list[int] = []
        general: list[Any] = []
        for i, record in enumerate(records):
            try:
                typed.append(decode(record.data))
                typed_rows.append(i)
            except DECODE_ERRORS:
                general_rows.append(i)
                general.append(loads_lenient(record.data))
        return typed_rows, typed, general_rows, general

    def _source_changes_of(self, metas: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, list[Any]]]:
        """The rows (of ``metas``: row and its ``meta``, raw) whose source put ``meta.changes`` on
        them, with those changes: each an object
        of scalars (the protocol's ``{field, change, reason}``), text no database stores repaired
        as in strings; any other entry is dropped (it would fail ``_airbyte_meta``, not just
        hold a NULL)."""
        keep_nul = self.limits.nul_in_json

        def repaired(text: str) -> str | None:
            return repaired_text(text, keep_nul)

        for i, meta in metas:
            if meta != NO_META:
                changes = [
                    deepjson.map_strings(change, repaired)[0]
                    for change in source_changes(meta)
                    if isinstance(change, dict)
                    and not any(isinstance(v, dict | list) for v in change.values())
                ]
                if changes:
                    yield i, changes

    def _extracted_at(self, values: Sequence[Any]) -> pa.Array:
        """``emitted_at`` (milliseconds, an integer or a number) as a UTC timestamp; now if missing."""
        try:
            array = pa.array(values, type=pa.int64(), from_pandas=False)
            if array.null_count:
                raise TypeError("missing emitted_at")
            micros = pc.multiply_checked(array, 1000)
        except (pa.ArrowException, TypeError, OverflowError):
            now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            micros = pa.array([_millis(v, now) * 1000 for v in values], type=pa.int64())
        return micros.cast(pa.timestamp("us", tz="UTC"))

    # ------------------------------------------------------------------ repairs
    def reject(self, batch: Batch, row: int, column: str, reason: str = TYPECAST) -> Batch:
        """``batch`` with the value of ``column`` at ``row`` set NULL and the change recorded (for
        a value the database refused although the rules accepted it)."""
        table = batch.table
        index = table.column_names.index(column)
        target = table.column(index).combine_chunks()
        mask = pc.equal(pa.array(range(table.num_rows), pa.int64()), row)
        nulled = pc.if_else(mask, pa.scalar(None, target.type), target)
        table = table.set_column(index, table.field(index), nulled)
        field_name = next((c.field for c in self.columns if c.name == column), column)
        changes = {**batch.row_changes}
        changes[row] = [*changes.get(row, ()), {"field": field_name, "change": "NULLED", "reason": reason}]
        meta_index = table.column_names.index(META)
        metas = table.column(meta_index).to_pylist()
        metas[row] = to_json_text({"changes": changes[row], "sync_id": self.sync_id})
        table = table.set_column(meta_index, table.field(meta_index), pa.array(metas, pa.string()))
        changed = sorted(changes)
        return Batch(table, len(changed), changed, batch.empty_meta, changes)


def _merge(
    typed: list[ColumnResult], general: list[ColumnResult], typed_rows: list[int], general_rows: list[int]
) -> list[ColumnResult]:
    """Columns of the typed rows and of the general rows, back in the records' order."""
    order = pc.sort_indices(pa.array(typed_rows + general_rows, pa.int64()))
    out = []
    for a, b in zip(typed, general, strict=True):
        array = pa.concat_arrays([a.array, b.array.cast(a.array.type)]).take(order)
        changes = [(typed_rows[r], c, why) for r, c, why in a.changes]
        changes += [(general_rows[r], c, why) for r, c, why in b.changes]
        out.append(ColumnResult(array, sorted(changes, key=lambda x: x[0])))
    return out


def _repeat(value: int, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.int64()), n)


_V4_BYTE6 = bytes((b & 0x0F) | 0x40 for b in range(256))
_V4_BYTE8 = bytes((b & 0x3F) | 0x80 for b in range(256))
_HEX_POSITIONS = [p for p in range(36) if p not in (8, 13, 18, 23)]


def random_uuids(n: int) -> pa.Array:
    """``n`` random version-4 UUIDs in their canonical text form: the operating system's random
    bytes formatted in C (``_rows.uuid_text``), else with bytes operations (no Python object per
    UUID either way; see bench/README.md for the cost)."""
    random = os.urandom(16 * n)
    text = uuid_text(random)
    if text is None:
        text = _uuid_text(random, n)
    return pa.StringArray.from_buffers(n, _uuid_offsets(n), pa.py_buffer(text))


_OFFSETS: list[pa.Buffer] = []


def _uuid_offsets(n: int) -> pa.Buffer:
    """The offsets of ``n`` strings of 36 bytes (0, 36, 72, ...): a slice of one buffer kept for
    the largest ``n`` asked for (a batch's parts have the same size, so it is made once)."""
    kept = _OFFSETS[0] if _OFFSETS else None
    if kept is None or kept.size < 4 * (n + 1):
        size = max(n, PART_ROWS)
        kept = pa.array(range(0, 36 * size + 1, 36), pa.int32()).buffers()[1]
        _OFFSETS[:] = [kept]
    return kept.slice(0, 4 * (n + 1))


def _uuid_text(random: bytes, n: int) -> bytes:
    raw = bytearray(random)
    raw[6::16] = raw[6::16].translate(_V4_BYTE6)
    raw[8::16] = raw[8::16].translate(_V4_BYTE8)
    hexed = raw.hex().encode()
    text = bytearray(b"-" * (36 * n))
    for k, position in enumerate(_HEX_POSITIONS):
        text[position::36] = hexed[k::32]
    return bytes(text)


def _millis(value: Any, default: int) -> int:
    if type(value) is int and INT64_MIN // 1000 <= value <= INT64_MAX // 1000:
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value) and -(2**53) < value < 2**53:
        return int(value)
    return default


_TOKENS_OF = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _raw_fields(datas: Sequence[Any]) -> list[dict[str, msgspec.Raw]] | None:
    """Each ``data`` object's fields as their exact JSON tokens; None when one is not an object
    msgspec can split (then every value goes by the per-value rules)."""
    try:
        return [_TOKENS_OF.decode(d) for d in datas]
    except DECODE_ERRORS:
        return None
