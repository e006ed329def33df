"""Threads that carry their starter's context.

A log record becomes a LOG message of the launch whose context the logging thread runs in
(:mod:`dbkit.entrypoint`); a worker thread started bare has no such context, and when several
launches share a process (``dbkit sync --in-process``) its records cannot be routed. Every thread
dbkit starts therefore runs in a copy of the context that started it (or submitted the task)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks each run in a copy of the submitter's context."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def run() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(run)


def context_thread(target: Callable[..., Any], *, name: str, args: tuple[Any, ...] = ()) -> threading.Thread:
    """A daemon thread running ``target(*args)`` in a copy of the caller's context (not started)."""
    context = contextvars.copy_context()
    return threading.Thread(target=context.run, args=(target, *args), name=name, daemon=True)
