"""`dbkit sync` of source-postgres CDC into destination-postgres (append_dedup, hard deletes), on
the throwaway wal_level=logical server: after the initial snapshot and after each round of
inserts, updates (of the key too), deletes and an idle run, the destination table equals the
source table row for row with no key twice, and the slot's confirmed_flush_lsn moves forward only
to positions the destination acknowledged (the state file's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit.testing.suites import PEOPLE, CdcSuite, people_table

from .test_cdc_read import PostgresCdc

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_dbkit_sync_keeps_a_dedup_table_equal_to_the_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from source_postgres.cdc import parse_lsn

    source = PostgresCdc(request, tmp_path)
    people_table().create(source)
    source.capture(PEOPLE)
    source_config = tmp_path / "source.json"
    source_config.write_text(json.dumps(source.cdc_config(replication_method={
        "method": "CDC", "replication_slot": source.slot, "publication": source.publication,
        "initial_waiting_seconds": 5})))  # fmt: skip
    # the destination is another database (records keep their namespace, `public`)
    warehouse = request.getfixturevalue("postgres_db")
    dest: dict[str, Any] = {"host": warehouse.host, "port": warehouse.port, "database": warehouse.database,
                            "username": warehouse.user, "ssl_mode": {"mode": "disable"}}  # fmt: skip
    if warehouse.password:
        dest["password"] = warehouse.password
    dest_config = tmp_path / "dest.json"
    dest_config.write_text(json.dumps(dest))
    state_file = tmp_path / "state.json"

    def sync() -> None:
        code = subprocess.run(
            [
                str(Path(sys.executable).with_name("dbkit")), "sync",
                "--source", "source-postgres", "--source-config", str(source_config),
                "--destination", "destination-postgres", "--destination-config", str(dest_config),
                "--state-file", str(state_file), "--streams", PEOPLE, "--no-progress",
            ],
            check=False,
            timeout=300,
        ).returncode  # fmt: skip
        assert code == 0

    def destination_rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(**warehouse.connection_params()) as conn:
            rows = conn.execute(f'SELECT id, name, seq, note FROM public."{PEOPLE}" ORDER BY id').fetchall()
        return [tuple(r) for r in rows]

    def source_rows() -> list[tuple[Any, ...]]:
        rows = source.connect().execute(
            f"SELECT id, name, seq, note FROM {source.qualified(PEOPLE)} ORDER BY id"
        )
        return [tuple(r) for r in rows.fetchall()]

    def acknowledged_lsn() -> int:
        doc = json.loads(state_file.read_text())
        text = json.dumps(doc)
        assert '"GLOBAL"' in text or "shared_state" in text, "a CDC sync keeps a GLOBAL state"
        shared = _find(doc, "shared_state")
        return int(shared["position"]["lsn"])

    confirmed: list[int] = []
    for round_ in range(4):
        if round_ in (1, 2):
            CdcSuite().change_everything(source, 1000 * round_)
        sync()
        got = destination_rows()
        assert got == source_rows(), f"round {round_}: the destination differs from the source"
        assert len({r[0] for r in got}) == len(got), "a key twice"
        slot = source.slot_row()
        assert slot is not None
        now = parse_lsn(slot["confirmed"])
        # the slot is confirmed at the start of a sync, to the state the destination echoed before
        assert now <= acknowledged_lsn(), "the slot was confirmed past what the destination acknowledged"
        assert not confirmed or now >= confirmed[-1], "the slot's confirmed position went back"
        confirmed.append(now)
    assert confirmed[-1] > confirmed[0], "acknowledged positions were never confirmed to the slot"


def _find(doc: Any, key: str) -> Any:
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for value in doc.values():
            found = _find(value, key)
            if found is not None:
                return found
    if isinstance(doc, list):
        for value in doc:
            found = _find(value, key)
            if found is not None:
                return found
    return None
