"""keys_unique: whether a staged batch needs ranking before it is merged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from dbkit.db.types import AirbyteType
from dbkit.destination.merge import keys_unique

INT = {"id": AirbyteType.INTEGER, "region": AirbyteType.STRING}


def _parts(*columns: Mapping[str, Sequence[object]]) -> list[pa.Table]:
    return [pa.table(dict(c)) for c in columns]


def test_unique_and_repeated_keys_across_parts() -> None:
    assert keys_unique(_parts({"id": [1, 2]}, {"id": [3, 4]}), ["id"], INT)
    assert not keys_unique(_parts({"id": [1, 2]}, {"id": [3, 1]}), ["id"], INT)
    assert keys_unique(_parts({"id": []}), ["id"], {"id": AirbyteType.INTEGER})


def test_rows_with_a_null_in_the_key_are_never_merged_so_they_do_not_count() -> None:
    assert keys_unique(_parts({"id": [None, None, 1]}), ["id"], INT)
    assert not keys_unique(_parts({"id": [None, 1, 1]}), ["id"], INT)
    two: dict[str, list[object]] = {"id": [1, 1, None, None], "region": ["eu", None, "us", "us"]}
    assert keys_unique(_parts(two), ["id", "region"], INT)


def test_composite_keys() -> None:
    assert keys_unique(_parts({"id": [1, 1, 2], "region": ["eu", "us", "eu"]}), ["id", "region"], INT)
    assert not keys_unique(_parts({"id": [1, 1], "region": ["eu", "eu"]}), ["id", "region"], INT)


def test_keys_only_the_database_can_compare_are_never_called_unique() -> None:
    # "1" and "1.0" are one numeric; two JSON texts may be one jsonb value
    for kind in (AirbyteType.NUMBER, AirbyteType.OBJECT, AirbyteType.TIME_WITH_TIMEZONE):
        assert not keys_unique(_parts({"id": ["1", "1.0"]}), ["id"], {"id": kind})
        assert not keys_unique(_parts({"id": ["1", "2"]}), ["id"], {"id": kind})
    assert not keys_unique(_parts({"id": [1]}), [], INT)
