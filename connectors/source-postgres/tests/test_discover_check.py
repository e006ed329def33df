"""Discover and check against real PostgreSQL: every kind of relation, privileges, keys, cursors,
JSON schemas; reading partitioned tables, views, materialized views and foreign tables; the
check messages for schemas and grants; a column or table gone between discover and read;
ESTIMATE traces, stream statuses and record counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from dbkit.db import AirbyteType, json_schema_for
from dbkit.testing import RunResult, configured_catalog
from dbkit.testing.suites import PostgresSourceHarness

INT = json_schema_for(AirbyteType.INTEGER)
INT_NN = {"type": "integer"}
NUM = json_schema_for(AirbyteType.NUMBER)
STR = json_schema_for(AirbyteType.STRING)
TSTZ = json_schema_for(AirbyteType.TIMESTAMP_WITH_TIMEZONE)


class Source(PostgresSourceHarness):
    command: ClassVar[str] = "source-postgres"


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    return Source(request, tmp_path)


def names(result: RunResult) -> set[str]:
    return {s["name"] for s in result.catalog}


def relations(source: Source) -> None:
    """One relation of every kind, a few rows each."""
    db = source.database
    source.execute(
        """CREATE TABLE orders (
               id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, amount numeric(12,2),
               note text, payload jsonb, tags text[])""",
        """INSERT INTO orders VALUES
               (1, '2024-01-01 00:00+00', 10.50, 'a', '{"k": 1}', '{x,y}'),
               (2, '2024-01-02 00:00+00', NULL, 'b', NULL, '{}'),
               (3, '2024-01-03 00:00+00', 3, NULL, '[1]', NULL)""",
        "CREATE TABLE secrets (id integer PRIMARY KEY, value text)",
        "INSERT INTO secrets VALUES (1, 'hidden')",
        "CREATE TABLE blobs (b bytea, doc json, flag boolean)",  # no key, no cursor candidate
        "INSERT INTO blobs VALUES ('\\x00', '{}', true)",
        "CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 5",
        "CREATE MATERIALIZED VIEW order_totals AS SELECT count(*) AS n, sum(amount) AS total FROM orders",
        """CREATE TABLE measures (id integer NOT NULL, at date NOT NULL, v integer,
               PRIMARY KEY (id, at)) PARTITION BY RANGE (at)""",
        "CREATE TABLE measures_2023 PARTITION OF measures FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
        "CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        """INSERT INTO measures SELECT i, DATE '2023-10-01' + i, i
               FROM generate_series(1, 200) AS i""",
        "CREATE TABLE logs (line integer, at date NOT NULL) PARTITION BY LIST (at)",  # no key
        "CREATE TABLE logs_a PARTITION OF logs FOR VALUES IN ('2024-01-01')",
        "CREATE TABLE logs_b PARTITION OF logs DEFAULT",
        "INSERT INTO logs SELECT i, CASE WHEN i % 2 = 0 THEN DATE '2024-01-01' ELSE DATE '2024-02-02' END"
        " FROM generate_series(1, 50) AS i",
        "CREATE EXTENSION IF NOT EXISTS postgres_fdw",
        f"""CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
               OPTIONS (host '{db.host}', port '{db.port}', dbname '{db.database}')""",
        f"CREATE USER MAPPING FOR CURRENT_USER SERVER loopback OPTIONS (user '{db.user}'"
        + (f", password '{db.password}'" if db.password else "")
        + ")",
        """CREATE FOREIGN TABLE remote_orders (id bigint, note text)
               SERVER loopback OPTIONS (schema_name 'public', table_name 'orders')""",
        # a partitioned table with a foreign partition (its data in another schema)
        "CREATE TABLE mixed (n integer, part text NOT NULL) PARTITION BY LIST (part)",
        "CREATE TABLE mixed_local PARTITION OF mixed FOR VALUES IN ('local')",
        "CREATE SCHEMA elsewhere",
        "CREATE TABLE elsewhere.mixed_src (n integer, part text NOT NULL)",
        """CREATE FOREIGN TABLE mixed_remote PARTITION OF mixed FOR VALUES IN ('remote')
               SERVER loopback OPTIONS (schema_name 'elsewhere', table_name 'mixed_src')""",
        "INSERT INTO mixed_local SELECT i, 'local' FROM generate_series(1, 10) AS i",
        "INSERT INTO elsewhere.mixed_src SELECT i, 'remote' FROM generate_series(11, 15) AS i",
    )


@pytest.mark.postgres
def test_discover_lists_every_kind_of_relation_with_keys_cursors_and_schemas(source: Source) -> None:
    relations(source)
    result = source.runner().discover(source.config()).raise_on_failure()
    assert names(result) == {
        "orders",
        "secrets",
        "blobs",
        "big_orders",
        "order_totals",
        "measures",
        "logs",
        "remote_orders",
        "mixed",
    }, "partitions must not be streams of their own; every other relation must be"

    orders = result.stream("orders", "public")
    assert orders["json_schema"]["properties"] == {
        "id": INT_NN,
        "updated_at": {**TSTZ, "type": "string"},
        "amount": NUM,
        "note": STR,
        "payload": {},
        "tags": {"type": ["array", "null"], "items": STR},
    }
    assert orders["source_defined_primary_key"] == [["id"]]
    assert orders["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert orders["default_cursor_field"] == ["updated_at"]
    assert orders["is_resumable"] is True

    measures = result.stream("measures", "public")
    assert measures["source_defined_primary_key"] == [["id"], ["at"]]
    assert measures["is_resumable"] is True
    assert set(measures["json_schema"]["properties"]) == {"id", "at", "v"}

    blobs = result.stream("blobs", "public")
    assert blobs["supported_sync_modes"] == ["full_refresh"], "bytea/json/boolean... no cursor candidate"
    assert blobs.get("source_defined_primary_key", []) == []
    assert blobs["is_resumable"] is True  # by ctid

    view = result.stream("big_orders", "public")
    assert view.get("source_defined_primary_key", []) == []
    assert view["is_resumable"] is False
    assert view["json_schema"]["properties"] == {"id": INT, "amount": NUM}
    assert result.stream("order_totals", "public")["is_resumable"] is True
    assert result.stream("logs", "public")["is_resumable"] is True
    assert result.stream("mixed", "public")["is_resumable"] is False, "a foreign partition has no ctid"
    remote = result.stream("remote_orders", "public")
    assert remote["is_resumable"] is False
    assert remote["json_schema"]["properties"] == {"id": INT, "note": STR}


@pytest.mark.postgres
def test_discover_shows_only_what_the_user_may_select(source: Source) -> None:
    relations(source)
    role = source.role()
    source.execute(
        f'GRANT SELECT ON orders TO "{role}"',
        f'GRANT SELECT (id, value) ON secrets TO "{role}"',  # every column: the table is readable
        f'GRANT SELECT (v) ON measures TO "{role}"',  # part of the columns, not the key
        f'GRANT SELECT (b, flag) ON blobs TO "{role}"',  # part of the columns, no key
        f'GRANT SELECT ON logs TO "{role}"',  # the parent only, not its partitions
    )
    result = source.runner().discover(source.as_role(role)).raise_on_failure()
    streams = ("orders", "secrets", "measures", "blobs", "logs")
    assert names(result) == set(streams)
    measures = result.stream("measures", "public")
    assert set(measures["json_schema"]["properties"]) == {"v"}
    assert measures.get("source_defined_primary_key", []) == [], "a key the user cannot read is no key"
    assert set(result.stream("blobs", "public")["json_schema"]["properties"]) == {"b", "flag"}
    assert result.stream("blobs", "public")["is_resumable"] is False
    assert result.stream("logs", "public")["is_resumable"] is False, "its partitions are not readable by ctid"

    catalog = configured_catalog([result.stream(n, "public") for n in streams])
    read = source.runner().read(source.as_role(role), catalog).raise_on_failure()
    assert sorted(r["id"] for r in read.records("orders")) == [1, 2, 3]
    assert read.records("secrets") == [{"id": 1, "value": "hidden"}]
    assert sorted(r["v"] for r in read.records("measures")) == list(range(1, 201))
    assert read.records("blobs") == [{"b": "AA==", "flag": True}]
    assert sorted(r["line"] for r in read.records("logs")) == list(range(1, 51))
    # the partitions cannot be read by tuple id without their own grant: one query, and a warning
    assert any("logs" in line and "cannot be read by tuple id" in line for line in read.logs()), read.logs()


@pytest.mark.postgres
def test_partitioned_tables_views_and_foreign_tables_are_read_whole(source: Source) -> None:
    relations(source)
    discovered = source.runner().discover(source.config()).raise_on_failure()
    streams = ["measures", "logs", "big_orders", "order_totals", "remote_orders", "mixed"]
    catalog = configured_catalog([discovered.stream(n, "public") for n in streams])
    # small checkpoints: the partitioned reads go chunk by chunk over their partitions
    result = source.runner().read(source.config(checkpoint_records=20), catalog).raise_on_failure()
    assert sorted(r["id"] for r in result.records("measures")) == list(range(1, 201))
    counts = (
        source.connect()
        .execute(
            "SELECT (SELECT count(*) FROM ONLY measures_2023), (SELECT count(*) FROM ONLY measures_2024)"
        )
        .fetchone()
    )
    assert counts is not None
    assert all(counts), "the rows must span both partitions"
    assert sorted(r["line"] for r in result.records("logs")) == list(range(1, 51))
    assert sorted(r["id"] for r in result.records("big_orders")) == [1]
    assert result.records("order_totals") == [{"n": 3, "total": 13.5}]
    assert sorted((r["id"], r["note"]) for r in result.records("remote_orders")) == [
        (1, "a"),
        (2, "b"),
        (3, None),
    ]
    assert sorted(r["n"] for r in result.records("mixed")) == list(range(1, 16))
    assert any("mixed" in line and "cannot be read by tuple id" in line for line in result.logs())
    for name in streams:
        assert result.statuses(name) == ["STARTED", "COMPLETE"], name
    assert len(result.states("measures")) > 2, "a partitioned table with a key reads in chunks"


@pytest.mark.postgres
def test_check_names_the_schema_without_readable_tables(source: Source) -> None:
    source.execute("CREATE SCHEMA empty_one", "CREATE TABLE public.t (id integer)")
    result = source.runner().check(source.config(schemas=["public", "empty_one"]))
    status = result.connection_status
    assert status["status"] == "FAILED"
    assert "'empty_one'" in status["message"]
    assert "no table or view to read" in status["message"]
    assert source.runner().check(source.config()).connection_status["status"] == "SUCCEEDED"


@pytest.mark.postgres
def test_check_names_a_missing_select_grant(source: Source) -> None:
    source.execute(
        "CREATE TABLE first_t (id integer)",
        "CREATE TABLE second_t (id integer)",
        "CREATE SCHEMA locked",
        "CREATE TABLE locked.inside (id integer)",
    )
    role = source.role()
    result = source.runner().check(source.as_role(role))
    status = result.connection_status
    assert status["status"] == "FAILED"
    message = status["message"]
    for words in (role, "'public'", "first_t, second_t", "permission denied", "GRANT SELECT"):
        assert words in message, message

    result = source.runner().check(source.as_role(role, schemas=["locked"]))
    message = result.connection_status["message"]
    assert "may not use schema(s) 'locked'" in message, message
    assert "GRANT USAGE" in message, message

    source.execute(f'GRANT SELECT ON first_t TO "{role}"')
    assert source.runner().check(source.as_role(role)).connection_status["status"] == "SUCCEEDED"


def two_tables(source: Source) -> None:
    for name in ("kept", "changed"):
        source.execute(
            f"CREATE TABLE {name} (id integer PRIMARY KEY, extra text, seq integer NOT NULL)",
            f"INSERT INTO {name} SELECT i, 'x' || i, i FROM generate_series(1, 30) AS i",
        )


@pytest.mark.postgres
@pytest.mark.parametrize("incremental", [False, True], ids=["full_refresh", "incremental"])
def test_a_column_dropped_after_discover_fails_only_its_stream(source: Source, incremental: bool) -> None:
    two_tables(source)
    discovered = source.runner().discover(source.config()).raise_on_failure()
    streams = [discovered.stream("kept", "public"), discovered.stream("changed", "public")]
    if incremental:
        catalog = configured_catalog(
            streams, sync_mode="incremental", cursor_field=["seq"], destination_sync_mode="append_dedup"
        )
    else:
        catalog = configured_catalog(streams)
    source.execute("ALTER TABLE changed DROP COLUMN extra")
    result = source.runner().read(source.config(), catalog)
    assert result.exit_code != 0, "missing data must never end in success"
    assert result.statuses("kept") == ["STARTED", "COMPLETE"]
    assert result.statuses("changed") == ["STARTED", "INCOMPLETE"]
    assert len(result.records("kept")) == 30
    assert result.records("changed") == []
    (error,) = result.errors()
    assert error["failure_type"] == "config_error"
    assert error["stream_descriptor"]["name"] == "changed"
    assert "'extra'" in error["message"], error["message"]
    assert "no longer exist" in error["message"], error["message"]
    assert result.states("changed") == []


@pytest.mark.postgres
def test_a_table_dropped_after_discover_fails_only_its_stream(source: Source) -> None:
    two_tables(source)
    discovered = source.runner().discover(source.config()).raise_on_failure()
    catalog = configured_catalog(
        [discovered.stream("changed", "public"), discovered.stream("kept", "public")]
    )
    source.execute("DROP TABLE changed")
    result = source.runner().read(source.config(max_concurrent_streams=2), catalog)
    assert result.exit_code != 0
    assert result.statuses("changed") == ["STARTED", "INCOMPLETE"]
    assert result.statuses("kept") == ["STARTED", "COMPLETE"]
    assert len(result.records("kept")) == 30
    (error,) = result.errors()
    assert error["failure_type"] == "config_error"
    assert "changed" in error["message"], error["message"]
    assert "not found" in error["message"], error["message"]


@pytest.mark.postgres
def test_estimates_statuses_and_record_counts(source: Source) -> None:
    source.execute(
        "CREATE TABLE keyed (id integer PRIMARY KEY, body text)",
        "INSERT INTO keyed SELECT i, repeat('b', 100) FROM generate_series(1, 2000) AS i",
        "CREATE TABLE heap (id integer, body text)",
        "INSERT INTO heap SELECT i, repeat('h', 50) FROM generate_series(1, 1500) AS i",
        "CREATE TABLE never_analyzed (id integer)",
        "CREATE TABLE parts (id integer, k integer NOT NULL) PARTITION BY RANGE (k)",
        "CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (500)",
        "CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (500) TO (1000)",
        "INSERT INTO parts SELECT i, i FROM generate_series(0, 999) AS i",
        # documents too big to stay in the table's pages: they live in its TOAST table
        "CREATE TABLE docs (id integer PRIMARY KEY, body text)",
        "INSERT INTO docs SELECT i, (SELECT string_agg(md5(i::text || j::text), '')"
        " FROM generate_series(1, 600) AS j) FROM generate_series(1, 300) AS i",
    )
    conn = source.connect()
    for name in ("keyed", "heap", "parts"):  # ANALYZE of a partitioned table analyzes its leaves
        conn.execute(f"ANALYZE {name}")
    conn.execute("VACUUM ANALYZE docs")  # VACUUM counts the TOAST table's pages
    sizes = dict(
        conn.execute(
            "SELECT relname::text, pg_relation_size(oid) FROM pg_class"
            " WHERE relname IN ('keyed', 'heap', 'parts_1', 'parts_2', 'docs')"
            " AND relnamespace = 'public'::regnamespace"
        ).fetchall()
    )
    row = conn.execute(
        "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'public.docs'::regclass"
    ).fetchone()
    assert row is not None
    docs_toast = int(row[0])
    assert docs_toast > 10 * sizes["docs"], "the documents are in the TOAST table"
    discovered = source.runner().discover(source.config()).raise_on_failure()
    streams = [discovered.stream(n, "public") for n in ("keyed", "heap", "never_analyzed", "parts", "docs")]
    result = source.runner().read(source.config(checkpoint_records=500), configured_catalog(streams))
    result.raise_on_failure()
    estimates = {e["estimate"]["name"]: e["estimate"] for e in result.traces("ESTIMATE")}
    assert estimates["keyed"] == {
        "name": "keyed",
        "namespace": "public",
        "type": "STREAM",
        "row_estimate": 2000,
        "byte_estimate": sizes["keyed"],
    }
    assert estimates["heap"]["row_estimate"] == 1500
    assert estimates["heap"]["byte_estimate"] == sizes["heap"]
    assert estimates["parts"]["row_estimate"] == 1000, "the sum over the partitions"
    assert estimates["parts"]["byte_estimate"] == sizes["parts_1"] + sizes["parts_2"]
    assert estimates["docs"]["byte_estimate"] == sizes["docs"] + docs_toast, "TOAST counts"
    assert "never_analyzed" not in estimates, "no statistics, no made-up estimate"
    assert len(result.records("docs")) == 300
    for name, rows in (("keyed", 2000), ("heap", 1500), ("never_analyzed", 0), ("parts", 1000)):
        assert result.statuses(name) == ["STARTED", "COMPLETE"]
        states = result.states(name)
        assert states, name
        counts = [int(s["sourceStats"]["recordCount"]) for s in states]
        assert sum(counts) == rows == len(result.records(name)), (name, counts)
        assert states[-1]["stream"]["stream_state"] == {"v": 1, "mode": "full_refresh", "complete": True}
    assert len(result.states("keyed")) >= 4
    assert len(result.states("heap")) >= 3
    # the ESTIMATE comes after STARTED and before the first record of its stream
    order = [
        (m["type"], m.get("trace", {}).get("type"))
        for m in result.messages
        if m["type"] in ("RECORD", "TRACE")
        and (m.get("record", {}).get("stream") == "keyed" or "keyed" in str(m.get("trace", {})))
    ]
    assert order[:3] == [("TRACE", "STREAM_STATUS"), ("TRACE", "ESTIMATE"), ("RECORD", None)], order[:3]
