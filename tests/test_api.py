"""The Python API (``dbkit.sync``, ``dbkit.read``, ``dbkit.read_batches``) on SQLite files, with
the connectors in threads (``in_process=True``): real connectors, real state files, no mocks."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import dbkit
from dbkit.errors import TransientError
from dbkit.protocol import MessageWriter
from dbkit.runner.registry import ConnectorInfo, registered
from source_sqlite import SqliteSource, SqliteSourceConfig


def make_shop(path: Path, orders: int = 5) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC, placed DATE,
                                 paid BOOLEAN, updated_at DATETIME NOT NULL);
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
            """
        )
        add_orders(path, range(1, orders + 1))
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "Ann"), (2, "Bob")])


def add_orders(path: Path, ids: range, updated: str = "2024-01-0{d} 10:00:00") -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i, f"c{i}", f"{i}.50", f"2024-01-{i % 28 + 1:02d}", i % 2, updated.format(d=i % 9 + 1))
                for i in ids
            ],
        )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    make_shop(path)
    return path


# ============================================================================ sync


def test_the_sync_function_is_not_shadowed_by_the_runner_package() -> None:
    """``dbkit.sync`` was a subpackage: importing it set ``dbkit.sync`` to the module."""
    import dbkit.runner

    assert callable(dbkit.sync)
    assert dbkit.sync.__module__ == "dbkit.api"


def test_a_sync_returns_its_result_and_the_next_one_reads_only_the_changes(
    shop: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    args: dict[str, Any] = {
        "source": f"sqlite:///{shop}",
        "destination": f"sqlite:///{tmp_path / 'wh.db'}",
        "state": state,
        "in_process": True,
    }
    first = dbkit.sync(**args)
    assert (first.status, first.ok, first.sync_id, first.errors) == ("succeeded", True, 1, ())
    orders = first.stream("orders")
    assert (orders.mode, orders.status, orders.finished) == ("incremental dedup", "COMPLETE", True)
    assert (orders.records_read, orders.records_acknowledged) == (5, 5)
    assert first.stream("customers").mode == "full refresh overwrite"
    assert (first.records_read, first.records_acknowledged) == (7, 7)
    assert first.started_at <= first.ended_at
    assert first.seconds > 0
    assert first.state == json.loads(state.read_text())
    assert first.state_file == state

    add_orders(shop, range(6, 8), updated="2024-02-0{d} 00:00:00")
    second = dbkit.sync(**args, streams="orders")
    assert [s.name for s in second.streams] == ["orders"]
    assert (second.sync_id, second.stream("orders").records_read) == (2, 2)
    with closing(sqlite3.connect(tmp_path / "wh.db")) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (7,)


def test_a_failed_sync_raises_with_its_failure_type_and_no_secret(tmp_path: Path) -> None:
    secret = "Pw-api-93-never-shown"
    with pytest.raises(dbkit.SyncFailed) as caught:
        dbkit.sync(
            source=f"sqlite:///{tmp_path / 'missing.db'}",
            destination="destination-sqlite",
            destination_config={"path": str(tmp_path / "wh.db"), "api_token": secret},
            state=tmp_path / "s.json",
            in_process=True,
        )
    error = caught.value
    assert isinstance(error, dbkit.ConfigError)
    assert error.failure_type == "config_error"
    assert "connection check failed: cannot open SQLite database" in str(error)
    result = error.result
    assert (result.status, result.sync_id, result.streams) == ("failed", None, ())
    assert secret not in json.dumps(result.to_json()) + str(error)
    assert not (tmp_path / "s.json").exists()


def test_raise_on_failure_false_returns_the_failed_result(tmp_path: Path) -> None:
    result = dbkit.sync(
        source=f"sqlite:///{tmp_path / 'missing.db'}",
        destination=f"sqlite:///{tmp_path / 'wh.db'}",
        state=tmp_path / "s.json",
        in_process=True,
        raise_on_failure=False,
    )
    assert (result.ok, result.status, result.failure_type) == (False, "failed", "config_error")
    with pytest.raises(dbkit.SyncFailed):
        result.raise_for_status()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "source-sqlite"}, "source='source-sqlite': give its config with source_config=..."),
        ({"source": "nosuch://x"}, "no source connector handles nosuch:// URLs"),
        ({"source": "destination-sqlite"}, "destination-sqlite is a destination connector, not a source"),
        ({"source_config": "{missing}"}, "nowhere.json does not exist"),
        ({"streams": "orders,nope"}, "unknown stream(s) nope; the source has: customers, orders"),
    ],
)
def test_bad_inputs_are_config_errors_that_say_what_to_do(
    shop: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "source": f"sqlite:///{shop}",
        "destination": f"sqlite:///{tmp_path / 'wh.db'}",
        "state": tmp_path / "s.json",
        "in_process": True,
    }
    if kwargs.get("source_config") == "{missing}":
        kwargs = {"source": "source-sqlite", "source_config": tmp_path / "nowhere.json"}
    with pytest.raises(dbkit.ConfigError) as caught:
        dbkit.sync(**{**args, **kwargs})
    assert message in str(caught.value)


