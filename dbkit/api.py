"""The Python API of ``dbkit sync``: :func:`sync` runs a source into a destination, :func:`read`
and :func:`read_batches` run a source into Arrow.

All three run the runner of the ``dbkit sync`` command (:func:`dbkit.runner.run_sync`): ``check``
and ``discover``, the configured catalog and its sync-mode rules, the state file and its
resume, records as Arrow frames between dbkit connectors; connectors run as subprocesses (their
console scripts), or in threads with ``in_process=True``. Sources and destinations are named as
on the command line (a connector name, or a URL such as ``sqlite:///shop.db`` or
``postgresql://user:password@host/db``), each with a config dict or JSON file for the rest.

A sync that does not succeed raises :class:`~dbkit.runner.result.SyncFailed` (a
:class:`~dbkit.DbkitError` whose ``failure_type`` is the first error's; its ``result`` tells what
did finish), unless ``raise_on_failure=False``. Secrets (fields a connector declares secret, keys
named like password or token, URL passwords) are masked in every message and result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from dbkit.errors import DbkitError
from dbkit.runner.endpoints import ConfigSource, make_endpoint
from dbkit.runner.progress import SyncProgress
from dbkit.runner.registry import ConnectorInfo
from dbkit.runner.request import Endpoint, SyncRequest
from dbkit.runner.result import ErrorInfo, StreamResult, SyncFailed, SyncResult
from dbkit.runner.runner import run_sync

if TYPE_CHECKING:  # the read functions import them (pyarrow, the destination framework) on use
    import pyarrow as pa

    from dbkit.runner.collector import Sink, StreamingSink

__all__ = [
    "BatchReader",
    "ErrorInfo",
    "StreamResult",
    "SyncFailed",
    "SyncResult",
    "read",
    "read_batches",
    "sync",
]

DEFAULT_STATE_FILE = "dbkit-state.json"
Protocol = Literal["auto", "arrow", "json"]
Streams = str | Sequence[str] | None
StatePath = str | os.PathLike[str]


def sync(
    *,
    source: str,
    destination: str,
    source_config: ConfigSource = None,
    destination_config: ConfigSource = None,
    state: StatePath = DEFAULT_STATE_FILE,
    streams: Streams = None,
    full_refresh: bool = False,
    refresh: Streams = None,
    protocol: Protocol = "auto",
    in_process: bool | None = None,
    raise_on_failure: bool = True,
) -> SyncResult:
    """Run ``source`` into ``destination`` as ``dbkit sync`` does, and return what happened.

    :param source: a source connector's name (``source-postgres``) or a URL
        (``sqlite:///shop.db``, ``postgresql://user:pw@host:5432/db?schema=public``).
    :param destination: a destination connector's name or URL.
    :param source_config: the source's config, as a dict or the path of a JSON file; with a URL,
        the keys the URL does not give (the URL's parts win).
    :param destination_config: the same for the destination.
    :param state: the state file (``--state-file``): what the destination acknowledged, read at
        the start and saved after every echoed STATE, so the next sync resumes from it.
    :param streams: sync only these streams (names, or ``namespace.name``; a string may list
        several, comma-separated); the others keep their saved state.
    :param full_refresh: read every stream in full and replace its table.
    :param refresh: streams to read again from the start, replacing their rows (a new generation).
    :param protocol: how records travel: ``auto`` (Arrow frames when both connectors can),
        ``arrow`` or ``json``.
    :param in_process: True runs the connectors in threads of this process, False as
        subprocesses; None (the default) as ``dbkit sync`` does: threads for the Arrow path
        between dbkit connectors installed here, else subprocesses.
    :param raise_on_failure: raise :class:`SyncFailed` for a sync that did not succeed (the
        default); False returns its result (``result.ok`` False) instead.
    :returns: the :class:`SyncResult`: per stream its mode, status, records read and acknowledged
        and seconds, the errors, the timings and the saved state.
    :raises SyncFailed: the sync failed or could not start (a bad config, an unknown connector
        or stream, a failed check), or not every stream finished; ``.result`` holds the result
        and ``.failure_type`` the protocol's failure type.
    """
    started = _now()
    request = SyncRequest(
        source=_endpoint(source, source_config, "source", "source_config"),
        destination=_endpoint(destination, destination_config, "destination", "destination_config"),
        state_path=Path(state),
        streams=_names(streams),
        full_refresh=full_refresh,
        refresh=_names(refresh),
        in_process=in_process,
        protocol=protocol,
    )
    result = _run_request(request, started)
    return result.raise_for_status() if raise_on_failure else result


def _run_request(
    request: SyncRequest, started: dt.datetime | None = None, sink: Sink | None = None
) -> SyncResult:
    """Run ``request`` (quietly) to its :class:`SyncResult`; never raises for a failed sync. With
    ``sink``, it is registered for the request's collector destination for the run."""
    started = started or _now()
    key = request.destination.config.get("sink")
    if sink is not None and isinstance(key, str):
        from dbkit.runner.collector import SINKS

        SINKS[key] = sink
    try:
        progress: SyncProgress = run_sync(request)
    except DbkitError as exc:
        return SyncResult.not_started(request, exc, started, _now())
    finally:
        if sink is not None and isinstance(key, str):
            SINKS.pop(key, None)
    return SyncResult.of(progress, request, started, _now())


def read(
    source: str,
    config: ConfigSource = None,
    *,
    streams: Streams = None,
    state: StatePath | None = None,
    full_refresh: bool = False,
    in_process: bool = False,
) -> pa.Table:
    """Read one stream of ``source`` into a :class:`pyarrow.Table`.

    The columns are the stream's properties, typed as a dbkit destination types them (integer
    ``int64``, boolean ``bool``, date ``date32``, timestamps ``timestamp[us]`` (with time zone:
    UTC), time ``time64[us]``, binary ``binary``, string ``string``; a number is its exact
    decimal text and an object or array its JSON text, to cast where you know their precision),
    then ``_airbyte_extracted_at`` and ``_airbyte_meta`` (JSON: the ``changes`` made to a value
    that could not be typed, which is then NULL). The stream's name is in the schema's metadata
    (``dbkit.stream``).

    :param source: a source connector's name or a URL, as for :func:`sync`.
    :param config: the source's config (a dict or the path of a JSON file), as for :func:`sync`.
    :param streams: the stream to read (a name or ``namespace.name``); may be left out when the
        source has only one.
    :param state: a state file, as for :func:`sync`: an incremental stream then returns only the
        rows added or changed since the previous read with that file. It is updated only when the
        whole table was read (a failed read leaves it as it was). None: every row, no state kept.
    :param full_refresh: read every row, whatever the state file says.
    :param in_process: run the source in a thread of this process instead of a subprocess.
    :raises SyncFailed: the read failed or could not start; nothing of the state changed.
    """
    from dbkit.runner.collector import CollectingSink

    sink = CollectingSink(single=True)
    result = _read(source, config, streams, state, full_refresh, in_process, sink)
    result.raise_for_status("read")
    import pyarrow as pa

    (schema,) = sink.schemas.values()
    return pa.Table.from_batches(sink.batches, schema)


def read_batches(
    source: str,
    config: ConfigSource = None,
    *,
    streams: Streams = None,
    state: StatePath | None = None,
    full_refresh: bool = False,
    in_process: bool = False,
) -> BatchReader:
    """Read ``source`` as an iterator of :class:`pyarrow.RecordBatch` (see :class:`BatchReader`),
    one stream or several (each batch's schema metadata ``dbkit.stream`` names its stream);
    columns and parameters as for :func:`read`. The read starts when iteration starts."""
    return BatchReader(source, config, _names(streams), state, full_refresh, in_process)


class BatchReader:
    """The batches of a read, as they come: iterate once (``for batch in reader``), ideally as a
    context manager, which stops the read when the block is left early.

    The state file (``state=``) follows what was taken: a STATE of the source is saved once every
    batch before it was taken and the next one asked for, so a read that fails or is stopped
    resumes after the last saved STATE (the batches after it come again: at-least-once, as for
    a destination). After the iteration, :attr:`result` is the read's :class:`SyncResult` and
    :attr:`state` the saved state; a read that did not succeed raises :class:`SyncFailed` at
    the end of the iteration.
    """

    def __init__(
        self,
        source: str,
        config: ConfigSource,
        streams: Sequence[str] | None,
        state: StatePath | None,
        full_refresh: bool,
        in_process: bool,
    ) -> None:
        from dbkit.runner.collector import StreamingSink

        self._args = (source, config, streams, state, full_refresh, in_process)
        self._sink: StreamingSink = StreamingSink()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.result: SyncResult | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The state file's content after the read (empty before it ends)."""
        return self.result.state if self.result is not None else {}

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._thread is not None:
            raise RuntimeError("a BatchReader is iterated once")
        self._thread = threading.Thread(target=self._run, name="dbkit-read", daemon=True)
        self._thread.start()
        thread = self._thread
        try:
            yield from self._sink.batches(thread.is_alive)
        finally:
            self._sink.cancel()  # a no-op after the end; else the read stops at its next batch
            thread.join()
        if self._failure is not None:
            raise self._failure
        if self.result is not None:
            self.result.raise_for_status("read")

    def arrow_reader(self) -> pa.RecordBatchReader:
        """The batches of a read of one stream as a :class:`pyarrow.RecordBatchReader` (what
        DuckDB, polars or ``pyarrow.dataset`` consume as a stream, without the whole table in
        memory). Iterates this reader: use one or the other. Raises :class:`SyncFailed` when
        the read fails before its first batch, ConfigError when it reads several streams."""
        import itertools

        import pyarrow as pa

        from dbkit.errors import ConfigError

        batches = iter(self)
        first = next(batches, None)  # the collector has begun (or the read ended) by then
        schemas = getattr(self._sink, "schemas", {})
        if len(schemas) != 1:
            self.close()
            raise ConfigError(
                f"arrow_reader() reads one stream, and {len(schemas)} were selected "
                f"({', '.join(schemas)}): name one with streams=..."
            )
        (schema,) = schemas.values()
        head = [first] if first is not None else []
        return pa.RecordBatchReader.from_batches(schema, itertools.chain(head, batches))

    def _run(self) -> None:
        source, config, streams, state, full_refresh, in_process = self._args
        try:
            self.result = _read(source, config, streams, state, full_refresh, in_process, self._sink)
        except BaseException as exc:  # handed to the reader's thread
            self._failure = exc

    def close(self) -> None:
        """Stop the read (if it runs) and wait for it to end."""
        self._sink.cancel()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ------------------------------------------------------------------------------------ helpers


def _read(
    source: str,
    config: ConfigSource,
    streams: Streams,
    state: StatePath | None,
    full_refresh: bool,
    in_process: bool,
    sink: Sink,
) -> SyncResult:
    from dbkit.runner.collector import NAME, ArrowCollector

    started = _now()
    key = uuid.uuid4().hex
    collector = Endpoint(
        ConnectorInfo(NAME, "destination", factory=ArrowCollector), {"sink": key}, "Arrow", in_process=True
    )
    with contextlib.ExitStack() as stack:
        if state is None:
            state = (
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dbkit-read-"))) / "state.json"
            )
        request = SyncRequest(
            source=_endpoint(source, config, "source", "config"),
            destination=collector,
            state_path=Path(state),
            streams=_names(streams),
            full_refresh=full_refresh,
            in_process=in_process,
        )
        return _run_request(request, started, sink)


def _endpoint(name_or_url: str, config: ConfigSource, kind: str, parameter: str) -> Endpoint:
    hint = f"{kind}={name_or_url!r}: give its config with {parameter}=..., or use a URL"
    return make_endpoint(name_or_url, config, kind, hint)


def _names(streams: Streams) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; None or empty -> None (every stream)."""
    if streams is None:
        return None
    items = streams.split(",") if isinstance(streams, str) else list(streams)
    names = [s.strip() for s in items if isinstance(s, str) and s.strip()]
    return names or None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
