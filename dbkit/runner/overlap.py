"""Refuse a sync whose destination would write into the tables its source reads.

A source stream's namespace names the destination's schema (PostgreSQL) or database (MySQL), as
on the Airbyte platform with its default namespace mapping. So a sync from a database into the same
database (or the same server, for MySQL), or from a SQLite file into the same file, would load each
stream into the very table it is read from: a full refresh replaces it (the source's rows are gone),
an incremental sync adds the ``_airbyte_*`` columns to it and appends its own rows to it. Nothing
in the protocol tells a destination where its records came from, so the runner checks before any
data moves, from what each connector's config says of where its tables live
(:meth:`dbkit.config.ConnectorConfig.data_location`). Connectors that do not say are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from dbkit.config import ConnectorConfig, DataLocation, load_config
from dbkit.errors import ConfigError
from dbkit.protocol import AirbyteStream
from dbkit.runner.errors import SyncAborted
from dbkit.runner.request import Endpoint


def data_location(endpoint: Endpoint) -> DataLocation | None:
    """Where the endpoint's tables live, or None when its connector does not say (or its config
    is invalid: ``check`` reports that)."""
    model = endpoint.info.config_model()
    if model is None or not issubclass(model, ConnectorConfig):
        return None
    try:
        config = load_config(model, endpoint.config)
    except ConfigError:
        return None
    return config.data_location()


def _table(location: DataLocation, stream: AirbyteStream) -> tuple[str, str | None, str]:
    namespace = stream.namespace or location.default_namespace
    # Names are compared without case: a destination may fold them, and a false alarm costs less
    # than a lost table.
    return location.store, namespace.lower() if namespace else None, stream.name.lower()


def refuse_overwriting_source(
    source: Endpoint, destination: Endpoint, streams: Sequence[AirbyteStream]
) -> None:
    """SyncAborted (a config error) when a stream would land in the table it is read from."""
    read_from = data_location(source)
    write_to = data_location(destination)
    if read_from is None or write_to is None or read_from.store != write_to.store:
        return
    clashes = [s for s in streams if _table(read_from, s) == _table(write_to, s)]
    if not clashes:
        return
    names = ", ".join(str(s.descriptor) for s in clashes[:5])
    more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
    raise SyncAborted(
        f"the destination would write into the tables the source reads ({names}{more}): a stream's "
        f"namespace names the destination's schema or database, and {destination.label} points at "
        f"the same database as {source.label}. Sync into another database or file (or select other "
        "streams with --streams); nothing was changed"
    )
