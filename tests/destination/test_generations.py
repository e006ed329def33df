"""The generation-id rule of a refresh (:mod:`dbkit.destination.generations`), case by case, and
what it reads from a real table (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbkit import load_config
from dbkit.destination import GENERATION_ID, Held, Target, choose_target, held, refresh_minimum
from dbkit.protocol import parse_configured_catalog
from destination_sqlite import SqliteDestination

EMPTY = Held(False, None)


def at(generation: int | None) -> Held:
    return Held(True, generation)


@pytest.mark.parametrize(
    ("tmp", "final", "minimum", "target"),
    [
        # a temporary table exists: resumed when empty or not older than the minimum
        (EMPTY, None, 3, Target.RESUME),
        (at(3), at(2), 3, Target.RESUME),
        (at(4), None, 3, Target.RESUME),
        (at(2), None, 3, Target.NEW),
        (at(None), None, 3, Target.NEW),  # NULL counts as generation 0
        # no temporary table: the final table is loaded directly when absent, empty or current
        (None, None, 1, Target.FINAL),
        (None, EMPTY, 1, Target.FINAL),
        (None, at(1), 1, Target.FINAL),  # PyAirbyte's second write: generation 1, minimum 1
        (None, at(7), 1, Target.FINAL),
        (None, at(1), 2, Target.NEW),  # the platform's next truncate refresh
        (None, at(None), 1, Target.NEW),
        # no generation ids: never a refresh done; a temporary table without generations resumed
        (None, None, None, Target.NEW),
        (None, at(None), None, Target.NEW),
        (at(None), None, None, Target.RESUME),
        (at(5), None, None, Target.NEW),
    ],
)
def test_choose_target(tmp: Held | None, final: Held | None, minimum: int | None, target: Target) -> None:
    assert choose_target(tmp, final, minimum) is target


def test_refresh_minimum() -> None:
    def stream(mode: str, generation: int | None, minimum: int | None) -> int | None:
        body = {"stream": {"name": "t", "json_schema": {}}, "sync_mode": "full_refresh"}
        extra = {"destination_sync_mode": mode, "generation_id": generation, "minimum_generation_id": minimum}
        (configured,) = parse_configured_catalog({"streams": [{**body, **extra}]}).streams
        return refresh_minimum(configured)

    assert stream("append", 1, 1) == 1
    assert stream("overwrite", 5, 5) == 5
    assert stream("overwrite", 5, 0) == 5, "an overwrite with minimum 0 replaces the older generations"
    assert stream("overwrite", None, None) is None


def test_held_reads_one_row(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    dialect = SqliteDestination.dialect_class(
        load_config(SqliteDestination.config_model, {"path": str(path)})
    )
    tables = dialect.tables
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE with_gen (x INTEGER, {GENERATION_ID} BIGINT)"))
        conn.execute(sa.text("CREATE TABLE old_layout (x INTEGER)"))
        assert held(conn, tables, None, "missing") is None
        assert held(conn, tables, None, "with_gen") == Held(False, None)
        assert held(conn, tables, None, "old_layout") == Held(False, None)
        conn.execute(sa.text(f"INSERT INTO with_gen (x, {GENERATION_ID}) VALUES (1, 4)"))
        conn.execute(sa.text("INSERT INTO old_layout (x) VALUES (1)"))
        assert held(conn, tables, None, "with_gen") == Held(True, 4)
        assert held(conn, tables, None, "old_layout") == Held(True, None)
    engine.dispose()
