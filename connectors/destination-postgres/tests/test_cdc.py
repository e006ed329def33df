"""cdc_deletion_mode: hard_delete removes a key whose newest record is a deletion; soft_delete
keeps that deletion as the key's row, ``_ab_cdc_deleted_at`` set. append mode stores deletions
as rows in both modes."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing.suites import (
    BASE_MS,
    ITEM_SCHEMA,
    DestinationSuite,
    deleted,
    item,
    stream,
    sync_messages,
)

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "items"
PROPS = {**ITEM_SCHEMA, "_ab_cdc_deleted_at": json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE)}


@pytest.mark.parametrize("mode", ["hard_delete", "soft_delete"])
def test_deletions_in_dedup(pg: Any, mode: str) -> None:
    cat = catalog([stream(NAME, PROPS, pk=["id"])], "append_dedup")
    pg.write(
        cat, sync_messages(NAME, [item(i, f"v{i}", 2) for i in (1, 2, 3)]), cdc_deletion_mode=mode
    ).raise_on_failure()
    changes = [deleted(1, 5), deleted(2, 1), deleted(3, 4), item(3, "back", 6)]
    pg.write(
        cat, sync_messages(NAME, changes, at=BASE_MS + 1000), cdc_deletion_mode=mode, batch_records=2
    ).raise_on_failure()
    rows = {r["id"]: r for r in pg.rows(cat, NAME)}
    # 2: the deletion is older than the stored row (ignored); 3: re-inserted after its deletion
    assert rows[2]["name"] == "v2"
    assert rows[2]["_ab_cdc_deleted_at"] is None
    assert rows[3]["name"] == "back"
    assert rows[3]["_ab_cdc_deleted_at"] is None
    if mode == "hard_delete":
        assert sorted(rows) == [2, 3], "the deleted key is gone"
    else:
        assert sorted(rows) == [1, 2, 3], "the deleted key keeps its row"
        assert rows[1]["name"] == "gone1"
        assert rows[1]["_ab_cdc_deleted_at"] is not None
        assert rows[1]["_ab_cdc_deleted_at"].isoformat() == "2024-01-05T00:00:00+00:00"


@pytest.mark.parametrize("mode", ["hard_delete", "soft_delete"])
def test_append_mode_stores_deletions_as_rows(pg: Any, mode: str) -> None:
    cat = catalog([stream(NAME, PROPS, pk=["id"])], "append")
    pg.write(
        cat, sync_messages(NAME, [item(1, "v1", 2), deleted(1, 5)]), cdc_deletion_mode=mode
    ).raise_on_failure()
    rows = pg.rows(cat, NAME)
    assert [(r["id"], r["name"], r["_ab_cdc_deleted_at"] is not None) for r in rows] == [
        (1, "gone1", True),
        (1, "v1", False),
    ]
