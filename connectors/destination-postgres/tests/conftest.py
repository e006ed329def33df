"""``pg``: destination-postgres run as a subprocess (as a platform runs it) against a fresh
PostgreSQL database, with helpers to read back exactly what it stored.

The message builders are those of the shared acceptance suite
(:mod:`dbkit.testing.suites.destination`); test modules import them from there (tests run with
``--import-mode=importlib``, so they cannot import from this directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from dbkit import load_config
from dbkit.destination import TablePlan, plan_tables
from dbkit.protocol import parse_configured_catalog
from dbkit.testing import RunResult, to_line
from dbkit.testing.suites import PostgresDestinationHarness
from destination_postgres import PostgresDestination
from destination_postgres.raw import raw_table_names

WORKING_TABLES = ("%\\_airbyte\\_tmp%", "\\_dbkit\\_%")


class Pg(PostgresDestinationHarness):
    command: ClassVar[str] = "destination-postgres"
    connector_class: ClassVar[type[Any]] = PostgresDestination

    # ------------------------------------------------------------------ running
    def write(self, catalog: Mapping[str, Any], messages: Sequence[Any], **config: Any) -> RunResult:
        return self.runner().write(self.config(**config), catalog, messages)

    def start(
        self,
        catalog: Mapping[str, Any],
        messages: Sequence[Any],
        before_input: Callable[[], None] | None = None,
        **config: Any,
    ) -> Killable:
        """A write running in the background (its input already written), to be killed; with
        ``before_input``, the input is sent only once that has returned (on another thread)."""
        runner = self.runner()
        argv = [
            *runner.argv,
            "write",
            "--config",
            runner._file("config", self.config(**config)),
            "--catalog",
            runner._file("catalog", catalog),
        ]
        stdin = self.tmp_path / f"input-{time.monotonic_ns()}.jsonl"
        stdin.write_bytes(b"".join(to_line(m) for m in messages))
        return Killable(argv, stdin, self.tmp_path, before_input)

    def wait_for_setup(self, table: str, generation: int, timeout: float = 60.0) -> None:
        """Wait until a write's setup is done: ``table``'s ``_airbyte_generation_id`` default is
        the write's ``generation`` (set by its setup; make it differ from the write before)."""
        deadline = time.monotonic() + timeout
        query = (
            "SELECT column_default FROM information_schema.columns WHERE table_name = :t "
            "AND column_name = '_airbyte_generation_id'"
        )
        while str(generation) not in str(self.query(query, t=table)):
            assert time.monotonic() < deadline, "the write's setup did not finish"
            time.sleep(0.05)

    # ------------------------------------------------------------------ reading
    def plans(self, catalog: Mapping[str, Any], **config: Any) -> dict[Any, TablePlan]:
        dialect = PostgresDestination.dialect_class(
            load_config(PostgresDestination.config_model, self.config(**config))
        )
        return plan_tables(dialect, parse_configured_catalog(catalog))

    def plan(self, catalog: Mapping[str, Any], name: str, **config: Any) -> TablePlan:
        (plan,) = [p for d, p in self.plans(catalog, **config).items() if d.name == name]
        return plan

    def raw_name(self, catalog: Mapping[str, Any], name: str) -> tuple[str | None, str]:
        plans = self.plans(catalog)
        names = raw_table_names(plans)
        (descriptor,) = [d for d in plans if d.name == name]
        return plans[descriptor].namespace, names[descriptor][0]

    def query(self, text: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(text), params)]

    def rows(self, catalog: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        """The stream's table, data columns by FIELD name (as the driver returns them), plus
        ``_meta`` (parsed), ``_raw_id`` and ``_generation``; sorted by ``id`` when there is one."""
        plan = self.plan(catalog, name)
        out = []
        for row in self.read_table(plan.name, plan.namespace):
            data = {c.field: row.get(c.name) for c in plan.columns}
            meta = row["_airbyte_meta"]
            data["_meta"] = json.loads(meta) if isinstance(meta, str | bytes) else meta
            data["_raw_id"] = row["_airbyte_raw_id"]
            data["_generation"] = row["_airbyte_generation_id"]
            out.append(data)
        return sorted(out, key=_order)

    def column_types(self, schema: str | None, table: str) -> dict[str, str]:
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :ns AND c.relname = :t AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            ns=schema or "public",
            t=table,
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def working_tables(self) -> list[tuple[str, str, str]]:
        """Staging, temporary or leftover refresh tables anywhere in the database: relations
        named like the connector's working tables in any schema, and any TEMPORARY relation
        (``relpersistence = 't'``) of any session."""
        return [
            (str(r[0]), str(r[1]), str(r[2]))
            for r in self.query(
                "SELECT n.nspname, c.relname, c.relpersistence FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v') AND "
                "(c.relpersistence = 't' OR c.relname LIKE :a OR c.relname LIKE :b) ORDER BY 1, 2",
                a=WORKING_TABLES[0],
                b=WORKING_TABLES[1],
            )
        ]


def _order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    key = row.get("id")
    return (key is None, key if isinstance(key, int) else 0, repr(key), repr(row.get("name")))


class Killable:
    """A connector process fed from a file; ``kill()`` sends SIGKILL to its process group."""

    def __init__(
        self, argv: list[str], stdin: Path, workdir: Path, before_input: Callable[[], None] | None = None
    ) -> None:
        self.stdout_path = workdir / f"stdout-{time.monotonic_ns()}.jsonl"
        with stdin.open("rb") as source, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=source if before_input is None else subprocess.PIPE,
                stdout=out,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd=workdir,
            )
        if before_input is not None:
            self.feeder = threading.Thread(target=self._feed, args=(stdin, before_input), daemon=True)
            self.feeder.start()

    def _feed(self, stdin: Path, before_input: Callable[[], None]) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), self.proc.stdin as pipe:
            before_input()
            pipe.write(stdin.read_bytes())

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def states(self) -> list[dict[str, Any]]:
        lines = self.stdout_path.read_bytes().splitlines()
        return [json.loads(line)["state"] for line in lines if line.startswith(b'{"type":"STATE"')]


@pytest.fixture
def pg(request: pytest.FixtureRequest, tmp_path: Path) -> Pg:
    return Pg(request, tmp_path)
