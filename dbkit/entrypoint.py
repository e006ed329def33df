"""The protocol entry point: ``spec | check | discover | read | write`` for any connector.

Every failure becomes a TRACE ERROR (``config_error`` for what the user can fix, ``transient_error``
for lost connections, ``system_error`` otherwise) and a non-zero exit; nothing but protocol
messages is written to stdout, and a stack trace only ever travels inside a TRACE. ``check``
answers CONNECTION_STATUS FAILED with the reason instead (exit 0), unless the failure is a
``system_error``. The config is validated against the spec before any I/O. Every LOG and TRACE
text (including Python warnings and records of the ``logging`` module) passes through the secret
masker.

Inputs: config and catalog are JSON documents (integers kept exact); the state keeps every digit
of every number (:func:`dbkit.protocol.loads_exact`). A state entry for a stream that is not in
the configured catalog is ignored, with a WARN log naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import io
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO, ClassVar, Protocol, cast, runtime_checkable

from pydantic import BaseModel

from dbkit.config import MASKER, load_config
from dbkit.errors import ConfigError, DbkitError, SystemFailure, as_dbkit_error
from dbkit.protocol import (
    AirbyteStream,
    ConfiguredCatalog,
    InputState,
    MessageWriter,
    OutputClosedError,
    ProtocolInputError,
    parse_configured_catalog,
    parse_state,
)
from dbkit.protocol import messages as msg
from dbkit.protocol.arrow import TRANSPORT, TRANSPORTS
from dbkit.protocol.jsonio import read_json_file as protocol_read_json_file
from dbkit.version import version_text

Log = Callable[[str, str], None]
"""``log(level, text)``: a LOG message of the running command (masked)."""


class Connector(Protocol):
    """What :func:`launch` runs: ``spec`` and ``check`` for every connector; a source is also a
    :class:`SourceConnector`, a destination a :class:`DestinationConnector` (``SqlSource`` and
    ``SqlDestination`` are)."""

    @property
    def kind(self) -> str:
        """``"source"`` or ``"destination"``: which commands the connector has."""

    @property
    def name(self) -> str:
        """The console script's name, shown in ``--help``."""

    @property
    def config_model(self) -> type[BaseModel]:
        """The config model: the spec is generated from it and every config validated by it."""

    def spec(self) -> dict[str, Any]:
        """The SPEC payload (``connectionSpecification`` and flags)."""

    def check(self, config: Any) -> None:
        """Raise (ideally a DbkitError) when the connector cannot work with ``config``."""


class ReadOutcome(Protocol):
    """How one stream's read ended."""

    @property
    def error(self) -> DbkitError | None:
        """Why the stream failed (one TRACE ERROR per distinct error object), or None."""


@runtime_checkable
class SourceConnector(Connector, Protocol):
    def discover(self, config: Any) -> list[AirbyteStream]:
        """The streams the source can read."""

    def read(
        self, config: Any, catalog: ConfiguredCatalog, state: InputState, writer: MessageWriter, log: Log
    ) -> Iterable[ReadOutcome]:
        """Write RECORD, STATE and STREAM_STATUS messages of every configured stream to ``writer``;
        a stream's failure is reported in its outcome, not raised."""


@runtime_checkable
class DestinationConnector(Connector, Protocol):
    def write(
        self, config: Any, catalog: ConfiguredCatalog, source: BinaryIO, writer: MessageWriter, log: Log
    ) -> None:
        """Load the messages read from ``source``, echoing each STATE once what precedes it is
        committed; raises on a failure."""


class Emitter:
    """Writes LOG/TRACE messages through the masker; hands the raw writer to readers/consumers."""

    def __init__(self, writer: MessageWriter) -> None:
        self.writer = writer

    def log(self, level: str, text: str) -> None:
        self.writer.write(msg.log(level, MASKER.mask(text)))

    def error(self, error: DbkitError, with_trace: bool = True) -> None:
        stack = None
        if with_trace and error.__traceback__ is not None:
            stack = MASKER.mask("".join(traceback.format_exception(error)))
        internal = MASKER.mask(error.internal) if error.internal else None
        self.writer.write(
            msg.trace_error(
                MASKER.mask(error.message),
                error.failure_type,
                internal_message=internal,
                stack_trace=stack,
                stream=error.stream,
            )
        )


_CURRENT_EMITTER: contextvars.ContextVar[Emitter | None] = contextvars.ContextVar(
    "dbkit_emitter", default=None
)


