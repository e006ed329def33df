"""Manifests on SQLite (the fast layer): every kind of mistake named by line and place, the spec
built on dbkit's config machinery, type rules (generic names and dotted paths), error rules,
custom SQL streams, and ``dbkit run`` / ``dbkit sync --source MANIFEST``."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbkit.manifest import ManifestError, load_manifest, manifest_schema
from dbkit.manifest.run import run_command

DBKIT = str(Path(sys.executable).parent / "dbkit")
GOOD = """\
version: 1
name: source-shop-sqlite
connection:
  driver: sqlite
  database: "{{ config.path }}"
spec:
  fields:
    path: {type: string, title: Database file}
    api_token: {type: string, secret: true, required: false}
tables:
  exclude: ["secret_*"]
streams:
  - name: big_orders
    sql: SELECT id, amount, at, note FROM orders WHERE amount >= 10
    primary_key: [id]
    cursor: at
    columns: {id: integer, amount: numeric, at: timestamp, note: text}
types:
  - names: [money]
    handler: number
  - names: [blob]
    handler: "dbkit.db.generic_types:STRING"
errors:
  - message: "no such table: gone"
    failure_type: transient_error
    hint: the table is being rebuilt
checkpoint:
  records: 7
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount money, at TEXT, note TEXT, b BLOB)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [(i, i * 3, f"2024-01-0{1 + i // 3} 00:00:00", f"n{i}", b"\x00\x01") for i in range(1, 9)],
        )
        conn.execute("CREATE TABLE secret_keys (id INTEGER PRIMARY KEY)")
    conn.close()
    return path


