"""Discovery and check against the machine's MariaDB: a database of 2,500 tables is discovered
by a few catalog queries in seconds (no per-table query, no statistics recomputed), with primary
keys, views, cursor candidates and estimates; ``jdbc_url_params`` and ``sessionVariables`` apply."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dbkit.testing import configured_catalog

pytestmark = pytest.mark.mysql

MANY = 2500


@pytest.mark.slow
def test_discover_of_2500_tables_takes_seconds(source: Any) -> None:
    source.run(
        *(
            f"CREATE TABLE t{i:04d} (id INT PRIMARY KEY, a VARCHAR(20), b DATETIME, c DECIMAL(10,2), d JSON)"
            for i in range(MANY)
        ),
        "FLUSH TABLES",
    )
    started = time.monotonic()
    result = source.runner().discover(source.config()).raise_on_failure()
    took = time.monotonic() - started
    streams = result.catalog
    assert len(streams) == MANY
    assert took < 15, f"discover of {MANY} tables took {took:.1f}s"
    stream = result.stream("t1234", source.namespace)
    assert stream["source_defined_primary_key"] == [["id"]]
    assert stream["json_schema"]["properties"]["d"] == {}  # MariaDB's JSON (a checked LONGTEXT)
    assert set(stream["supported_sync_modes"]) == {"full_refresh", "incremental"}


def test_discover_finds_views_keys_and_estimates(source: Any) -> None:
    source.run(
        "CREATE TABLE orders (region CHAR(2) NOT NULL, id BIGINT UNSIGNED NOT NULL, updated_at DATETIME(6), "
        "total DECIMAL(12,2), PRIMARY KEY (region, id))",
        "INSERT INTO orders SELECT 'eu', seq, NOW(6), seq / 100 FROM seq_1_to_1000",
        "ANALYZE TABLE orders",
        "CREATE VIEW big_orders AS SELECT region, id, total FROM orders WHERE total > 5",
        "CREATE TABLE no_key (x INT)",
    )
    result = source.runner().discover(source.config()).raise_on_failure()
    orders = result.stream("orders", source.namespace)
    assert orders["source_defined_primary_key"] == [["region"], ["id"]]
    view = result.stream("big_orders", source.namespace)
    assert not view.get("source_defined_primary_key")
    assert "incremental" in view["supported_sync_modes"]
    assert not result.stream("no_key", source.namespace).get("source_defined_primary_key")
    read = source.runner().read(source.config(), configured_catalog([orders])).raise_on_failure()
    (estimate,) = [
        m["trace"]["estimate"]
        for m in read.messages
        if m["type"] == "TRACE" and m["trace"]["type"] == "ESTIMATE"
    ]
    assert 500 <= estimate["row_estimate"] <= 2000, estimate
    assert estimate["byte_estimate"] > 0


def test_jdbc_url_params_apply(source: Any) -> None:
    """tinyInt1isBit=false reads TINYINT(1) as an integer; sessionVariables are set on every
    session (an unknown one is a config error naming it; the connector's own may not be changed)."""
    source.run("CREATE TABLE flags (id INT PRIMARY KEY, f TINYINT(1))", "INSERT INTO flags VALUES (1, 2)")
    params = "tinyInt1isBit=false&connectTimeout=5000&socketTimeout=60000&sessionVariables=wait_timeout=600"
    config = source.config(jdbc_url_params=params)
    result = source.runner().discover(config).raise_on_failure()
    flags = result.stream("flags", source.namespace)
    assert flags["json_schema"]["properties"]["f"]["type"] == ["integer", "null"]
    read = source.runner().read(config, configured_catalog([flags])).raise_on_failure()
    assert read.records("flags")[0]["f"] == 2
    unknown = source.runner().check(source.config(jdbc_url_params="sessionVariables=dbkit_no_such_var=1"))
    assert unknown.connection_status["status"] == "FAILED"
    assert "dbkit_no_such_var" in unknown.connection_status["message"]
    assert "sessionVariables" in unknown.connection_status["message"]
    ours = source.runner().check(source.config(jdbc_url_params="sessionVariables=time_zone='+02:00'"))
    assert ours.connection_status["status"] == "FAILED"
    assert "time_zone" in ours.connection_status["message"]


def test_bad_jdbc_url_params_are_config_errors(source: Any) -> None:
    result = source.runner().check(source.config(jdbc_url_params="connectTimeout=soon"))
    assert result.connection_status["status"] == "FAILED"
    assert "connectTimeout" in result.connection_status["message"]
