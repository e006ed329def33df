"""The CSV a part is sent as: rendered ahead on the builder's thread (``MySqlBulkLoader.encode``)
and sent once, or rendered at the load (offline: no database)."""

from __future__ import annotations

import pyarrow as pa

from dbkit.destination import Batch
from destination_mysql.loading import MySqlBulkLoader, _csv_chunks, to_csv


def _batch() -> Batch:
    table = pa.table({"id": pa.array([1, 2], pa.int64()), "s": pa.array(['a "q"', None], pa.string())})
    return Batch(table, 0)


def _loader() -> MySqlBulkLoader:
    return MySqlBulkLoader.__new__(MySqlBulkLoader)  # encode uses no state of the loader


def test_a_part_rendered_ahead_is_sent_as_rendered_and_dropped_once_sent() -> None:
    batch = _batch()
    batch.encoded = _loader().encode(batch)
    rendered = batch.encoded[1]
    assert rendered == to_csv(batch.table) == b'1,"a ""q"""\n2,\\N\n'
    offsets: list[tuple[int, int]] = []
    (sent,) = list(_csv_chunks([batch], ["id", "s"], offsets))
    assert sent is rendered  # the very bytes made ahead, not rendered again
    assert batch.encoded is None  # memory: held until sent, not for the rest of the batch
    assert offsets == [(0, 1)]
    (again,) = list(_csv_chunks([batch], ["id", "s"], []))  # a reload renders it again
    assert again == rendered
    assert again is not rendered


def test_a_part_rendered_for_other_columns_is_rendered_again_for_the_load() -> None:
    batch = _batch()
    batch.encoded = _loader().encode(batch)
    (sent,) = list(_csv_chunks([batch], ["id"], []))  # the target lacks column s
    assert sent == b"1\n2\n"


def test_an_empty_part_is_neither_rendered_nor_sent() -> None:
    empty = Batch(_batch().table.slice(0, 0), 0)
    assert _loader().encode(empty) is None
    assert list(_csv_chunks([empty], ["id", "s"], [])) == []
