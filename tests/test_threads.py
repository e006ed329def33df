"""Worker threads see the context of whoever submitted or started them."""

from __future__ import annotations

import contextvars
import threading

from dbkit.threads import ContextThreadPoolExecutor, context_thread

LAUNCH: contextvars.ContextVar[str | None] = contextvars.ContextVar("launch", default=None)


def _seen() -> tuple[str | None, str]:
    return LAUNCH.get(), threading.current_thread().name


def test_pool_tasks_run_in_the_submitters_context() -> None:
    def submit_as(name: str, pool: ContextThreadPoolExecutor) -> list[str | None]:
        LAUNCH.set(name)
        return [f.result()[0] for f in [pool.submit(_seen) for _ in range(8)]]

    with ContextThreadPoolExecutor(max_workers=2, thread_name_prefix="t") as pool:
        a = contextvars.copy_context().run(submit_as, "a", pool)
        b = contextvars.copy_context().run(submit_as, "b", pool)
        # the same pool threads served both launches, each task with its own launch's value
        assert a == ["a"] * 8
        assert b == ["b"] * 8
        assert pool.submit(_seen).result()[0] is None  # and the submitter here has none


def test_a_task_changing_the_context_does_not_leak_into_the_next() -> None:
    def change() -> None:
        LAUNCH.set("changed")

    with ContextThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(change).result()
        assert pool.submit(_seen).result()[0] is None
    assert LAUNCH.get() is None


def test_context_thread_carries_the_starters_context() -> None:
    seen: list[tuple[str | None, str]] = []

    def start() -> threading.Thread:
        LAUNCH.set("starter")
        return context_thread(lambda: seen.append(_seen()), name="worker")

    thread = contextvars.copy_context().run(start)
    thread.start()
    thread.join(5)
    assert seen == [("starter", "worker")]
    assert thread.daemon
