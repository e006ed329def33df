"""A sync whose destination would write into the tables its source reads is refused before any
data moves (dbkit.runner.overlap), on real files and servers; syncs into another database pass."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbkit import DataLocation, cli, file_location, server_location
from dbkit.protocol import AirbyteStream, SyncMode
from dbkit.runner.errors import SyncAborted
from dbkit.runner.overlap import refuse_overwriting_source
from dbkit.runner.registry import lookup
from dbkit.runner.request import Endpoint
from dbkit.testing.servers import TestDatabase


def _endpoint(name: str, config: dict[str, Any]) -> Endpoint:
    info = lookup(name)
    assert info is not None, f"{name} is not installed"
    return Endpoint(info, config)


def _stream(name: str, namespace: str | None) -> AirbyteStream:
    return AirbyteStream(
        name=name,
        namespace=namespace,
        json_schema={"type": "object", "properties": {}},
        supported_sync_modes=(SyncMode.FULL_REFRESH,),
    )


def _sync(
    source: str, destination: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = cli.main(
        [
            "sync",
            "--source",
            source,
            "--destination",
            destination,
            "--state-file",
            str(tmp_path / "state.json"),
            "--no-progress",
            "--in-process",
        ]
    )
    return code, capsys.readouterr().err


def test_locations_name_one_server_however_it_is_spelled(tmp_path: Path) -> None:
    assert server_location("postgresql", "localhost", 5432, "db") == server_location(
        "postgresql", "127.0.0.1", 5432, "db"
    )
    assert server_location("postgresql", "/var/run/postgresql", 5432, "db") == server_location(
        "postgresql", "::1", 5432, "db"
    )
    assert server_location("mysql", "DB.example.com", 3306) == server_location(
        "mysql", "db.example.com", 3306
    )
    assert server_location("postgresql", "localhost", 5432, "a") != server_location(
        "postgresql", "localhost", 5432, "b"
    )
    assert server_location("postgresql", "localhost", 5432, "a") != server_location(
        "postgresql", "localhost", 5433, "a"
    )
    # the same host name behind a bastion is another machine
    assert server_location("mysql", "db", 3306, via="bastion") != server_location("mysql", "db", 3306)
    target = tmp_path / "real.db"
    target.touch()
    (tmp_path / "link.db").symlink_to(target)
    assert file_location(str(tmp_path / "link.db")) == file_location(str(target))


def test_a_sqlite_sync_into_its_own_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "shop.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 10) for i in range(1, 6)])
    (tmp_path / "alias.db").symlink_to(src)
    code, err = _sync(f"sqlite:///{src}", f"sqlite:///{tmp_path / 'alias.db'}", tmp_path, capsys)
    assert code == 1
    assert "would write into the tables the source reads (orders)" in err
    with sqlite3.connect(src) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("orders",)]
        assert [r[1] for r in conn.execute("PRAGMA table_info(orders)")] == ["id", "amount"]
        assert conn.execute("SELECT count(*), sum(amount) FROM orders").fetchone() == (5, 150)
    assert not (tmp_path / "state.json").exists()
    # into another file it runs
    code, err = _sync(f"sqlite:///{src}", f"sqlite:///{tmp_path / 'warehouse.db'}", tmp_path, capsys)
    assert code == 0, err


@pytest.mark.postgres
def test_a_postgres_sync_into_its_own_schema_is_refused(
    postgres_db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(**postgres_db.connection_params(), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, amount int)")
        conn.execute("INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g")
    url = f"postgresql://{postgres_db.user}@{postgres_db.host}:{postgres_db.port}/{postgres_db.database}"
    # the same database spelled with another host name for the loopback
    other_spelling = url.replace(f"@{postgres_db.host}:", "@localhost:")
    code, err = _sync(url, other_spelling, tmp_path, capsys)
    assert code == 1
    assert "would write into the tables the source reads (public.orders)" in err
    with psycopg.connect(**postgres_db.connection_params()) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'orders' ORDER BY ordinal_position"
            )
        ]
        assert columns == ["id", "amount"]
        assert conn.execute("SELECT count(*), sum(amount) FROM public.orders").fetchone() == (5, 150)


def test_other_databases_and_schemas_pass() -> None:
    pg = {"host": "127.0.0.1", "port": 5432, "database": "src", "username": "u"}
    source = _endpoint("source-postgres", pg)
    orders = [_stream("orders", "public")]
    # another database on the same server
    refuse_overwriting_source(source, _endpoint("destination-postgres", {**pg, "database": "dwh"}), orders)
    # another server
    refuse_overwriting_source(source, _endpoint("destination-postgres", {**pg, "port": 5433}), orders)
    # the same database, but a stream whose namespace is another schema lands in that schema
    with pytest.raises(SyncAborted, match=r"public\.orders"):
        refuse_overwriting_source(source, _endpoint("destination-postgres", pg), orders)


def test_mysql_databases_are_namespaces_of_one_server() -> None:
    server = {"host": "localhost", "port": 3306, "username": "root"}
    source = _endpoint("source-mysql", {**server, "database": "shop"})
    streams = [_stream("orders", "shop")]
    # the destination's own database does not matter: the stream's namespace names the database
    with pytest.raises(SyncAborted, match=r"shop\.orders"):
        refuse_overwriting_source(
            source, _endpoint("destination-mysql", {**server, "database": "dwh"}), streams
        )
    # another server is fine
    refuse_overwriting_source(
        source, _endpoint("destination-mysql", {**server, "host": "replica", "database": "dwh"}), streams
    )


def test_unknown_locations_are_not_checked() -> None:
    assert DataLocation("x") == DataLocation("x", None)
    source = _endpoint("source-postgres", {"host": "h", "port": 5432, "database": "d", "username": "u"})
    # an invalid destination config is check's business, not this guard's
    refuse_overwriting_source(
        source, _endpoint("destination-postgres", {"port": "x"}), [_stream("t", "public")]
    )
