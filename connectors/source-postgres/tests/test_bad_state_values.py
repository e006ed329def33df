"""A saved state of the right shape whose values the columns cannot take (a cursor "not-a-date",
text for a bigint key) is a config_error naming the value and the column, before anything is
read: a platform retries a system_error forever, and the raw database error tells nobody to
reset the stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from dbkit.testing import configured_catalog
from dbkit.testing.suites import PostgresSourceHarness


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    harness = Source(request, tmp_path)
    harness.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, note text)",
        "INSERT INTO events SELECT i, '2024-01-01'::timestamptz + i * interval '1 hour', 'n' "
        "FROM generate_series(1, 50) AS i",
    )
    return harness


def _state(stream_state: dict[str, Any]) -> list[dict[str, Any]]:
    descriptor = {"name": "events", "namespace": "public"}
    return [{"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": stream_state}}]


INCREMENTAL = {"v": 1, "mode": "incremental", "cursor_field": ["at"]}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("mode", "stream_state", "words"),
    [
        (
            "incremental",
            {**INCREMENTAL, "position": {"cursor": "not-a-date", "seen": []}},
            ["'position.cursor'", "'not-a-date'", "'at'"],
        ),
        (
            "incremental",
            {
                **INCREMENTAL,
                "position": {
                    "cursor": "2024-01-01 05:00:00+00",
                    "by": ["id"],
                    "after_key": ["x1"],
                    "seen": [],
                },
            },
            ["'position.after_key' (id)", "'x1'", "bigint"],
        ),
        ("full_refresh", {"v": 1, "mode": "full_refresh", "by": ["id"], "after": ["abc"]}, ["(id)", "'abc'"]),
    ],
)
def test_a_state_value_the_column_cannot_hold_is_a_config_error(
    source: Source, mode: str, stream_state: dict[str, Any], words: list[str]
) -> None:
    discovered = source.runner().discover(source.config()).raise_on_failure()
    catalog = configured_catalog(
        [discovered.stream("events", "public")],
        sync_mode=mode,
        cursor_field=["at"] if mode == "incremental" else None,
    )
    result = source.runner().read(source.config(), catalog, _state(stream_state))
    assert result.exit_code != 0
    (error,) = result.errors()
    assert error["failure_type"] == "config_error"
    assert "reset the stream" in error["message"]
    for word in words:
        assert word in error["message"]
    assert result.records("events") == []
    assert result.statuses("events") == ["STARTED", "INCOMPLETE"]


@pytest.mark.postgres
def test_good_state_values_still_resume(source: Source) -> None:
    discovered = source.runner().discover(source.config()).raise_on_failure()
    catalog = configured_catalog([discovered.stream("events", "public")])
    state = _state({"v": 1, "mode": "full_refresh", "by": ["id"], "after": ["40"]})
    result = source.runner().read(source.config(), catalog, state).raise_on_failure()
    assert sorted(r["id"] for r in result.records("events")) == list(range(41, 51))
