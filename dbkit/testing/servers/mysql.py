"""MySQL and MariaDB: admin statements, settings probes, and a throwaway server from local binaries."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]

from dbkit.testing.servers.base import DatabaseServer, ProviderUnavailable, ServerRequirements
from dbkit.testing.servers.local_process import LocalServerError, LocalServerProcess

logger = logging.getLogger(__name__)

SUPERUSER = "root"
SERVER_BINARIES = ("mariadbd", "mysqld")
INSTALL_DB_SCRIPTS = ("mariadb-install-db", "mysql_install_db")
# Where distributions put the server (often not on a non-root user's PATH).
SEARCH_DIRS = (
    "/usr/sbin",
    "/usr/bin",
    "/usr/libexec",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/local/mysql/bin",
)
BINLOG_ARGS = ("--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1")
MYSQL_GTID_ARGS = ("--gtid-mode=ON", "--enforce-gtid-consistency=ON")  # MySQL only; MariaDB always has GTIDs
DROP_LOCK_WAIT_SECONDS = 60


def quote_identifier(name: str) -> str:
    """Backtick-quote a MySQL identifier, doubling embedded backticks."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL")
    return "`" + name.replace("`", "``") + "`"


def _flavor_of(version_text: str) -> str:
    return "mariadb" if "mariadb" in version_text.lower() else "mysql"


def _parse_version(version_text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version_text)
    if match is None:
        return (0,)
    return tuple(int(part) for part in match.groups() if part is not None)


