"""The local sync runner: a source piped into a destination the way a platform does it.

:func:`run_sync` runs ``check`` on both connectors and ``discover`` on the source (at once),
builds the configured catalog, then runs ``read`` and ``write`` together, saving every state the
destination echoes to the state file at once. Connectors run as subprocesses (their console
scripts) or, with ``in_process``, as threads calling :func:`dbkit.entrypoint.launch` over OS
pipes; both paths exchange exactly the same bytes.

The modules, in the order a sync uses them:

- :mod:`~dbkit.runner.request`: what to sync (:class:`Endpoint`, :class:`SyncRequest`), secrets
  of a config masked; :mod:`~dbkit.runner.registry`: connectors by name, URLs -> configs;
- :mod:`~dbkit.runner.state`: the state file kept between runs;
- :mod:`~dbkit.runner.prepare`: check, discover, and :mod:`~dbkit.runner.plan`: the configured
  catalog, with the sync-mode and generation rules;
- :mod:`~dbkit.runner.launch`: connector commands as subprocesses or threads;
- :mod:`~dbkit.runner.runner`: the run; :mod:`~dbkit.runner.pump` forwards the source's output to
  the destination, :mod:`~dbkit.runner.acknowledge` saves the states it echoes,
  :mod:`~dbkit.runner.output` turns logs and errors of both into observer calls;
- :mod:`~dbkit.runner.progress`: live counters and the observer interface;
  :mod:`~dbkit.runner.errors`: problems told to people; :mod:`~dbkit.runner.display`: the ``rich``
  display of the ``dbkit sync`` command;
- :mod:`~dbkit.runner.demo` and :mod:`~dbkit.runner.demo_activity`: the embedded demo database.
"""

from __future__ import annotations

from dbkit.runner.acknowledge import Acknowledger
from dbkit.runner.errors import SyncAborted, SyncError
from dbkit.runner.plan import configure_stream, select_streams
from dbkit.runner.progress import QuietObserver, StreamProgress, SyncObserver, SyncProgress
from dbkit.runner.pump import Pump
from dbkit.runner.request import Endpoint, SyncRequest, register_config_secrets
from dbkit.runner.runner import run_sync

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