class _LogRouter(logging.Handler):
    """The one root handler: a log record becomes a LOG message of the launch it belongs to.

    Several launches may run in one process (``dbkit sync --in-process``); each sets
    ``_CURRENT_EMITTER`` in its context, and threads it starts with a copied context inherit it.
    A record from a thread without one goes to the only running launch, or to stderr when there
    are several (never to all of them)."""

    LEVELS: ClassVar[dict[int, str]] = {
        logging.DEBUG: "DEBUG",
        logging.INFO: "INFO",
        logging.WARNING: "WARN",
        logging.ERROR: "ERROR",
        logging.CRITICAL: "FATAL",
    }

    def __init__(self) -> None:
        super().__init__()
        self.active: list[Emitter] = []
        self._guard = threading.Lock()
        self.saved_level: int | None = None
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        emitter = _CURRENT_EMITTER.get()
        if emitter is None:
            with self._guard:
                emitter = self.active[0] if len(self.active) == 1 else None
        if emitter is None:
            sys.stderr.write(MASKER.mask(self.format(record)) + "\n")
            return
        with contextlib.suppress(OutputClosedError):
            emitter.log(self.LEVELS.get(record.levelno, "INFO"), self.format(record))

    def enter(self, emitter: Emitter) -> None:
        with self._guard:
            if not self.active:
                root = logging.getLogger()
                self.saved_level = root.level
                root.addHandler(self)
                root.setLevel(logging.INFO)
                logging.captureWarnings(True)  # warnings become masked LOG messages, not raw stderr
            self.active.append(emitter)

    def leave(self, emitter: Emitter) -> None:
        with self._guard:
            self.active.remove(emitter)
            if not self.active:
                root = logging.getLogger()
                root.removeHandler(self)
                if self.saved_level is not None:
                    root.setLevel(self.saved_level)
                logging.captureWarnings(False)


_ROUTER = _LogRouter()
_QUIET_LOGGERS = ("sqlalchemy", "paramiko", "urllib3", "testcontainers", "docker")


def read_json_file(path: str, what: str, exact: bool = False) -> Any:
    """Parse a JSON input file; any problem is a ConfigError naming the file, never its content.

    Integers are always exact; with ``exact`` non-integer numbers keep every digit too (Decimal).
    """
    try:
        return protocol_read_json_file(path, what, exact=exact)
    except ProtocolInputError as exc:
        raise ConfigError(str(exc)) from None


def _unbuffered_stdin() -> BinaryIO:
    """stdin for the write's reader thread, below Python's buffered reader when nothing has been
    read from it yet. A thread blocked in the buffered reader holds its lock, and a write that
    stops on an error while its input is still open (the normal pipeline case) would then abort
    at interpreter exit (``_enter_buffered_busy``, exit 134) instead of exiting 1."""
    buffered = sys.stdin.buffer
    raw = getattr(buffered, "raw", None)
    if isinstance(buffered, io.BufferedReader) and isinstance(raw, io.FileIO):
        return cast(BinaryIO, raw)
    return buffered


def _failure(exc: BaseException) -> DbkitError:
    failure = as_dbkit_error(exc)
    if failure is not exc:
        failure.__traceback__ = exc.__traceback__
    return failure


def _parser(kind: str, name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name, description=f"dbkit {kind} connector (Airbyte protocol)")
    parser.add_argument("--version", action="version", version=version_text(name))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("spec", help="print the connector's specification")
    for command, helptext in (("check", "test the connection"), ("discover", "print the catalog")):
        if kind == "destination" and command == "discover":
            continue
        p = sub.add_parser(command, help=helptext)
        p.add_argument("--config", required=True)
    if kind == "source":
        p = sub.add_parser("read", help="read records to stdout")
        p.add_argument("--config", required=True)
        p.add_argument("--catalog", required=True)
        p.add_argument("--state")
    else:
        p = sub.add_parser("write", help="load records from stdin")
        p.add_argument("--config", required=True)
        p.add_argument("--catalog", required=True)
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="json",
        help="json: Airbyte JSON lines (the protocol); arrow: records in Arrow frames between two "
        "dbkit connectors (dbkit sync sets it; see dbkit.protocol.arrow)",
    )
    return parser


