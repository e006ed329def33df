"""The local sync runner: a source piped into a destination the way a platform does it.

:func:`run_sync` runs ``check`` on both connectors and ``discover`` on the source (at once),
builds the configured catalog, then runs ``read`` and ``write`` together, saving every state the
destination echoes to the state file at once. Connectors run as subprocesses (their console
scripts) or, with ``in_process``, as threads calling :func:`dbkit.entrypoint.launch` over OS
pipes; both paths exchange exactly the same bytes.

The modules, in the order a sync uses them:

- :mod:`~dbkit.sync.request`: what to sync (:class:`Endpoint`, :class:`SyncRequest`), secrets
  of a config masked; :mod:`~dbkit.sync.registry`: connectors by name, URLs -> configs;
- :mod:`~dbkit.sync.state`: the state file kept between runs;
- :mod:`~dbkit.sync.prepare`: check, discover, and :mod:`~dbkit.sync.plan`: the configured
  catalog, with the sync-mode and generation rules;
- :mod:`~dbkit.sync.launch`: connector commands as subprocesses or threads;
- :mod:`~dbkit.sync.runner`: the run; :mod:`~dbkit.sync.pump` forwards the source's output to
  the destination, :mod:`~dbkit.sync.acknowledge` saves the states it echoes,
  :mod:`~dbkit.sync.output` turns logs and errors of both into observer calls;
- :mod:`~dbkit.sync.progress`: live counters and the observer interface;
  :mod:`~dbkit.sync.errors`: problems told to people; :mod:`~dbkit.sync.display`: the ``rich``
  display of the ``dbkit sync`` command;
- :mod:`~dbkit.sync.demo` and :mod:`~dbkit.sync.demo_activity`: the embedded demo database.
"""

from __future__ import annotations

from dbkit.sync.acknowledge import Acknowledger
from dbkit.sync.errors import SyncAborted, SyncError
from dbkit.sync.plan import configure_stream, select_streams
from dbkit.sync.progress import QuietObserver, StreamProgress, SyncObserver, SyncProgress
from dbkit.sync.pump import Pump
from dbkit.sync.request import Endpoint, SyncRequest, register_config_secrets
from dbkit.sync.runner import run_sync

__all__ = [
    "Acknowledger",
    "Endpoint",
    "Pump",
    "QuietObserver",
    "StreamProgress",
    "SyncAborted",
    "SyncError",
    "SyncObserver",
    "SyncProgress",
    "SyncRequest",
    "configure_stream",
    "register_config_secrets",
    "run_sync",
    "select_streams",
]
