"""source-postgres CDC edges: which updates delete their old key (REPLICA IDENTITY FULL marks every
column as the identity: an update that keeps the primary key must not delete its own row),
ALTER TABLE between and during syncs, big and many transactions, tables added to the
publication later, and both ``lsn_commit_behaviour`` values."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from dbkit.testing.runner import RunResult, configured_catalog
from dbkit.testing.suites import CdcSuite

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DELETED = "_ab_cdc_deleted_at"


def _read_module() -> Any:
    """test_cdc_read's harness (test modules cannot import each other in importlib mode)."""
    path = Path(__file__).with_name("test_cdc_read.py")
    spec = importlib.util.spec_from_file_location("_source_postgres_cdc_read_harness", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Harness = _read_module().PostgresCdc


class Rig:
    """One CDC connection: its source, catalog, config and the state the destination echoed."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path, **config: Any) -> None:
        self.source = Harness(request, tmp_path)
        self.overrides = config
        self.state: dict[str, Any] | None = None
        self.catalog: dict[str, Any] = {}

    def sql(self, *statements: str) -> None:
        self.source.execute(*statements)

    def q(self, table: str) -> str:
        return str(self.source.qualified(table))

    def config(self, **method: Any) -> dict[str, Any]:
        config = self.source.cdc_config(**self.overrides)
        config["replication_method"].update(method)
        return dict(config)

    def discover(self, *tables: str) -> dict[str, Any]:
        found = self.source.runner().discover(self.config()).raise_on_failure()
        streams = [found.stream(t, self.source.namespace) for t in tables]
        self.catalog = configured_catalog(
            streams, sync_mode="incremental", destination_sync_mode="append_dedup"
        )
        return self.catalog

    def read(self, catalog: dict[str, Any] | None = None, **method: Any) -> RunResult:
        states = [self.state] if self.state is not None else None
        return self.source.runner().read(self.config(**method), catalog or self.catalog, states)

    def sync(self, catalog: dict[str, Any] | None = None, **method: Any) -> RunResult:
        """A read that must succeed; its last state is echoed to the next."""
        run = self.read(catalog, **method).raise_on_failure()
        self.state = CdcSuite.last_state(run)
        return run

    def position(self) -> int:
        assert self.state is not None
        return int(self.state["global"]["shared_state"]["position"]["lsn"])

    def confirmed(self) -> int:
        from source_postgres.cdc import parse_lsn

        row = self.source.slot_row()
        assert row is not None
        return int(parse_lsn(row["confirmed"]))


def changes(run: RunResult, table: str) -> list[tuple[str, dict[str, Any]]]:
    """``("d" | "u", data without meta columns)`` per record, in order."""
    return [
        ("d" if r.get(DELETED) else "u", {k: v for k, v in r.items() if not k.startswith("_ab_cdc_")})
        for r in run.records(table)
    ]


BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) AS i)"


def test_an_update_keeping_its_key_deletes_nothing(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """REPLICA IDENTITY FULL (and DEFAULT, and an identity index): an update deletes the old row
    only when its primary key changed, whatever the key's type (numeric and timestamptz text
    forms, composite keys) and with an unchanged TOASTed value beside it."""
    rig = Rig(request, tmp_path)
    rig.sql(
        f"CREATE TABLE {rig.q('num_k')} (k numeric(12,4) PRIMARY KEY, v int)",
        f"CREATE TABLE {rig.q('ts_k')} (k timestamptz PRIMARY KEY, v int)",
        f"CREATE TABLE {rig.q('comp_k')} (a int, b text, v int, doc text, PRIMARY KEY (a, b))",
        f"CREATE TABLE {rig.q('idx_k')} (id int PRIMARY KEY, u int NOT NULL UNIQUE, v int)",
        f"CREATE TABLE {rig.q('def_k')} (a int, b text, v int, PRIMARY KEY (a, b))",
        f"INSERT INTO {rig.q('num_k')} VALUES (1.5, 0), (2, 0)",
        f"INSERT INTO {rig.q('ts_k')} VALUES ('2024-01-02 03:04:05.123456+02', 0)",
        f"INSERT INTO {rig.q('comp_k')} VALUES (1, 'x', 0, {BIG}), (2, 'y', 0, 'small')",
        f"INSERT INTO {rig.q('idx_k')} VALUES (1, 10, 0)",
        f"INSERT INTO {rig.q('def_k')} VALUES (1, 'x', 0)",
    )
    tables = ("num_k", "ts_k", "comp_k", "idx_k", "def_k")
    rig.source.capture(*tables)  # REPLICA IDENTITY FULL
    rig.sql(
        f"ALTER TABLE {rig.q('idx_k')} REPLICA IDENTITY USING INDEX idx_k_u_key",
        f"ALTER TABLE {rig.q('def_k')} REPLICA IDENTITY DEFAULT",
    )
    rig.discover(*tables)
    rig.sync()
    rig.sql(
        f"UPDATE {rig.q('num_k')} SET v = 1",
        f"UPDATE {rig.q('ts_k')} SET v = 1",
        f"UPDATE {rig.q('comp_k')} SET v = 1 WHERE a = 1",  # doc: an unchanged TOASTed value
        f"UPDATE {rig.q('comp_k')} SET b = 'z' WHERE a = 2",  # the key changed: old row deleted
        f"UPDATE {rig.q('num_k')} SET k = 3 WHERE k = 2",
        f"UPDATE {rig.q('idx_k')} SET u = 11",  # the identity changed, the primary key did not
        f"UPDATE {rig.q('idx_k')} SET id = 2",  # the primary key changed, the identity did not
        f"UPDATE {rig.q('def_k')} SET v = 2",
        f"UPDATE {rig.q('def_k')} SET a = 3",
    )
    run = rig.sync()
    assert changes(run, "num_k") == [
        ("u", {"k": 1.5, "v": 1}),
        ("u", {"k": 2, "v": 1}),
        ("d", {"k": 2, "v": 1}),
        ("u", {"k": 3, "v": 1}),
    ]
    assert changes(run, "ts_k") == [("u", {"k": "2024-01-02T01:04:05.123456+00:00", "v": 1})]
    doc = run.records("comp_k")[0]["doc"]
    assert len(doc) == 9600
    assert changes(run, "comp_k") == [
        ("u", {"a": 1, "b": "x", "v": 1, "doc": doc}),
        ("d", {"a": 2, "b": "y", "v": 0, "doc": "small"}),
        ("u", {"a": 2, "b": "z", "v": 0, "doc": "small"}),
    ]
    assert changes(run, "def_k") == [
        ("u", {"a": 1, "b": "x", "v": 2}),
        ("d", {"a": 1, "b": "x"}),
        ("u", {"a": 3, "b": "x", "v": 2}),
    ]
    # the identity index's old key tells nothing about the primary key: no delete either way
    # (a primary key change under an identity that does not cover it is not seen as one)
    assert changes(run, "idx_k") == [("u", {"id": 1, "u": 11, "v": 0}), ("u", {"id": 2, "u": 11, "v": 0})]