# ============================================================================ read


def test_read_returns_a_typed_table_and_resumes_from_its_state_file(shop: Path, tmp_path: Path) -> None:
    state = tmp_path / "read-state.json"
    table = dbkit.read(f"sqlite:///{shop}", streams="orders", state=state, in_process=True)
    assert table.num_rows == 5
    assert table.schema.metadata == {b"dbkit.stream": b"orders"}
    types = {f.name: f.type for f in table.schema}
    assert types == {
        "id": pa.int64(),
        "customer": pa.string(),
        "amount": pa.string(),  # a number is its exact decimal text
        "placed": pa.date32(),
        "paid": pa.bool_(),
        "updated_at": pa.timestamp("us"),
        "_airbyte_extracted_at": pa.timestamp("us", tz="UTC"),
        "_airbyte_meta": pa.string(),
    }
    rows = sorted(table.select(["id", "amount", "placed", "paid"]).to_pylist(), key=lambda r: r["id"])
    assert rows[0] == {"id": 1, "amount": "1.5", "placed": dt.date(2024, 1, 2), "paid": True}

    assert dbkit.read(f"sqlite:///{shop}", streams="orders", state=state, in_process=True).num_rows == 0
    add_orders(shop, range(6, 9), updated="2024-03-0{d} 00:00:00")
    again = dbkit.read(f"sqlite:///{shop}", streams="orders", state=state, in_process=True)
    assert sorted(again.column("id").to_pylist()) == [6, 7, 8]
    whole = dbkit.read(f"sqlite:///{shop}", streams="orders", state=state, full_refresh=True, in_process=True)
    assert whole.num_rows == 8


def test_read_of_several_streams_asks_for_one(shop: Path) -> None:
    with pytest.raises(dbkit.ConfigError, match=r"2 streams were selected \(customers, orders\): name one"):
        dbkit.read(f"sqlite:///{shop}", in_process=True)


class FailingConfig(SqliteSourceConfig):
    fail_after: int = 2


class FailingSource(SqliteSource):
    """source-sqlite whose read fails (a TRACE ERROR, exit 1) after ``fail_after`` records and a
    STATE, as a dropped connection would."""

    name = "source-sqlite-failing"
    config_model = FailingConfig

    def read(self, config: Any, catalog: Any, state: Any, writer: Any, log: Any) -> Any:
        cut = Cut(writer, config.fail_after)
        return super().read(config.model_copy(update={"checkpoint_records": 1}), catalog, state, cut, log)


class Cut(MessageWriter):
    """A writer that raises a TransientError at the RECORD after the first ``records``."""

    def __init__(self, writer: MessageWriter, records: int) -> None:
        super().__init__(io.BytesIO())  # unused: every line goes to ``writer``
        self.writer = writer
        self.left = records

    def write(self, line: bytes) -> None:
        if line.startswith(b'{"type":"RECORD"'):
            if self.left == 0:
                raise TransientError("connection lost (planted)")
            self.left -= 1
        self.writer.write(line)

    def write_lines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.writer.flush()


