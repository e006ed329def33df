"""Run a connector exactly as a platform would, and check everything it prints.

``ConnectorRunner("source-postgres")`` runs the console script as a subprocess (forked from a
zygote that has imported it once, :mod:`dbkit.testing.zygote`): config, catalog
and state go in files of a private directory, records go to and from pipes. Every line that comes
back is parsed and validated strictly (our :class:`~dbkit.protocol.StreamValidator`, and the
official Airbyte protocol models when ``airbyte-protocol-models-pdv2`` is installed); a problem
fails the test with the offending lines, unless ``strict=False``.

A read or write can be stopped the hard way (SIGKILL) after a number of STATE messages, to test
that a resumed run loses nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from dbkit.protocol import (
    AirbyteStream,
    ConfiguredCatalog,
    ProtocolInputError,
    StreamDescriptor,
    StreamValidator,
    parse_configured_catalog,
)
from dbkit.protocol.jsonio import loads_exact
from dbkit.protocol.messages import dumps_exact
from dbkit.testing.zygote import ForkedProcess, spawn

DEFAULT_TIMEOUT = 300.0


class ProtocolViolation(AssertionError):
    """The connector printed something that is not a valid Airbyte message stream."""


def _official_validator() -> Any:
    try:
        from airbyte_protocol.models import AirbyteMessage  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - the testing extra installs it
        return None
    return AirbyteMessage


@dataclass
class RunResult:
    """What one connector command printed, parsed."""

    command: str
    exit_code: int | None
    messages: list[dict[str, Any]]
    stderr: str = ""
    killed: bool = False
    problems: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ selections
    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: str | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
        """The ``data`` of every RECORD (of one stream when given)."""
        return [r["data"] for r in self.record_messages(stream, namespace)]

    def record_messages(
        self, stream: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for m in self.of_type("RECORD"):
            rec = m["record"]
            if stream is not None and (
                rec.get("stream") != stream or (namespace and rec.get("namespace") != namespace)
            ):
                continue
            out.append(rec)
        return out

    def states(self, stream: str | None = None) -> list[dict[str, Any]]:
        """STATE payloads, in order (of one stream when given)."""
        out = []
        for m in self.of_type("STATE"):
            state = m["state"]
            if (
                stream is not None
                and state.get("type") == "STREAM"
                and state["stream"]["stream_descriptor"]["name"] != stream
            ):
                continue
            out.append(state)
        return out

    def stream_states(self, stream: str) -> list[dict[str, Any] | None]:
        return [s["stream"].get("stream_state") for s in self.states(stream) if s.get("type") == "STREAM"]

    def traces(self, kind: str) -> list[dict[str, Any]]:
        return [m["trace"] for m in self.of_type("TRACE") if m["trace"].get("type") == kind]

    def errors(self) -> list[dict[str, Any]]:
        return [t["error"] for t in self.traces("ERROR")]

    def statuses(self, stream: str) -> list[str]:
        return [
            t["stream_status"]["status"]
            for t in self.traces("STREAM_STATUS")
            if t["stream_status"]["stream_descriptor"]["name"] == stream
        ]

    def logs(self) -> list[str]:
        return [m["log"]["message"] for m in self.of_type("LOG")]

    @property
    def spec(self) -> dict[str, Any]:
        (message,) = self.of_type("SPEC")
        spec: dict[str, Any] = message["spec"]
        return spec

    @property
    def connection_status(self) -> dict[str, Any]:
        (message,) = self.of_type("CONNECTION_STATUS")
        status: dict[str, Any] = message["connectionStatus"]
        return status

    @property
    def catalog(self) -> list[dict[str, Any]]:
        (message,) = self.of_type("CATALOG")
        streams: list[dict[str, Any]] = message["catalog"]["streams"]
        return streams

    def stream(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        for s in self.catalog:
            if s["name"] == name and (namespace is None or s.get("namespace") == namespace):
                return s
        raise KeyError(f"stream {name!r} not in the discovered catalog")

    def output_text(self) -> str:
        """Everything printed (stdout as JSON lines, then stderr), for secret checks."""
        lines = [dumps_exact(m).decode() for m in self.messages]
        return "\n".join([*lines, self.stderr])

    def raise_on_failure(self) -> RunResult:
        if self.exit_code != 0:
            raise AssertionError(
                f"{self.command} exited {self.exit_code}; errors: "
                f"{[e.get('message') for e in self.errors()]}\nstderr:\n{self.stderr[-4000:]}"
            )
        return self


def to_line(message: Mapping[str, Any] | bytes | str) -> bytes:
    """One newline-terminated message; numbers exact (Decimal, integers wider than 64 bits)."""
    if isinstance(message, bytes):
        return message if message.endswith(b"\n") else message + b"\n"
    if isinstance(message, str):
        return (message if message.endswith("\n") else message + "\n").encode()
    return dumps_exact(message, orjson.OPT_APPEND_NEWLINE)


class ConnectorRunner:
    """Runs one connector's protocol commands as subprocesses (see module doc).

    ``command`` is a console script name (found next to ``sys.executable``, then on PATH) or a
    full argv prefix.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        workdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        strict: bool = True,
    ) -> None:
        self.argv = self._resolve(command)
        self.name = Path(self.argv[0]).name if isinstance(command, str) else " ".join(self.argv)
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="dbkit-run-"))
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.strict = strict
        self._counter = itertools.count()

    @staticmethod
    def _resolve(command: str | Sequence[str]) -> list[str]:
        if not isinstance(command, str):
            return list(command)
        local = Path(sys.executable).parent / command
        if local.exists():
            return [str(local)]
        found = shutil.which(command)
        if found is None:
            raise FileNotFoundError(f"connector command {command!r} is not installed")
        return [found]

    # ------------------------------------------------------------------ files
    def _file(self, stem: str, document: Any) -> str:
        path = self.workdir / f"{stem}-{next(self._counter)}.json"
        if isinstance(document, ConfiguredCatalog):
            document = document.to_json()
        path.write_bytes(dumps_exact(document))
        return str(path)

    # ------------------------------------------------------------------ commands
    def spec(self) -> RunResult:
        return self._run(["spec"])

    def check(self, config: Mapping[str, Any]) -> RunResult:
        return self._run(["check", "--config", self._file("config", config)])

    def discover(self, config: Mapping[str, Any]) -> RunResult:
        return self._run(["discover", "--config", self._file("config", config)])

    def read(
        self,
        config: Mapping[str, Any],
        catalog: ConfiguredCatalog | Mapping[str, Any],
        state: Sequence[Mapping[str, Any]] | None = None,
        *,
        kill_after_states: int | None = None,
        kill_after_records: int | None = None,
    ) -> RunResult:
        """``read``; killed with SIGKILL (process group) once it printed ``kill_after_states``
        STATE or ``kill_after_records`` RECORD messages (what it printed before is kept)."""
        args = ["read", "--config", self._file("config", config), "--catalog", self._file("catalog", catalog)]
        if state is not None:
            args += ["--state", self._file("state", list(state))]
        return self._run(
            args,
            catalog=_as_catalog(catalog),
            kill_after_states=kill_after_states,
            kill_after_records=kill_after_records,
        )

    def write(
        self,
        config: Mapping[str, Any],
        catalog: ConfiguredCatalog | Mapping[str, Any],
        messages: Iterable[Mapping[str, Any] | bytes | str],
        *,
        kill_after_states: int | None = None,
    ) -> RunResult:
        args = [
            "write",
            "--config",
            self._file("config", config),
            "--catalog",
            self._file("catalog", catalog),
        ]
        return self._run(
            args, catalog=_as_catalog(catalog), stdin=messages, kill_after_states=kill_after_states
        )

    # ------------------------------------------------------------------ process
    def _run(
        self,
        args: list[str],
        *,
        catalog: ConfiguredCatalog | None = None,
        stdin: Iterable[Mapping[str, Any] | bytes | str] | None = None,
        kill_after_states: int | None = None,
        kill_after_records: int | None = None,
    ) -> RunResult:
        proc = spawn([*self.argv, *args], env=self.env, cwd=self.workdir, stdin=stdin is not None)
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_chunks: list[bytes] = []
        err_reader = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
        err_reader.start()
        feeder = None
        if stdin is not None:
            assert proc.stdin is not None
            feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
            feeder.start()
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _kill(proc)

        timer = threading.Timer(self.timeout, on_timeout)
        timer.start()
        raw: list[bytes] = []
        killed = False
        states = records = 0
        try:
            for line in _lines(proc.stdout):
                raw.append(line)
                if kill_after_states is not None and line.startswith(b'{"type":"STATE"'):
                    states += 1
                    if states >= kill_after_states:
                        _kill(proc)
                        killed = True
                        break
                if kill_after_records is not None and line.startswith(b'{"type":"RECORD"'):
                    records += 1
                    if records >= kill_after_records:
                        _kill(proc)
                        killed = True
                        break
            if killed:
                proc.stdout.read()  # discard what was already buffered after the kill point
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.returncode is None:  # an exception on the way: never leave the run behind
                _kill(proc)
                with contextlib.suppress(RuntimeError):  # a zygote that went away already
                    proc.wait()
        err_reader.join(timeout=10)
        if feeder is not None:
            feeder.join(timeout=10)
        result = self._parse(args[0], code, raw, b"".join(stderr_chunks).decode(errors="replace"), catalog)
        result.killed = killed
        if timed_out.is_set():
            raise AssertionError(f"{self.name} {args[0]} did not finish within {self.timeout} s")
        return result

    def _parse(
        self, command: str, code: int, raw: list[bytes], stderr: str, catalog: ConfiguredCatalog | None
    ) -> RunResult:
        validator = StreamValidator(catalog)
        official = _official_validator()
        messages: list[dict[str, Any]] = []
        problems: list[str] = []
        for number, line in enumerate(raw, start=1):
            validator.feed(line)
            try:
                message = loads_exact(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                messages.append(message)
                if official is not None:
                    try:
                        official.model_validate(message)
                    except Exception as exc:
                        problems.append(f"line {number}: not a valid AirbyteMessage: {exc}")
        problems += [str(p) for p in validator.finish()]
        result = RunResult(f"{self.name} {command}", code, messages, stderr, problems=problems)
        if problems and self.strict:
            shown = "\n".join(problems[:20])
            raise ProtocolViolation(f"{self.name} {command} printed invalid protocol output:\n{shown}")
        return result


def _as_catalog(catalog: ConfiguredCatalog | Mapping[str, Any]) -> ConfiguredCatalog | None:
    """The catalog the output is checked against; None for one the protocol parser refuses
    (a test of how a connector refuses it: the output is then checked without stream rules)."""
    if isinstance(catalog, ConfiguredCatalog):
        return catalog
    try:
        return parse_configured_catalog(catalog)
    except ProtocolInputError:
        return None


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from iter(stream.readline, b"")


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    into.extend(iter(lambda: stream.read(65536), b""))


def _feed(pipe: IO[bytes], messages: Iterable[Mapping[str, Any] | bytes | str]) -> None:
    try:
        for message in messages:
            pipe.write(to_line(message))
    except (BrokenPipeError, ValueError):
        pass  # the connector stopped reading (it failed, or was killed)
    finally:
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            pipe.close()  # always: a connector must never wait forever for the end of its input


def _kill(proc: ForkedProcess | subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------------- catalog helpers


def configured_catalog(
    streams: Iterable[dict[str, Any] | AirbyteStream],
    *,
    sync_mode: str = "full_refresh",
    destination_sync_mode: str = "overwrite",
    cursor_field: Sequence[str] | None = None,
    primary_key: Sequence[Sequence[str]] | None = None,
    generation_id: int | None = None,
    minimum_generation_id: int | None = None,
    sync_id: int | None = None,
) -> dict[str, Any]:
    """A configured catalog document for discovered streams, one setting for all of them."""
    out = []
    for stream in streams:
        body = stream.to_json() if isinstance(stream, AirbyteStream) else dict(stream)
        item: dict[str, Any] = {
            "stream": body,
            "sync_mode": sync_mode,
            "destination_sync_mode": destination_sync_mode,
        }
        if cursor_field is not None:
            item["cursor_field"] = list(cursor_field)
        pk = primary_key if primary_key is not None else body.get("source_defined_primary_key")
        if pk:
            item["primary_key"] = [list(p) for p in pk]
        generations = {
            "generation_id": generation_id,
            "minimum_generation_id": minimum_generation_id,
            "sync_id": sync_id,
        }
        item.update({k: v for k, v in generations.items() if v is not None})
        out.append(item)
    return {"streams": out}


def stream_descriptor(name: str, namespace: str | None = None) -> StreamDescriptor:
    return StreamDescriptor(name, namespace)