class MySQLServer(DatabaseServer):
    kind = "mysql"
    driver = "mysql+pymysql"

    def connection_params(self, database: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        database = database or self.admin_database
        if database:
            params["database"] = database
        return params

    def connect(self, database: str | None = None) -> Any:
        """An autocommit pymysql connection to ``database`` (the admin database when None)."""
        return pymysql.connect(
            **self.connection_params(database),
            autocommit=True,
            charset="utf8mb4",
            connect_timeout=max(1, round(self.connect_timeout)),
        )

    def _probe(self) -> tuple[str, tuple[int, ...], dict[str, bool], dict[str, str]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
                version_text, log_bin, binlog_format, row_image, server_id = cur.fetchone()
                variables = {
                    "version": str(version_text),
                    "log_bin": "1" if str(log_bin).upper() in ("1", "ON") else "0",
                    "binlog_format": str(binlog_format).upper(),
                    "binlog_row_image": str(row_image).upper(),
                    "server_id": str(server_id),
                }
                flavor = _flavor_of(variables["version"])
                if flavor == "mysql":
                    cur.execute("SELECT @@gtid_mode")
                    variables["gtid_mode"] = str(cur.fetchone()[0]).upper()
        finally:
            conn.close()
        settings = {"logical_replication": False, "binlog": not _binlog_problems(variables)}
        return flavor, _parse_version(variables["version"]), settings, variables

    def unmet_requirements(self, requirements: ServerRequirements) -> list[str]:
        problems: list[str] = []
        if requirements.binlog:
            problems.extend(_binlog_problems(self.server_variables))
        if requirements.logical_replication:
            problems.append("MySQL/MariaDB has no PostgreSQL-style logical replication (ask for binlog)")
        return problems

    def _create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def _drop_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # Like PostgreSQL's WITH (FORCE): end sessions using the database so DROP cannot block.
                cur.execute(
                    "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                    [name],
                )
                for (thread_id,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL {int(thread_id)}")
                    except pymysql.err.MySQLError as exc:  # already gone, or not ours to kill
                        logger.debug("could not kill session %s using %s: %s", thread_id, name, exc)
                # Fail within a bounded time rather than wait (default: a year) on someone's metadata lock.
                cur.execute("SET SESSION lock_wait_timeout = %s", [DROP_LOCK_WAIT_SECONDS])
                cur.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")
        finally:
            conn.close()

    def database_exists(self, name: str) -> bool:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
                return cur.fetchone() is not None
        finally:
            conn.close()


def _binlog_problems(variables: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if variables.get("log_bin") != "1":
        problems.append(f"log_bin={variables.get('log_bin', 'unknown')} (the binlog must be on)")
        return problems
    if variables.get("binlog_format") != "ROW":
        problems.append(f"binlog_format={variables.get('binlog_format')} (needs ROW)")
    if variables.get("binlog_row_image") != "FULL":
        problems.append(f"binlog_row_image={variables.get('binlog_row_image')} (needs FULL)")
    return problems


# -- throwaway server from local binaries ------------------------------------------------------------


@dataclass(frozen=True)
class MySQLBinaries:
    server: Path
    flavor: str  # "mariadb" or "mysql"
    version_text: str
    install_db: Path | None  # MariaDB's install script; MySQL initialises with the server itself


def _which(names: tuple[str, ...]) -> Path | None:
    search = os.pathsep.join(SEARCH_DIRS)
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=search)
        if found:
            return Path(found)
    return None


def find_mysql_binaries() -> MySQLBinaries:
    """Locate a MariaDB or MySQL server binary; ProviderUnavailable if none is usable."""
    server = _which(SERVER_BINARIES)
    if server is None:
        raise ProviderUnavailable(
            f"no MySQL/MariaDB server binary ({', '.join(SERVER_BINARIES)})"
            f" on PATH or in {', '.join(SEARCH_DIRS)}"
        )
    try:
        version_text = subprocess.run(
            [server, "--no-defaults", "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProviderUnavailable(f"{server} --version failed: {exc}") from exc
    flavor = _flavor_of(version_text)
    install_db = _which(INSTALL_DB_SCRIPTS) if flavor == "mariadb" else None
    if flavor == "mariadb" and install_db is None:
        raise ProviderUnavailable(
            f"found {server} but no {' or '.join(INSTALL_DB_SCRIPTS)} to initialise a datadir"
        )
    return MySQLBinaries(server=server, flavor=flavor, version_text=version_text, install_db=install_db)


def start_local_mysql(
    requirements: ServerRequirements | None = None,
    *,
    binaries: MySQLBinaries | None = None,
    timeout: float = 60.0,
) -> MySQLServer:
    """Initialise a throwaway datadir in a temporary directory and run the server on a free 127.0.0.1 port.

    Real authentication stays on (root with an empty password), so wrong-password tests behave.
    Closing the returned server shuts it down and removes the directory.
    """
    requirements = requirements or ServerRequirements()
    requirements.validate_for("mysql")
    binaries = binaries or find_mysql_binaries()
    as_root = ["--user=root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    proc = LocalServerProcess("mysql")
    try:
        workdir = proc.workdir
        datadir = workdir / "data"
        # a private tmpdir: a server starting up removes the "#sql*" files it finds in its tmpdir,
        # and with a shared /tmp it removed those of another server being installed in parallel
        tmpdir = workdir / "tmp"
        tmpdir.mkdir(exist_ok=True)
        if binaries.install_db is not None:
            proc.run_setup(
                [
                    binaries.install_db,
                    "--no-defaults",
                    f"--datadir={datadir}",
                    f"--tmpdir={tmpdir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *as_root,
                ]
            )
        else:  # Oracle MySQL: root@localhost with no password, plus root@127.0.0.1 for TCP clients
            init_file = workdir / "init.sql"
            init_file.write_text(
                "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';\n"
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
            )
            proc.run_setup(
                [
                    binaries.server,
                    "--no-defaults",
                    "--initialize-insecure",
                    f"--datadir={datadir}",
                    f"--tmpdir={tmpdir}",
                    f"--init-file={init_file}",
                    *as_root,
                ]
            )
        log_args: list[str] = ["--skip-log-bin"]
        if requirements.binlog:
            log_args = [*BINLOG_ARGS, *(MYSQL_GTID_ARGS if binaries.flavor == "mysql" else ())]
        flavor_args = ["--mysqlx=OFF"] if binaries.flavor == "mysql" else []  # no fixed port 33060

        def argv(port: int) -> list[str | os.PathLike[str]]:
            return [
                binaries.server,
                "--no-defaults",
                f"--datadir={datadir}",
                f"--tmpdir={tmpdir}",
                f"--socket={workdir / 'mysqld.sock'}",
                f"--pid-file={workdir / 'mysqld.pid'}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--innodb-flush-log-at-trx-commit=2",
                *as_root,
                *flavor_args,
                *log_args,
            ]

        def probe(port: int) -> None:
            pymysql.connect(
                host="127.0.0.1", port=port, user=SUPERUSER, password="", connect_timeout=2
            ).close()

        port = proc.start_on_free_port(argv, probe, what=binaries.flavor, timeout=timeout)
        return MySQLServer(
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            provider="local-binaries",
            handle=proc,
        )
    except (LocalServerError, OSError, pymysql.err.MySQLError) as exc:
        proc.close()
        raise ProviderUnavailable(f"could not start {binaries.flavor} from {binaries.server}: {exc}") from exc
    except BaseException:
        proc.close()
        raise
