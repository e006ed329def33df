"""dbkit.testing.servers against real servers: the local services, throwaway servers, env URLs, Docker."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from dbkit.testing import fixtures
from dbkit.testing.servers import (
    CONTAINER_IMAGES,
    DEFAULT_PROVIDER_ORDER,
    PROVIDER_ENV_VAR,
    URL_ENV_VARS,
    ContainerProvider,
    DatabaseServer,
    LocalBinariesProvider,
    LocalServerProcess,
    LocalServiceProvider,
    NoServerAvailable,
    ServerKind,
    ServerRequirements,
    TestDatabase,
    find_server,
    get_server,
    resolve_providers,
    unique_database_name,
)
from dbkit.testing.servers.containers import container_spec
from dbkit.testing.servers.local_process import (
    DIR_PREFIX,
    OWNER_FILE,
    LocalServerError,
    free_port,
    reap_stale_servers,
)
from dbkit.testing.servers.mysql import quote_identifier

LOCAL_URLS: dict[ServerKind, str] = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
KIND_MARKS = {"postgres": pytest.mark.postgres, "mysql": pytest.mark.mysql}
BOTH_KINDS = [pytest.param(kind, marks=mark, id=kind) for kind, mark in KIND_MARKS.items()]
SPECIAL = {"postgres": ServerRequirements(logical_replication=True), "mysql": ServerRequirements(binlog=True)}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit finder calls in these tests must not depend on the caller's environment."""
    for var in (PROVIDER_ENV_VAR, *URL_ENV_VARS.values(), "DBKIT_TEST_MYSQL_FLAVOR"):
        monkeypatch.delenv(var, raising=False)


def local_service(kind: ServerKind) -> DatabaseServer:
    try:
        return find_server(kind, providers=["local-service"])
    except NoServerAvailable as exc:
        pytest.skip(str(exc))


def require_binaries(kind: ServerKind) -> None:
    reason = LocalBinariesProvider().precheck(kind)
    if reason:
        pytest.skip(reason)


