"""Cursor values above every real one (``infinity`` timestamps and dates, ``Infinity`` and
``NaN`` numbers) never become the saved position, against real PostgreSQL.

Before, one ``infinity`` in the cursor column became the position, and every later read asked
for ``cursor >= 'infinity'``: no new row was ever read again, and nothing said so. The rule now
(README, "Cursor incremental"): the position is the largest real value; the rows above every
real value are read, after the others, by every incremental read (a repeat each time, never a
loss), and each read that finds any logs a warning naming the stream, the column and what to
do. A saved position that is itself such a value is dropped with a warning: the table is read
from the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from dbkit.testing import RunResult, configured_catalog
from dbkit.testing.suites import PostgresSourceHarness


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


CASES = [
    ("timestamptz", "'2024-01-0{}T10:00:00+00'", ["'infinity'"], "2024-01-05 10:00:00+00"),
    ("timestamp", "'2024-01-0{}T10:00:00'", ["'infinity'", "'infinity'"], "2024-01-05 10:00:00"),
    ("date", "'2024-01-0{}'", ["'infinity'", "'-infinity'"], "2024-01-05"),
    ("double precision", "{}.5", ["'Infinity'", "'NaN'"], "5.5"),
    ("numeric", "{}.25", ["'Infinity'", "'NaN'"], "5.25"),
]


def warnings_of(result: RunResult) -> list[str]:
    return [m["log"]["message"] for m in result.of_type("LOG") if m["log"]["level"] == "WARN"]


@pytest.mark.postgres
@pytest.mark.parametrize(("sql_type", "real", "special", "position"), CASES, ids=[c[0] for c in CASES])
def test_values_above_every_real_one_never_become_the_position(
    sql_type: str,
    real: str,
    special: list[str],
    position: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    source = Source(request, tmp_path)
    values = [f"({i}, {real.format(i)})" for i in range(1, 6)]
    values += [f"({100 + i}, {v})" for i, v in enumerate(special)]
    source.execute(
        f"CREATE TABLE events (id integer PRIMARY KEY, cur {sql_type})",
        f"INSERT INTO events VALUES {', '.join(values)}",
    )
    stream = source.runner().discover(source.config()).raise_on_failure().stream("events", "public")
    catalog = configured_catalog([stream], sync_mode="incremental", cursor_field=["cur"])
    config = source.config(checkpoint_records=2)
    # -infinity is the smallest value there is, not above the real ones: read once, like any other
    above = {100 + i for i, v in enumerate(special) if not v.startswith("'-")}

    first = source.runner().read(config, catalog).raise_on_failure()
    assert {r["id"] for r in first.records("events")} == {
        1,
        2,
        3,
        4,
        5,
        *{100 + i for i in range(len(special))},
    }
    assert first.stream_states("events")[-1]["position"]["cursor"] == position  # type: ignore[index]
    (warning,) = warnings_of(first)
    assert "events" in warning
    assert "'cur'" in warning
    assert f"{len(above)} row" in warning
    assert "every sync" in warning
    assert "choose another cursor" in warning
    for before_state in first.states("events")[:-1]:  # resuming mid-read loses nothing
        resumed = source.runner().read(config, catalog, [before_state]).raise_on_failure()
        assert above <= {r["id"] for r in resumed.records("events")}

    source.execute(f"INSERT INTO events VALUES (6, {real.format(6)})")
    second = source.runner().read(config, catalog, first.states("events")[-1:]).raise_on_failure()
    assert sorted(r["id"] for r in second.records("events")) == sorted({6, *above})
    assert len(warnings_of(second)) == 1


@pytest.mark.postgres
def test_a_saved_position_at_infinity_is_dropped_with_a_warning(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A STATE written before the rule (its position is 'infinity') would keep the stream frozen:
    the read says so and reads the table from the start."""
    source = Source(request, tmp_path)
    source.execute(
        "CREATE TABLE events (id integer PRIMARY KEY, cur timestamptz)",
        "INSERT INTO events VALUES (1, '2024-01-01+00'), (2, 'infinity'), (3, '2025-01-01+00')",
    )
    stream = source.runner().discover(source.config()).raise_on_failure().stream("events", "public")
    catalog = configured_catalog([stream], sync_mode="incremental", cursor_field=["cur"])
    frozen: dict[str, Any] = {
        "type": "STREAM",
        "stream": {
            "stream_descriptor": {"name": "events", "namespace": "public"},
            "stream_state": {
                "v": 1,
                "mode": "incremental",
                "cursor_field": ["cur"],
                "position": {"cursor": "infinity", "seen": ["0123456789abcdef"]},
            },
        },
    }
    result = source.runner().read(source.config(), catalog, [frozen]).raise_on_failure()
    assert sorted(r["id"] for r in result.records("events")) == [1, 2, 3]
    assert any("saved position" in w and "from the start" in w for w in warnings_of(result))
    assert result.stream_states("events")[-1]["position"]["cursor"] == "2025-01-01 00:00:00+00"  # type: ignore[index]
