"""Reads against the machine's MariaDB beyond the acceptance suite: a read killed with SIGKILL in
the middle of a table resumes from its last STATE without losing a row, for a full refresh in
(composite, binary) primary-key order and for a cursor read whose cursor values are shared by
many rows; several streams are read at once; key and cursor values of every bind kind (unsigned
bigint beyond 2**63, decimal, double, float, date/time, text, bytes) resume exactly."""

from __future__ import annotations

from typing import Any

import pytest

from dbkit.testing import configured_catalog

pytestmark = pytest.mark.mysql

ROWS = 6000


def create_events(source: Any, name: str = "events") -> None:
    source.run(
        f"CREATE TABLE {name} (k VARBINARY(8) NOT NULL, n INT NOT NULL, seq DATETIME(6) NOT NULL, "
        "note VARCHAR(60), PRIMARY KEY (k, n), KEY (seq))",
        f"INSERT INTO {name} SELECT UNHEX(LPAD(HEX(seq % 7), 2, '0')), seq, "
        "'2024-01-01 00:00:00' + INTERVAL (seq DIV 50) SECOND, CONCAT('note ', seq) "
        f"FROM seq_1_to_{ROWS}",
    )


def stream_of(source: Any, name: str) -> dict[str, Any]:
    return source.runner().discover(source.config()).raise_on_failure().stream(name, source.namespace)


def ids(records: list[dict[str, Any]]) -> list[int]:
    return [r["n"] for r in records]


@pytest.mark.parametrize("incremental", [False, True], ids=["full_refresh", "incremental"])
def test_a_read_killed_mid_table_resumes_without_loss(source: Any, incremental: bool) -> None:
    create_events(source)
    stream = stream_of(source, "events")
    assert stream["source_defined_primary_key"] == [["k"], ["n"]]
    catalog = (
        configured_catalog(
            [stream], sync_mode="incremental", cursor_field=["seq"], destination_sync_mode="append_dedup"
        )
        if incremental
        else configured_catalog([stream])
    )
    config = source.config(checkpoint_records=500)
    killed = source.runner().read(config, catalog, kill_after_states=4)
    assert killed.killed, "the read ended before its fourth state"
    emitted = ids(killed.records("events"))
    assert 0 < len(emitted) < ROWS
    covered: list[int] = []
    for message in killed.messages:  # the rows before the last STATE
        if message["type"] == "RECORD":
            covered.append(message["record"]["data"]["n"])
        elif message["type"] == "STATE":
            before_last = list(covered)
    resumed = source.runner().read(config, catalog, [killed.states("events")[-1]]).raise_on_failure()
    again = ids(resumed.records("events"))
    assert len(again) == len(set(again)), "the resumed read emitted a row twice"
    missing = set(range(1, ROWS + 1)) - set(emitted) - set(again)
    assert not missing, f"rows lost across the kill: {sorted(missing)[:10]}..."
    repeated = set(before_last) & set(again)
    assert not repeated, f"rows before the last state were read again: {sorted(repeated)[:10]}"
    assert resumed.statuses("events") == ["STARTED", "COMPLETE"]


def test_streams_are_read_concurrently(source: Any) -> None:
    names = ["events_a", "events_b", "events_c"]
    for name in names:
        create_events(source, name)
    streams = [stream_of(source, name) for name in names]
    config = source.config(max_concurrent_streams=3, checkpoint_records=1000)
    result = source.runner().read(config, configured_catalog(streams)).raise_on_failure()
    for name in names:
        assert sorted(ids(result.records(name))) == list(range(1, ROWS + 1)), name
        assert result.statuses(name) == ["STARTED", "COMPLETE"]
    # at once: every stream started before the first one completed
    statuses = [
        (m["trace"]["stream_status"]["stream_descriptor"]["name"], m["trace"]["stream_status"]["status"])
        for m in result.messages
        if m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS"
    ]
    first_complete = next(i for i, (_, status) in enumerate(statuses) if status == "COMPLETE")
    assert {n for n, status in statuses[:first_complete] if status == "STARTED"} == set(names), statuses


KEY_TYPES = [
    ("bigint unsigned", ["18446744073709551613", "18446744073709551614", "18446744073709551615"]),
    ("decimal(65,30)", ["-1.000000000000000000000000000001", "0", "99999999999999999999999999999999999.5"]),
    ("double", ["0.1e0", "0.2e0", "1e300"]),
    ("float", ["1.1", "2.2", "3.3"]),
    (
        "datetime(6)",
        ["'2024-01-01 00:00:00.000001'", "'2024-01-01 00:00:00.000002'", "'9999-12-31 23:59:59'"],
    ),
    ("timestamp(6)", ["'2024-01-01 00:00:00.1'", "'2024-01-01 00:00:00.2'", "'2030-01-01 00:00:00'"]),
    ("date", ["'0000-00-00'", "'2024-02-29'", "'9999-12-31'"]),
    ("time(6)", ["'-838:59:59'", "'00:00:00.5'", "'838:59:59'"]),
    ("varchar(20) character set latin1", ["'a'", "'é'", "'ÿ'"]),
    ("varbinary(4)", ["x'00'", "x'7f'", "x'ff00'"]),
]


@pytest.mark.parametrize(("sql_type", "values"), KEY_TYPES, ids=[t for t, _ in KEY_TYPES])
def test_keys_and_cursors_of_every_bind_kind_resume_exactly(
    source: Any, sql_type: str, values: list[str]
) -> None:
    """Three rows per value (``i`` numbers the rows): a full refresh keyed by (value, i) and a
    cursor read on the value, resumed from every STATE, emit each row exactly once."""
    source.run(
        f"CREATE TABLE kinds (v {sql_type} NOT NULL, i INT NOT NULL, PRIMARY KEY (v, i))",
        "INSERT INTO kinds VALUES "
        + ", ".join(f"({v}, {j * 3 + i})" for j, v in enumerate(values) for i in range(3)),
    )
    stream = stream_of(source, "kinds")
    config = source.config(checkpoint_records=1)
    total = len(values) * 3
    cursor = sql_type != "varbinary(4)"  # bytes are no cursor (Airbyte's binary type)
    for catalog in (
        configured_catalog([stream]),
        configured_catalog(
            [stream], sync_mode="incremental", cursor_field=["v"], destination_sync_mode="append_dedup"
        ),
    )[: 2 if cursor else 1]:
        full = source.runner().read(config, catalog).raise_on_failure()
        rows = [(r["v"], r["i"]) for r in full.records("kinds")]
        assert len(rows) == total
        assert len(set(map(repr, rows))) == total
        seen: list[Any] = []
        for message in full.messages:
            if message["type"] == "RECORD":
                seen.append(repr((message["record"]["data"]["v"], message["record"]["data"]["i"])))
            elif message["type"] == "STATE":
                resumed = source.runner().read(config, catalog, [message["state"]]).raise_on_failure()
                after = [repr((r["v"], r["i"])) for r in resumed.records("kinds")]
                assert len(after) == len(set(after)), f"{sql_type}: a row twice after {len(seen)} rows"
                assert set(seen) | set(after) == set(map(repr, rows)), (
                    f"{sql_type}: rows lost after {len(seen)}"
                )
                if len(seen) < total:
                    assert not set(seen) & set(after), f"{sql_type}: repeated after {len(seen)} rows"