def scalar(db: TestDatabase, query: str) -> object:
    engine = sa.create_engine(db.url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def roundtrip_table(db: TestDatabase) -> None:
    """Create a table in ``db``, insert rows, and read them back through SQLAlchemy."""
    engine = sa.create_engine(db.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
            conn.execute(sa.text("INSERT INTO items VALUES (1, 'one'), (2, 'two')"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM items ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]


def connect_driver(db: TestDatabase) -> None:
    """Open and close a driver connection with db.connection_params()."""
    if db.kind == "postgres":
        psycopg.connect(**db.connection_params(), connect_timeout=3).close()
    else:
        pymysql.connect(**db.connection_params(), connect_timeout=3).close()


def assert_process_gone(handle: object) -> None:
    assert isinstance(handle, LocalServerProcess)
    pid = handle.pid
    assert pid is not None
    assert not handle.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not handle.workdir.exists()


# -- pure parts ------------------------------------------------------------------------------------


def test_unique_database_names_are_safe_and_distinct() -> None:
    name = unique_database_name()
    assert re.fullmatch(rf"dbkit_t_{os.getpid()}_\d+_[0-9a-f]{{6}}", name)
    assert unique_database_name("My-Test[param 1]").startswith("dbkit_my_test_param_1_")
    assert unique_database_name("!!!").startswith("dbkit_t_")
    assert len(unique_database_name("x" * 200)) <= 63
    names = {unique_database_name() for _ in range(2000)}
    assert len(names) == 2000
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)


def test_requirements_are_frozen_and_checked_per_kind() -> None:
    requirements = ServerRequirements(logical_replication=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        requirements.binlog = True  # type: ignore[misc]
    assert requirements.describe() == "logical_replication"
    with pytest.raises(ValueError, match="binlog"):
        find_server("postgres", ServerRequirements(binlog=True), providers="env")
    with pytest.raises(ValueError, match="logical_replication"):
        find_server("mysql", ServerRequirements(logical_replication=True), providers="env")
    with pytest.raises(ValueError, match="unknown server kind"):
        find_server("oracle")


def test_resolve_providers_order_env_var_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_providers() == DEFAULT_PROVIDER_ORDER
    assert DEFAULT_PROVIDER_ORDER == ("env", "container", "local-binaries", "local-service")
    monkeypatch.setenv(PROVIDER_ENV_VAR, " local-service, env ,local-service")
    assert resolve_providers() == ("local-service", "env")
    assert resolve_providers(["container"]) == ("container",)  # the argument wins
    with pytest.raises(ValueError, match="unknown server provider 'docker'"):
        resolve_providers("env,docker")


def test_test_database_connection_params_and_not_collected() -> None:
    pg = TestDatabase(
        kind="postgres", name="d", url="u", host="h", port=1, user="u", password="p", database="d"
    )
    assert pg.connection_params() == {"host": "h", "port": 1, "user": "u", "password": "p", "dbname": "d"}
    my = dataclasses.replace(pg, kind="mysql")
    assert my.connection_params()["database"] == "d"
    assert TestDatabase.__test__ is False


def test_mysql_identifiers_are_backtick_quoted() -> None:
    assert quote_identifier("plain") == "`plain`"
    assert quote_identifier("a`b") == "`a``b`"


def test_container_images_are_pinned_in_one_place() -> None:
    assert set(CONTAINER_IMAGES) == {"postgres", "mysql", "mariadb"}
    for image in CONTAINER_IMAGES.values():
        assert re.fullmatch(r"[a-z]+:\d+(\.\d+)*", image), image
    image, command = container_spec("postgres")
    assert image == CONTAINER_IMAGES["postgres"]
    assert command == (
        "-c",
        "wal_level=logical",
        "-c",
        "max_replication_slots=10",
        "-c",
        "max_wal_senders=10",
    )
    image, command = container_spec("mysql")
    assert image == CONTAINER_IMAGES["mysql"]
    assert {"--log-bin", "--binlog-format=ROW", "--gtid-mode=ON", "--enforce-gtid-consistency=ON"} <= set(
        command
    )
    image, command = container_spec("mysql", "mariadb")
    assert image == CONTAINER_IMAGES["mariadb"]
    assert "--binlog-row-image=FULL" in command
    assert not any(arg.startswith("--gtid") for arg in command)
    with pytest.raises(ValueError, match="mysql' or 'mariadb"):
        container_spec("mysql", "oracle")


def test_importing_servers_needs_no_docker_or_testcontainers() -> None:
    code = (
        "import sys, dbkit.testing, dbkit.testing.servers, dbkit.testing.fixtures\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('docker', 'testcontainers')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    light = "import sys, dbkit.testing; assert 'dbkit.testing.servers' not in sys.modules"
    subprocess.run([sys.executable, "-c", light], check=True, timeout=60)


# -- the local services ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_local_service_reports_settings_and_hosts_databases(kind: ServerKind) -> None:
    with local_service(kind) as server:
        assert (server.kind, server.provider, server.port) == (
            kind,
            "local-service",
            5432 if kind == "postgres" else 3306,
        )
        assert server.handle is None
        assert set(server.settings) == {"logical_replication", "binlog"}
        if kind == "postgres":
            assert server.flavor == "postgresql"
            assert server.admin_url == LOCAL_URLS["postgres"]
            with psycopg.connect(**server.connection_params()) as conn:
                live = conn.execute("SHOW wal_level").fetchone()
            assert live is not None
            assert server.server_variables["wal_level"] == live[0]
            assert server.settings["logical_replication"] == (live[0] == "logical")
            assert server.settings["binlog"] is False
        else:
            assert server.flavor in ("mariadb", "mysql")
            assert server.admin_url == LOCAL_URLS["mysql"]
            conn = server.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT @@log_bin")
                (log_bin,) = cur.fetchone()
            conn.close()
            assert server.server_variables["log_bin"] == str(log_bin)
            assert server.settings["logical_replication"] is False
        assert server.version >= ((10,) if kind == "postgres" else (5, 7))

        db = server.create_database(prefix="local")
        assert db.name.startswith("dbkit_local_")
        assert db.database == db.name
        assert db.url.startswith("postgresql+psycopg://" if kind == "postgres" else "mysql+pymysql://")
        assert server.database_exists(db.name)
        roundtrip_table(db)
        connect_driver(db)
        server.drop_database(db.name)
        assert not server.database_exists(db.name)
        with pytest.raises((psycopg.OperationalError, pymysql.err.OperationalError)):
            connect_driver(db)

        with pytest.raises(ValueError, match="refusing"):
            server.drop_database("postgres" if kind == "postgres" else "mysql")
        # Names are quoted, never pasted: this is one odd (absent) name, not two statements.
        server.drop_database('x"`; DROP DATABASE test; --')
        leftover = server.create_database()
    assert server.closed
    with pytest.raises(RuntimeError, match="closed"):
        server.create_database()
    # Closing a server we do not own drops what it created but leaves the service running.
    with local_service(kind) as again:
        assert not again.database_exists(leftover.name)


# -- throwaway servers from local binaries -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_throwaway_postgres_with_logical_wal() -> None:
    require_binaries("postgres")
    server = find_server("postgres", SPECIAL["postgres"], providers=["local-binaries"])
    handle = server.handle
    assert isinstance(handle, LocalServerProcess)
    with server:
        assert server.provider == "local-binaries"
        assert server.settings["logical_replication"] is True
        assert server.host == "127.0.0.1"
        assert server.port != 5432
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the postgres OS user
            assert handle.pid is not None
            assert Path(f"/proc/{handle.pid}").stat().st_uid == (handle.run_as.uid if handle.run_as else -1)
        db = server.create_database()
        assert scalar(db, "SHOW wal_level") == "logical"
        assert scalar(db, "SHOW listen_addresses") == "127.0.0.1"
        assert scalar(db, "SHOW fsync") == "off"
        roundtrip_table(db)
        with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
            conn.execute("SELECT pg_create_logical_replication_slot('dbkit_slot', 'test_decoding')")
            conn.execute("INSERT INTO items VALUES (3, 'three')")
            changes = conn.execute(
                "SELECT data FROM pg_logical_slot_get_changes('dbkit_slot', NULL, NULL)"
            ).fetchall()
            conn.execute("SELECT pg_drop_replication_slot('dbkit_slot')")
        assert any("three" in str(row[0]) for row in changes)
        server.drop_database(db.name)
        assert not server.database_exists(db.name)
    assert_process_gone(handle)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


@pytest.mark.slow
@pytest.mark.mysql
def test_throwaway_mysql_with_binlog_and_real_auth() -> None:
    require_binaries("mysql")
    server = find_server("mysql", SPECIAL["mysql"], providers=["local-binaries"])
    handle = server.handle
    with server:
        assert server.provider == "local-binaries"
        assert server.settings["binlog"] is True
        db = server.create_database()
        assert scalar(db, "SELECT @@log_bin") == 1
        assert scalar(db, "SELECT @@binlog_format") == "ROW"
        assert scalar(db, "SELECT @@bind_address") == "127.0.0.1"
        roundtrip_table(db)
        with pytest.raises(pymysql.err.OperationalError) as denied:
            pymysql.connect(**{**db.connection_params(), "password": "wrong"}, connect_timeout=3)
        assert denied.value.args[0] == 1045  # access denied: grant tables are on
        server.drop_database(db.name)
        assert not server.database_exists(db.name)
    assert_process_gone(handle)


# -- the finder: order, requirements, forcing --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_requirements_pass_over_the_local_service(kind: ServerKind) -> None:
    service = local_service(kind)
    if service.satisfies(SPECIAL[kind]):
        pytest.skip(f"the local {kind} service already meets {SPECIAL[kind]}; nothing to pass over")
    require_binaries(kind)
    order = ["local-service", "local-binaries"]
    with find_server(kind, providers=order) as plain:
        assert plain.provider == "local-service"
        assert plain.skipped_providers == ()
    with find_server(kind, SPECIAL[kind], providers=order) as special:
        assert special.provider == "local-binaries"
        assert special.satisfies(SPECIAL[kind])
        [(name, reason)] = special.skipped_providers
        assert name == "local-service"
        assert ("wal_level=" if kind == "postgres" else "log_bin=") in reason


@pytest.mark.slow
@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_default_order_tries_env_then_container_first(kind: ServerKind) -> None:
    require_binaries(kind)
    if ContainerProvider().precheck(kind) is None:
        pytest.skip("a Docker engine answers here, so the container provider would win")
    with find_server(kind, SPECIAL[kind]) as server:
        assert server.provider == "local-binaries"
        assert [name for name, _ in server.skipped_providers] == ["env", "container"]
        env_reason, container_reason = (reason for _, reason in server.skipped_providers)
        assert env_reason == f"{URL_ENV_VARS[kind]} is not set"
        assert "Docker" in container_reason


@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_env_provider_uses_the_url(kind: ServerKind, monkeypatch: pytest.MonkeyPatch) -> None:
    local_service(kind).close()  # skip unless the local service answers
    monkeypatch.setenv(URL_ENV_VARS[kind], LOCAL_URLS[kind])
    with find_server(kind, providers="env") as server:
        assert (server.provider, server.host, server.port) == (
            "env",
            "127.0.0.1",
            5432 if kind == "postgres" else 3306,
        )
        assert server.admin_url == LOCAL_URLS[kind]
        db = server.create_database()
        roundtrip_table(db)
        server.drop_database(db.name)
    # The default order takes the env URL first when requirements allow.
    with find_server(kind) as server:
        assert server.provider == "env"


@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_env_provider_reasons(kind: ServerKind, monkeypatch: pytest.MonkeyPatch) -> None:
    var = URL_ENV_VARS[kind]

    def reason() -> str:
        with pytest.raises(NoServerAvailable) as caught:
            find_server(kind, providers="env")
        [(name, text)] = caught.value.reasons
        assert name == "env"
        return text

    assert reason() == f"{var} is not set"
    monkeypatch.setenv(var, "sqlite:///nothing.db")
    assert reason() == f"{var} is a sqlite URL; expected " + (
        "postgresql" if kind == "postgres" else "mysql or mariadb"
    )
    dead = LOCAL_URLS[kind].replace(":5432/", f":{free_port()}/").replace(":3306/", f":{free_port()}/")
    monkeypatch.setenv(var, dead)
    assert "did not answer" in reason()
    service = local_service(kind)
    if not service.satisfies(SPECIAL[kind]):
        monkeypatch.setenv(var, LOCAL_URLS[kind])
        with pytest.raises(NoServerAvailable, match="does not meet the requirements"):
            find_server(kind, SPECIAL[kind], providers="env")


def test_forcing_providers_with_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    local_service("postgres").close()
    monkeypatch.setenv(PROVIDER_ENV_VAR, "local-service")
    with find_server("postgres") as server:
        assert server.provider == "local-service"
    monkeypatch.setenv(PROVIDER_ENV_VAR, "env,local-service")
    with find_server("postgres") as server:
        assert server.provider == "local-service"
        assert server.skipped_providers == (("env", "DBKIT_TEST_POSTGRES_URL is not set"),)
    monkeypatch.setenv(PROVIDER_ENV_VAR, "env")
    with find_server("postgres", providers=["local-service"]) as server:  # the argument wins
        assert server.provider == "local-service"


def test_no_server_available_lists_every_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROVIDER_ENV_VAR, "env")
    with pytest.raises(NoServerAvailable) as caught:
        find_server("postgres")
    assert str(caught.value) == (
        "no postgres server available (requirements: none):\n  - env: DBKIT_TEST_POSTGRES_URL is not set"
    )
    assert pickle.loads(pickle.dumps(caught.value)).reasons == caught.value.reasons  # noqa: S301 - our own bytes

    nobody = LocalServiceProvider(postgres_port=free_port(), mysql_port=free_port())
    with pytest.raises(NoServerAvailable) as caught:
        find_server("mysql", ServerRequirements(binlog=True), providers=["env", nobody])
    message = str(caught.value)
    assert message.startswith("no mysql server available (requirements: binlog):")
    assert "  - env: DBKIT_TEST_MYSQL_URL is not set" in message
    assert (
        f"  - local-service: the local mysql service on 127.0.0.1:{nobody.ports['mysql']} did not answer"
        in message
    )

    # The fixtures turn it into a skip carrying the same reasons...
    monkeypatch.delenv(fixtures.REQUIRE_ENV_VAR, raising=False)
    with pytest.raises(pytest.skip.Exception, match="DBKIT_TEST_POSTGRES_URL is not set"):
        fixtures.server_or_skip("postgres", ServerRequirements())
    # ...or, where servers are required (the project's CI), into a failure with those reasons.
    monkeypatch.setenv(fixtures.REQUIRE_ENV_VAR, "1")
    with pytest.raises(pytest.fail.Exception, match="DBKIT_TEST_POSTGRES_URL is not set"):
        fixtures.server_or_skip("postgres", ServerRequirements())


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_container_provider(kind: ServerKind) -> None:
    provider = ContainerProvider()
    reason = provider.precheck(kind)
    if reason:
        pytest.skip(f"container provider unavailable: {reason}")
    with find_server(kind, SPECIAL[kind], providers=[provider]) as server:
        assert server.provider == "container"
        assert server.satisfies(SPECIAL[kind])
        db = server.create_database()
        roundtrip_table(db)
        server.drop_database(db.name)
        assert not server.database_exists(db.name)


# -- the cache and the pytest fixtures ----------------------------------------------------------------


def test_get_server_shares_one_server_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    local_service("postgres").close()
    first = get_server("postgres", providers=("env", "local-service"))
    assert get_server("postgres", None, ["env", "local-service"]) is first
    assert first.provider == "local-service"
    monkeypatch.setenv(URL_ENV_VARS["postgres"], LOCAL_URLS["postgres"])  # the environment is part of the key
    from_env = get_server("postgres", providers=("env", "local-service"))
    assert from_env is not first
    assert from_env.provider == "env"
    first.close()
    monkeypatch.delenv(URL_ENV_VARS["postgres"])
    replacement = get_server("postgres", providers=("env", "local-service"))
    assert replacement is not first
    assert not replacement.closed


@pytest.mark.slow
@pytest.mark.parametrize("kind", BOTH_KINDS)
def test_concurrent_databases_get_distinct_names_and_drop_removes_them(
    kind: ServerKind, request: pytest.FixtureRequest
) -> None:
    server: DatabaseServer = request.getfixturevalue(f"{kind}_server")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        databases = list(pool.map(lambda _: server.create_database(), range(6)))
        assert len({db.name for db in databases}) == 6
        assert all(server.database_exists(db.name) for db in databases)
        busy = server.connect(databases[0].name)  # a session in an open transaction holding a table lock
        cur = busy.cursor()
        cur.execute("CREATE TABLE held (id INTEGER)")
        if kind == "postgres":
            busy.autocommit = False
        else:
            cur.execute("BEGIN")
        cur.execute("SELECT * FROM held")
        list(pool.map(lambda db: server.drop_database(db.name), databases))
    assert not any(server.database_exists(db.name) for db in databases)
    with contextlib.suppress(Exception):  # the server ended that session
        busy.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_db_fixture(postgres_db: TestDatabase, postgres_server: DatabaseServer) -> None:
    assert scalar(postgres_db, "SELECT current_database()") == postgres_db.name
    assert postgres_server.database_exists(postgres_db.name)
    assert f"_{os.getpid()}_" in postgres_db.name  # per-process names keep xdist workers apart


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_db_logical_fixture_drops_its_replication_slots(
    postgres_server_logical: DatabaseServer,
) -> None:
    """A per-test database on the logical server; dropping it drops its logical slots (an active
    one too: its walsender is ended first), which DROP DATABASE alone refuses."""
    db = postgres_server_logical.create_database(prefix="t")
    assert scalar(db, "SHOW wal_level") == "logical"
    with psycopg.connect(**db.connection_params(), autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [f"{db.name}_idle"])
    walsender = psycopg.connect(**db.connection_params(), autocommit=True, replication="database")
    walsender.execute(f'CREATE_REPLICATION_SLOT "{db.name}_busy" TEMPORARY LOGICAL pgoutput')
    postgres_server_logical.drop_database(db.name)
    assert not postgres_server_logical.database_exists(db.name)
    with postgres_server_logical.connect() as admin:
        left = admin.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s", [f"{db.name}%"]
        ).fetchall()
    assert left == []
    with contextlib.suppress(psycopg.Error):
        walsender.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_db_logical_fixture(
    postgres_db_logical: TestDatabase, postgres_server_logical: DatabaseServer
) -> None:
    assert scalar(postgres_db_logical, "SELECT current_database()") == postgres_db_logical.name
    assert scalar(postgres_db_logical, "SHOW wal_level") == "logical"
    assert postgres_server_logical.provider != "local-service"  # the shared service is wal_level=replica


@pytest.mark.slow
@pytest.mark.mysql
def test_mysql_db_fixture(mysql_db: TestDatabase, mysql_server: DatabaseServer) -> None:
    assert scalar(mysql_db, "SELECT DATABASE()") == mysql_db.name
    assert mysql_server.database_exists(mysql_db.name)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mysql
def test_replication_fixtures(
    postgres_server_logical: DatabaseServer, mysql_server_binlog: DatabaseServer
) -> None:
    assert postgres_server_logical.settings["logical_replication"] is True
    assert mysql_server_binlog.settings["binlog"] is True


# -- crash leftovers ----------------------------------------------------------------------------------


def test_reap_stale_servers_stops_orphans(tmp_path: Path) -> None:
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    stale = tmp_path / f"{DIR_PREFIX}fake-abc"
    stale.mkdir()
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(stale)], start_new_session=True
    )
    cmdline = Path(f"/proc/{orphan.pid}/cmdline")
    deadline = time.monotonic() + 5
    while str(stale).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)  # right after exec the kernel may not show the new command line yet
    owner = {
        "owner_pid": dead_owner.pid,
        "hostname": socket.gethostname(),
        "server_pid": orphan.pid,
        "stop_signal": 15,
    }
    (stale / OWNER_FILE).write_text(json.dumps(owner))
    alive = tmp_path / f"{DIR_PREFIX}alive-abc"
    alive.mkdir()
    (alive / OWNER_FILE).write_text(json.dumps({**owner, "owner_pid": os.getpid(), "server_pid": None}))
    try:
        assert reap_stale_servers(tmp_path) == [stale]
        assert orphan.wait(timeout=5) is not None
    finally:
        orphan.kill()
    assert not stale.exists()
    assert alive.exists()


def test_local_server_process_failures_carry_the_log_tail() -> None:
    proc = LocalServerProcess("fake")
    try:
        crash = "import sys; print('boom: Address already in use', file=sys.stderr); sys.exit(3)"
        proc.start([sys.executable, "-c", crash])
        with pytest.raises(LocalServerError, match="exited with code 3") as caught:
            proc.wait_until_ready(lambda: 1 / 0, timeout=10, what="fake")
        assert "boom: Address already in use" in str(caught.value)
        assert caught.value.port_in_use
        proc.start([sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(
            LocalServerError, match=r"did not accept connections within 0.3s \(last error: division"
        ):
            proc.wait_until_ready(lambda: 1 / 0, timeout=0.3, what="fake")
        assert proc.running
    finally:
        proc.close()
    assert_process_gone(proc)