def launch(
    connector: Connector,
    argv: Sequence[str] | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> int:
    """Run one protocol command; returns the process exit code (0 success, 1 failure)."""
    args = _parser(connector.kind, connector.name).parse_args(argv)
    writer = MessageWriter(stdout)
    emitter = Emitter(writer)
    for noisy in _QUIET_LOGGERS:
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    token = _CURRENT_EMITTER.set(emitter)
    transport = TRANSPORT.set(getattr(args, "transport", "json"))
    _ROUTER.enter(emitter)
    try:
        return _run(connector, args, writer, emitter, stdin)
    except OutputClosedError:
        return 1
    except Exception as exc:  # a failure while reporting a failure: still one TRACE, never a bare traceback
        with contextlib.suppress(Exception):
            emitter.error(_failure(exc))
        return 1
    finally:
        _ROUTER.leave(emitter)
        TRANSPORT.reset(transport)
        _CURRENT_EMITTER.reset(token)
        with contextlib.suppress(OutputClosedError):
            writer.flush()


def _run(
    connector: Connector,
    args: argparse.Namespace,
    writer: MessageWriter,
    emitter: Emitter,
    stdin: BinaryIO | None,
) -> int:
    command = args.command
    catalog: ConfiguredCatalog | None = None
    state = InputState()
    try:  # every input is read and validated before any I/O; a mistake in one needs no stack trace
        if command == "spec":
            writer.write(msg.spec(connector.spec()))
            return 0
        raw = read_json_file(args.config, "config")
        config = load_config(connector.config_model, raw)
        if command in ("read", "write"):
            catalog = _load_catalog(args.catalog)
        if command == "read":
            state = _load_state(args.state)
    except OutputClosedError:
        raise
    except Exception as exc:
        invalid = _failure(exc)
        system = invalid.failure_type == "system_error"
        if command == "check":
            writer.write(msg.connection_status(False, MASKER.mask(invalid.message)))
            if not system:
                return 0
        emitter.error(invalid, with_trace=system)
        return 1
    try:
        if command == "check":
            return _check(connector, config, writer, emitter)
        if command == "discover" and isinstance(connector, SourceConnector):
            streams = connector.discover(config)
            writer.write(msg.catalog(streams))
            return 0
        if catalog is None:
            raise SystemFailure(f"unknown command {command}")
        if command == "read" and isinstance(connector, SourceConnector):
            ignored = sorted(str(d) for d in state.streams if d not in catalog)
            if ignored:
                emitter.log(
                    "WARN",
                    f"the state names stream(s) not in the configured catalog, ignored: {', '.join(ignored)}",
                )
            outcomes = connector.read(config, catalog, state, writer, emitter.log)
            reported: set[int] = set()
            failed = False
            for outcome in outcomes:
                if outcome.error is not None:
                    failed = True
                    if id(outcome.error) not in reported:
                        reported.add(id(outcome.error))
                        emitter.error(outcome.error)
            return 1 if failed else 0
        if command == "write" and isinstance(connector, DestinationConnector):
            source = stdin if stdin is not None else _unbuffered_stdin()
            connector.write(config, catalog, source, writer, emitter.log)
            return 0
        raise SystemFailure(f"unknown command {command}")
    except OutputClosedError:
        raise
    except Exception as exc:
        emitter.error(_failure(exc))
        return 1


def _check(connector: Connector, config: Any, writer: MessageWriter, emitter: Emitter) -> int:
    try:
        connector.check(config)
    except Exception as exc:
        error = as_dbkit_error(exc)
        writer.write(msg.connection_status(False, MASKER.mask(error.message)))
        if error.failure_type == "system_error":
            error.__traceback__ = exc.__traceback__
            emitter.error(error)
            return 1
        return 0
    writer.write(msg.connection_status(True))
    return 0


def _load_catalog(path: str) -> ConfiguredCatalog:
    raw = read_json_file(path, "catalog")
    try:
        return parse_configured_catalog(raw)
    except ProtocolInputError as exc:
        raise ConfigError(str(exc)) from None


def _load_state(path: str | None) -> InputState:
    if not path:
        return InputState()
    raw = read_json_file(path, "state", exact=True)
    try:
        return parse_state(raw)
    except ProtocolInputError as exc:
        raise ConfigError(str(exc)) from None


def main_for(connector_factory: Callable[[], Connector]) -> Callable[[], None]:
    """Console-script helper: ``run = main_for(MySource)``."""

    def run() -> None:
        sys.exit(launch(connector_factory()))

    return run
