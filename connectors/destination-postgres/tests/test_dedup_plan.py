"""The MERGE of append_dedup is forced to probe the key index only when a usable one exists."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from dbkit import load_config
from dbkit.destination import WriteContext
from dbkit.testing.suites import ITEM_SCHEMA, DestinationSuite, item, stream, sync_messages
from destination_postgres import PostgresDestination
from destination_postgres.dedup import PostgresMerge

pytestmark = pytest.mark.postgres
catalog = DestinationSuite.catalog
NAME = "items"


def _usable(pg: Any) -> bool:
    dialect = PostgresDestination.dialect_class(load_config(PostgresDestination.config_model, pg.config()))
    with pg.engine.connect() as conn:
        target = sa.Table(NAME, sa.MetaData(), schema="public", autoload_with=conn)
        merger = dialect.merger
        assert isinstance(merger, PostgresMerge)
        return merger.key_index_usable(conn, target, ["id"], WriteContext())


def test_a_partial_index_on_the_key_does_not_force_the_index_plan(pg: Any) -> None:
    cat = catalog([stream(NAME, ITEM_SCHEMA, pk=["id"])], "append_dedup")
    pg.write(cat, sync_messages(NAME, [item(i, f"v{i}", 1) for i in range(1, 50)])).raise_on_failure()
    assert _usable(pg), "the loader's own key index is usable"

    indexes = [r[0] for r in pg.query("SELECT indexname FROM pg_indexes WHERE tablename = :t", t=NAME)]
    for name in indexes:
        pg.execute(f'DROP INDEX public."{name}"')
    # a user's partial index starts with the key: the loader keeps it, but it cannot be probed
    pg.execute(f"CREATE INDEX items_recent ON public.{NAME} (id) WHERE id > 40")
    assert not _usable(pg)

    # the next sync still deduplicates exactly
    updates = [item(i, f"w{i}", 2) for i in range(1, 50, 7)]
    pg.write(cat, sync_messages(NAME, updates)).raise_on_failure()
    rows = {r["id"]: r["name"] for r in pg.rows(cat, NAME)}
    assert len(rows) == 49
    assert all(rows[i] == (f"w{i}" if (i - 1) % 7 == 0 else f"v{i}") for i in range(1, 50))
