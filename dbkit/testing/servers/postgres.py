"""PostgreSQL: admin statements, settings probes, and a throwaway server from local binaries."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from dbkit.testing.servers.base import DatabaseServer, ProviderUnavailable, ServerRequirements
from dbkit.testing.servers.local_process import LocalServerError, LocalServerProcess, RunAs, run_as_when_root

DEFAULT_ADMIN_DATABASE = "postgres"
SUPERUSER = "postgres"
# Settings that make a throwaway server fast; durability does not matter for test data.
FAST_SETTINGS = ("fsync=off", "full_page_writes=off")
# Only without logical replication: logical decoding reads WAL up to the flushed position, so with
# asynchronous commit a change shows up in a slot only after the WAL writer's next round (~200 ms+),
# which makes "insert, then read the slot" tests flaky. With fsync=off a synchronous commit is cheap.
ASYNC_COMMIT_SETTING = "synchronous_commit=off"
REPLICATION_SETTINGS = ("max_replication_slots=10", "max_wal_senders=10")
PROBED_VARIABLES = ("wal_level", "max_replication_slots", "max_wal_senders")


class PostgresServer(DatabaseServer):
    kind = "postgres"
    driver = "postgresql+psycopg"

    def connection_params(self, database: str | None = None) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database or self.admin_database or DEFAULT_ADMIN_DATABASE,
        }

    def connect(self, database: str | None = None) -> psycopg.Connection[TupleRow]:
        """An autocommit psycopg connection to ``database`` (the admin database when None)."""
        params = self.connection_params(database)
        params["connect_timeout"] = max(1, round(self.connect_timeout))
        return psycopg.connect(make_conninfo("", **params), autocommit=True)

    def _probe(self) -> tuple[str, tuple[int, ...], dict[str, bool], dict[str, str]]:
        with self.connect() as conn:
            number = conn.info.server_version
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(PROBED_VARIABLES)]
            ).fetchall()
        variables = {str(name): str(setting) for name, setting in rows}
        version = (
            (number // 10000, number % 10000)
            if number >= 100000
            else (number // 10000, number // 100 % 100, number % 100)
        )
        settings = {
            "logical_replication": not _logical_replication_problems(variables),
            "binlog": False,
        }
        return "postgresql", version, settings, variables

    def unmet_requirements(self, requirements: ServerRequirements) -> list[str]:
        problems: list[str] = []
        if requirements.logical_replication:
            problems.extend(_logical_replication_problems(self.server_variables))
        if requirements.binlog:
            problems.append("PostgreSQL has no binlog")
        return problems

    def _create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def _drop_database(self, name: str) -> None:
        """End the database's sessions (walsenders too), drop its logical replication slots (which
        DROP DATABASE refuses to drop for us), then the database."""
        with self.connect() as conn:
            if self.version >= (10,):
                _drop_replication_slots(conn, name)
            if self.version >= (13,):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                return
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def database_exists(self, name: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _drop_replication_slots(conn: psycopg.Connection[TupleRow], database: str, timeout: float = 10.0) -> None:
    """Drop every replication slot of ``database``, first ending the sessions that hold them."""
    deadline = time.monotonic() + timeout
    while True:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        slots = conn.execute(
            "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", [database]
        ).fetchall()
        if not slots:
            return
        for slot_name, active_pid in slots:
            if active_pid is None:
                with contextlib.suppress(psycopg.errors.UndefinedObject, psycopg.errors.ObjectInUse):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot_name])
        if time.monotonic() > deadline:
            names = ", ".join(str(s[0]) for s in slots)
            raise RuntimeError(f"could not drop the replication slots of database {database}: {names}")
        time.sleep(0.05)


def _logical_replication_problems(variables: dict[str, str]) -> list[str]:
    problems: list[str] = []
    wal_level = variables.get("wal_level", "unknown")
    if wal_level != "logical":
        problems.append(f"wal_level={wal_level} (logical replication needs wal_level=logical)")
    for name in ("max_replication_slots", "max_wal_senders"):
        value = variables.get(name, "0")
        if not value.isdigit() or int(value) < 1:
            problems.append(f"{name}={value} (logical replication needs at least 1)")
    return problems


# -- throwaway server from local binaries ------------------------------------------------------------


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``; ProviderUnavailable if none is installed."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    candidates.extend(
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    )
    candidates.extend(Path(p) for p in ("/usr/local/pgsql/bin", "/usr/pgsql/bin"))
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return bindir
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates)) or "nowhere"
    raise ProviderUnavailable(
        f"no PostgreSQL server binaries (initdb and postgres) found; looked in: {looked}"
        " (pg_config --bindir, /usr/lib/postgresql/*/bin)"
    )


def _prepare_data_directory(
    datadir: Path, hba: Sequence[str], files: Mapping[str, bytes], run_as: RunAs | None
) -> None:
    """Extra pg_hba.conf lines (first) and files (mode 0600, the server's) in a fresh data directory."""
    if hba:
        conf = datadir / "pg_hba.conf"
        conf.write_text("".join(f"{line}\n" for line in hba) + conf.read_text())
    for name, content in files.items():
        path = datadir / name
        path.write_bytes(content)
        path.chmod(0o600)
        if run_as is not None:
            os.chown(path, run_as.uid, run_as.gid)


def start_local_postgres(
    requirements: ServerRequirements | None = None,
    *,
    bindir: Path | None = None,
    timeout: float = 60.0,
    settings: Sequence[str] = (),
    hba: Sequence[str] = (),
    data_files: Mapping[str, bytes] | None = None,
) -> PostgresServer:
    """initdb a throwaway cluster in a temporary directory and run it on a free 127.0.0.1 port.

    When we are root, initdb and postgres run as the ``postgres`` OS user (PostgreSQL refuses root).
    Closing the returned server stops the postmaster and removes the directory.

    For tests of authentication and encryption: ``settings`` are extra ``name=value`` server
    settings (``ssl=on``), ``hba`` lines go first in pg_hba.conf (the first matching line wins,
    e.g. ``host all reader 127.0.0.1/32 scram-sha-256``; every other login keeps trust), and
    ``data_files`` are written into the data directory, readable by the server only (``server.crt``
    and ``server.key`` are where ``ssl=on`` looks by default).
    """
    requirements = requirements or ServerRequirements()
    requirements.validate_for("postgres")
    bindir = bindir or find_postgres_bindir()
    try:
        run_as = run_as_when_root("postgres")
    except LookupError as exc:
        raise ProviderUnavailable(str(exc)) from None
    proc = LocalServerProcess("postgres", run_as=run_as)
    try:
        datadir = proc.workdir / "data"
        proc.run_setup(
            [
                bindir / "initdb",
                "--pgdata",
                datadir,
                "--username",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        _prepare_data_directory(datadir, hba, data_files or {}, run_as)
        wal_level = "logical" if requirements.logical_replication else "replica"
        all_settings = [
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={proc.workdir}",
            f"wal_level={wal_level}",
            *REPLICATION_SETTINGS,
            *FAST_SETTINGS,
            *(() if requirements.logical_replication else (ASYNC_COMMIT_SETTING,)),
            *settings,
        ]

        def argv(port: int) -> list[str | os.PathLike[str]]:
            args: list[str | os.PathLike[str]] = [bindir / "postgres", "-D", datadir, "-p", str(port)]
            for setting in all_settings:
                args += ["-c", setting]
            return args

        def probe(port: int) -> None:
            psycopg.connect(
                host="127.0.0.1", port=port, user=SUPERUSER, dbname=DEFAULT_ADMIN_DATABASE, connect_timeout=2
            ).close()

        # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM would wait for clients to disconnect).
        port = proc.start_on_free_port(
            argv, probe, what="PostgreSQL", timeout=timeout, stop_signal=signal.SIGINT
        )
        return PostgresServer(
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            admin_database=DEFAULT_ADMIN_DATABASE,
            provider="local-binaries",
            handle=proc,
        )
    except (LocalServerError, OSError, psycopg.Error) as exc:
        proc.close()
        raise ProviderUnavailable(f"could not start PostgreSQL from {bindir}: {exc}") from exc
    except BaseException:
        proc.close()
        raise