def run(manifest: Path, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.BytesIO()
    code = run_command(str(manifest), list(argv), stdout=out)
    return code, [orjson.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def config_file(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(config))
    return str(path)


# ------------------------------------------------------------------------------ mistakes

BAD = [
    pytest.param("version: 1\nname: [unclosed\n", "manifest.yaml:3: not valid YAML", id="yaml-syntax"),
    pytest.param("", "the file is empty", id="empty"),
    pytest.param(
        GOOD.replace("version: 1", "version: 2"), "manifest.yaml:1 (version): must be 1", id="version"
    ),
    pytest.param(
        GOOD.replace("name: source-shop-sqlite", "name: Shop"),
        "manifest.yaml:2 (name): does not match the pattern",
        id="name-pattern",
    ),
    pytest.param(
        GOOD.replace("    primary_key: [id]\n", ""),
        "manifest.yaml:13 (streams[0]): 'primary_key' is required",
        id="missing-key",
    ),
    pytest.param(
        GOOD.replace("  records: 7", "  records: 7\n  every: 3"),
        "manifest.yaml:28 (checkpoint): unknown key 'every' (allowed: records, seconds)",
        id="unknown-key",
    ),
    pytest.param(
        GOOD.replace("handler: number", "handler: numbr"),
        "manifest.yaml:20 (types[0].handler): unknown handler 'numbr': name one of integer, number",
        id="unknown-handler",
    ),
    pytest.param(
        GOOD.replace("dbkit.db.generic_types:STRING", "dbkit.no_such_module:X"),
        "manifest.yaml:22 (types[1].handler): cannot import 'dbkit.no_such_module'",
        id="bad-dotted-path",
    ),
    pytest.param(
        GOOD.replace("dbkit.db.generic_types:STRING", "dbkit.db.generic_types:generic_types"),
        "(types[1].handler): dbkit.db.generic_types:generic_types is a TypeRegistry, not a "
        "dbkit.db.TypeHandler",
        id="not-a-handler",
    ),
    pytest.param(
        GOOD.replace('"{{ config.path }}"', '"{{ config.file }}"'),
        "manifest.yaml:5 (connection.database): {{ config.file }}: the spec has no field 'file' "
        "(fields: api_token, path)",
        id="unknown-field",
    ),
    pytest.param(
        GOOD.replace('"{{ config.path }}"', '"{{ path }}"'),
        "'{{ path }}' is not a reference to a config field",
        id="not-a-reference",
    ),
    pytest.param(
        GOOD.replace("driver: sqlite", "driver: nosuchdb+driver"),
        "manifest.yaml:4 (connection.driver): SQLAlchemy has no dialect 'nosuchdb+driver'",
        id="unknown-driver",
    ),
    pytest.param(
        GOOD.replace(
            "    path: {type: string, title: Database file}",
            "    path: {type: string}\n    path: {type: integer}",
        ),
        "manifest.yaml:9 (spec.fields.path): 'path' is given twice",
        id="duplicate-key",
    ),
    pytest.param(
        GOOD.replace("path: {type: string, title: Database file}", "checkpoint_records: {type: integer}"),
        "(spec.fields.checkpoint_records): 'checkpoint_records' is one of the settings every source has",
        id="reserved-field",
    ),
    pytest.param(
        GOOD.replace('message: "no such table: gone"', 'message: "(unclosed"'),
        "manifest.yaml:24 (errors[0].message): not a regular expression",
        id="bad-regex",
    ),
    pytest.param(
        GOOD.replace(
            'database: "{{ config.path }}"', 'database: "{{ config.path }}"\n  password: "{{ config.path }}"'
        ),
        "manifest.yaml:6 (connection.password): holds a password but field(s) 'path' are not secret",
        id="password-not-secret",
    ),
    pytest.param(
        GOOD.replace("WHERE amount >= 10", "WHERE amount >= 10; DROP TABLE orders"),
        "(streams[0].sql): holds more than one statement",
        id="two-statements",
    ),
    pytest.param(
        GOOD.replace(
            "api_token: {type: string, secret: true, required: false}", "n: {type: integer, default: x}"
        ),
        "manifest.yaml:9 (spec.fields.n.default): 'x' is not of type integer",
        id="bad-default",
    ),
    pytest.param(  # an Airbyte type name, not a database's: it would have read as text
        GOOD.replace("amount: numeric", "amount: number"),
        "(streams[0].columns.amount): type name 'number' is not one dbkit knows",
        id="unknown-column-type",
    ),
    pytest.param(  # a name a `types` rule gives is known
        GOOD.replace("amount: numeric", "amount: money").replace("note: text", "note: bogus_type"),
        "(streams[0].columns.note): type name 'bogus_type' is not one dbkit knows",
        id="unknown-column-type-after-a-rule",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_manifest_is_a_config_error_naming_line_and_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert expected in raised.value.message
    code, messages = run(path, "spec")
    assert code == 1
    (trace,) = messages
    assert trace["type"] == "TRACE"
    assert trace["trace"]["error"]["failure_type"] == "config_error"
    assert expected in trace["trace"]["error"]["message"]


def test_a_missing_manifest_file(tmp_path: Path) -> None:
    code, messages = run(tmp_path / "nowhere.yaml", "spec")
    assert code == 1
    assert "nowhere.yaml: no such file" in messages[0]["trace"]["error"]["message"]


def test_the_schema_is_a_valid_draft7_schema() -> None:
    from jsonschema import Draft7Validator

    Draft7Validator.check_schema(manifest_schema())


# ------------------------------------------------------------------------------ the source


def test_spec_is_built_on_the_config_machinery(tmp_path: Path) -> None:
    code, messages = run(write(tmp_path, GOOD), "spec")
    assert code == 0
    schema = messages[0]["spec"]["connectionSpecification"]
    assert schema["required"] == ["path"]
    assert schema["properties"]["api_token"]["airbyte_secret"] is True
    assert schema["properties"]["checkpoint_records"]["default"] == 7  # checkpoint.records
    assert schema["properties"]["checkpoint_records"]["minimum"] == 1
    assert {"include_tables", "exclude_tables", "incremental_fallback"} <= set(schema["properties"])


def test_discover_and_read_tables_and_a_custom_stream(tmp_path: Path, shop: Path) -> None:
    manifest = write(tmp_path, GOOD)
    secret = "tok-Secret-4821"
    cfg = config_file(tmp_path, {"path": str(shop), "api_token": secret})
    code, messages = run(manifest, "discover", "--config", cfg)
    assert code == 0
    streams = {s["name"]: s for s in messages[0]["catalog"]["streams"]}
    assert set(streams) == {"orders", "big_orders"}  # secret_* excluded by the manifest
    orders = streams["orders"]["json_schema"]["properties"]
    assert orders["amount"]["type"] == ["number", "null"]  # type rule: money -> number
    assert orders["b"] == {"type": ["string", "null"]}  # blob: a dotted path to a TypeHandler
    big = streams["big_orders"]
    assert big["default_cursor_field"] == ["at"]
    assert big["json_schema"]["properties"]["at"]["airbyte_type"] == "timestamp_without_timezone"
    catalog = {
        "streams": [
            {
                "stream": big,
                "sync_mode": "incremental",
                "cursor_field": ["at"],
                "destination_sync_mode": "append",
            }
        ]
    }
    cat = config_file(tmp_path, catalog, "catalog.json")
    code, messages = run(manifest, "read", "--config", cfg, "--catalog", cat)
    assert code == 0
    records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
    assert [r["id"] for r in records] == [4, 5, 6, 7, 8]
    assert records[0] == {"id": 4, "amount": 12, "at": "2024-01-02T00:00:00", "note": "n4"}
    assert secret not in orjson.dumps(messages).decode()


def test_an_error_rule_classifies_a_driver_error(tmp_path: Path, shop: Path) -> None:
    text = GOOD.replace("FROM orders WHERE", "FROM gone WHERE")
    cfg = config_file(tmp_path, {"path": str(shop)})
    code, messages = run(write(tmp_path, text), "discover", "--config", cfg)
    assert code == 1
    error = messages[-1]["trace"]["error"]
    assert error["failure_type"] == "transient_error"
    assert error["message"].startswith("the table is being rebuilt: no such table: gone")


@pytest.mark.slow
def test_dbkit_run_and_sync_run_a_manifest(tmp_path: Path, shop: Path) -> None:
    manifest = write(tmp_path, GOOD)
    cfg = config_file(tmp_path, {"path": str(shop)})
    check = subprocess.run([DBKIT, "run", str(manifest), "check", "--config", cfg], capture_output=True)
    assert check.returncode == 0
    assert orjson.loads(check.stdout)["connectionStatus"]["status"] == "SUCCEEDED"
    warehouse = tmp_path / "warehouse.db"
    for extra in ([], ["--in-process"]):
        sync = subprocess.run(
            [
                *(DBKIT, "sync", "--source", str(manifest), "--source-config", cfg),
                *("--destination", f"sqlite:///{warehouse}", "--state-file", str(tmp_path / "s.json")),
                *("--no-progress", *extra),
            ],
            capture_output=True,
            text=True,
        )
        assert sync.returncode == 0, sync.stderr
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM big_orders").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (8,)
    conn.close()


def test_a_custom_stream_named_like_a_table_is_refused(tmp_path: Path, shop: Path) -> None:
    text = GOOD.replace("  - name: big_orders\n", "  - name: orders\n    namespace: main\n")
    cfg = config_file(tmp_path, {"path": str(shop)})
    code, messages = run(write(tmp_path, text), "discover", "--config", cfg)
    assert code == 1
    error = messages[-1]["trace"]["error"]
    assert error["failure_type"] == "config_error"
    assert (
        "custom SQL stream 'orders' (manifest.yaml:13 (streams[0])): a table is discovered"
        in error["message"]
    )