@pytest.fixture
def failing_source() -> Iterator[str]:
    with registered(ConnectorInfo("source-sqlite-failing", "source", factory=FailingSource)):
        yield "source-sqlite-failing"


def test_a_failed_read_raises_and_leaves_the_state_file_as_it_was(
    shop: Path, tmp_path: Path, failing_source: str
) -> None:
    state = tmp_path / "s.json"
    config = {"path": str(shop), "fail_after": 2}
    with pytest.raises(dbkit.SyncFailed) as caught:
        dbkit.read(failing_source, config, streams="orders", state=state, in_process=True)
    assert caught.value.failure_type == "transient_error"
    assert "connection lost (planted)" in str(caught.value)
    entry = caught.value.result.state["streams"][0]
    assert (entry["finished"], entry["state"]) == (False, None)  # nothing acknowledged
    whole = {"path": str(shop), "fail_after": 100}
    assert dbkit.read(failing_source, whole, streams="orders", state=state, in_process=True).num_rows == 5


def test_read_batches_saves_the_state_of_what_was_taken(
    shop: Path, tmp_path: Path, failing_source: str
) -> None:
    """A failing read delivers what precedes the failure; the state file then covers what was
    taken, so the next read goes on after it (repeating at most what followed the last STATE)."""
    state = tmp_path / "s.json"
    config = {"path": str(shop), "fail_after": 3}
    taken: list[int] = []
    reader = dbkit.read_batches(failing_source, config, streams="orders", state=state, in_process=True)

    def take_all() -> None:
        with reader:
            for batch in reader:
                assert batch.schema.metadata == {b"dbkit.stream": b"orders"}
                taken.extend(batch.column("id").to_pylist())

    with pytest.raises(dbkit.SyncFailed, match="connection lost"):
        take_all()
    assert reader.result is not None
    assert reader.result.status == "failed"
    assert taken[:3] == [1, 2, 3]
    saved = reader.state["streams"][0]["state"]
    assert saved is not None
    rest: list[int] = []
    whole = {"path": str(shop), "fail_after": 100}
    with dbkit.read_batches(failing_source, whole, streams="orders", state=state, in_process=True) as again:
        for batch in again:
            rest += batch.column("id").to_pylist()
    assert again.result is not None
    assert again.result.ok
    # a STATE follows every record (checkpoint_records=1): each row exactly once over both reads
    assert (taken, rest) == ([1, 2, 3], [4, 5])


def test_read_batches_of_several_streams_and_an_early_stop(shop: Path, tmp_path: Path) -> None:
    with dbkit.read_batches(f"sqlite:///{shop}", in_process=True) as reader:
        streams = {batch.schema.metadata[b"dbkit.stream"]: batch.num_rows for batch in reader}
    assert streams == {b"customers": 2, b"orders": 5}
    assert reader.result is not None
    assert reader.result.ok

    state = tmp_path / "s.json"
    with dbkit.read_batches(f"sqlite:///{shop}", streams="customers", state=state, in_process=True) as early:
        for _ in early:
            break
    assert early.result is not None
    assert not early.result.ok  # stopped: the next read starts over
    assert dbkit.read(f"sqlite:///{shop}", streams="customers", state=state, in_process=True).num_rows == 2


def test_an_arrow_reader_streams_one_stream_into_duckdb(shop: Path) -> None:
    import duckdb

    with dbkit.read_batches(f"sqlite:///{shop}", streams="orders", in_process=True) as reader:
        stream = reader.arrow_reader()
        assert stream.schema.field("placed").type == pa.date32()
        relation = duckdb.sql("SELECT count(*), sum(id) FROM stream")
        assert relation is not None
        assert relation.fetchall() == [(5, 15)]
    assert reader.result is not None
    assert reader.result.ok

    several = dbkit.read_batches(f"sqlite:///{shop}", in_process=True)
    with pytest.raises(dbkit.ConfigError, match=r"reads one stream, and 2 were selected"):
        several.arrow_reader()
