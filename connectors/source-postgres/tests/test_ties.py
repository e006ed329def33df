"""Many rows at the maximum cursor value, against real PostgreSQL.

10,000 rows share the table's maximum ``updated_at``, and a STATE is emitted every 1,000 records.
Past the first 1,000 rows at that value the hashes of the rows emitted there are no longer kept,
so the mid-read STATEs record ``(cursor, key)`` plus the count and sum of those hashes: resuming
from the second STATE emits exactly the rows not emitted before it (what the README promises),
and so does resuming from every other mid-read STATE, losing none and repeating none. A row
changed at that value before the resume point makes the resumed read read them all again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dbkit.testing import configured_catalog
from dbkit.testing.suites import PostgresSourceHarness

TIES = 10_000
EARLIER = 25


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


@pytest.mark.postgres
@pytest.mark.slow
def test_resuming_among_ten_thousand_ties_at_the_maximum_is_exact(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = Source(request, tmp_path)
    source.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, note text)",
        f"INSERT INTO events SELECT i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute', "
        f"'n' || i FROM generate_series(1, {EARLIER}) AS i",
        f"INSERT INTO events SELECT i, '2024-06-01 12:00:00.123456+00', 'n' || i "
        f"FROM generate_series({EARLIER + 1}, {EARLIER + TIES}) AS i",
    )
    stream = source.runner().discover(source.config()).raise_on_failure().stream("events", "public")
    catalog = configured_catalog([stream], sync_mode="incremental", cursor_field=["updated_at"])
    config = source.config(checkpoint_records=1000)
    first = source.runner().read(config, catalog).raise_on_failure()
    everything = set(range(1, EARLIER + TIES + 1))
    ids = [r["id"] for r in first.records("events")]
    assert sorted(ids) == sorted(everything)

    checkpoints: list[tuple[list[int], dict[str, Any]]] = []
    emitted: list[int] = []
    for message in first.messages:
        if message["type"] == "RECORD":
            emitted.append(message["record"]["data"]["id"])
        elif message["type"] == "STATE":
            checkpoints.append((list(emitted), message["state"]))
    assert len(checkpoints) >= 10
    before, second = checkpoints[1]
    position = second["stream"]["stream_state"]["position"]
    assert "after_key" in position, position
    assert position.get("seen_overflow"), position

    def resumed_from(state: dict[str, Any]) -> Counter[int]:
        result = source.runner().read(config, catalog, [state]).raise_on_failure()
        return Counter(r["id"] for r in result.records("events"))

    got = resumed_from(second)
    assert sum(got.values()) == len(everything) - len(before) == EARLIER + TIES - 2000
    assert set(got) == everything - set(before)
    assert max(got.values()) == 1
    for before, state in checkpoints[2:-1]:  # every later mid-read STATE: exact too
        got = resumed_from(state)
        assert set(got) == everything - set(before), len(before)
        assert max(got.values()) == 1, len(before)

    # a row at the maximum, before the resume point, changed since: all of them are read again
    source.execute(f"UPDATE events SET note = 'changed' WHERE id = {EARLIER + 10}")
    result = source.runner().read(config, catalog, [second]).raise_on_failure()
    notes = {r["id"]: r["note"] for r in result.records("events")}
    assert set(notes) == set(range(EARLIER + 1, EARLIER + TIES + 1))
    assert notes[EARLIER + 10] == "changed"
