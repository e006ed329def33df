"""A custom SQL stream on MariaDB: result types from PyMySQL's field descriptions (binary or text
by character set, unsigned), read exactly, resumable by its key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest

from dbkit.testing import ConnectorRunner, TestDatabase, configured_catalog

pytestmark = pytest.mark.mysql

DBKIT = str(Path(sys.executable).parent / "dbkit")
MANIFEST = """\
version: 1
name: source-items-sql
connection:
  driver: mysql+pymysql
  host: "{{ config.host }}"
  port: "{{ config.port }}"
  database: "{{ config.database }}"
  username: "{{ config.username }}"
  password: "{{ config.password }}"
spec:
  fields:
    host: {type: string}
    port: {type: integer}
    database: {type: string}
    username: {type: string}
    password: {type: string, secret: true, required: false}
tables:
  enabled: false
streams:
  - name: items
    sql: >-
      SELECT id, price, price * 2 AS doubled, made, label, raw, doc, qty
      FROM item
    primary_key: [id]
    cursor: made
    columns: {doc: json}
"""


def test_a_custom_stream_on_mariadb(mysql_db: TestDatabase, tmp_path: Path) -> None:
    conn = pymysql.connect(**mysql_db.connection_params(), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE item (id BIGINT UNSIGNED PRIMARY KEY, price DECIMAL(30,10) NOT NULL, "
            "made DATETIME(6), label VARCHAR(20), raw VARBINARY(8), doc LONGTEXT, qty INT UNSIGNED)"
        )
        cur.executemany(
            "INSERT INTO item VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    i,
                    f"{i}.1234567891",
                    f"2024-01-0{i} 01:02:03.000004",
                    f"l{i}",
                    b"\x00\xff",
                    f'{{"n": {i}.50}}',
                    i,
                )
                for i in range(1, 6)
            ],
        )
    conn.close()
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST)
    run = ConnectorRunner([DBKIT, "run", str(path)], workdir=tmp_path)
    cfg: dict[str, Any] = {
        "host": mysql_db.host,
        "port": mysql_db.port,
        "database": mysql_db.database,
        "username": mysql_db.user,
    }
    if mysql_db.password:
        cfg["password"] = mysql_db.password
    stream = run.discover(cfg).raise_on_failure().stream("items")
    props = stream["json_schema"]["properties"]
    assert props["id"] == {"type": "integer"}
    assert props["price"] == {"type": "number"}  # NOT NULL, as PyMySQL reports it
    assert props["made"]["airbyte_type"] == "timestamp_without_timezone"
    assert props["label"]["type"] == ["string", "null"]
    assert props["raw"]["contentEncoding"] == "base64"  # binary by its character set
    assert props["doc"] == {}  # declared json
    assert props["qty"]["type"] == ["integer", "null"]
    catalog = configured_catalog([stream], sync_mode="incremental", cursor_field=["made"])
    first = run.read({**cfg, "checkpoint_records": 2}, catalog).raise_on_failure()
    records = first.records("items")
    assert records[0] == {
        "id": 1,
        "price": 1.1234567891,
        "doubled": 2.2469135782,
        "made": "2024-01-01T01:02:03.000004",
        "label": "l1",
        "raw": "AP8=",
        "doc": {"n": 1.5},
        "qty": 1,
    }
    states = first.states("items")
    assert len(states) >= 3
    resumed = run.read({**cfg, "checkpoint_records": 2}, catalog, [states[0]]).raise_on_failure()
    assert [r["id"] for r in resumed.records("items")] == [3, 4, 5]
