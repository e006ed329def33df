"""The load executor (dbkit.destination.executor): jobs in order, a failure stops the rest."""

from __future__ import annotations

import threading

import pytest

from dbkit.destination.executor import LoadExecutor


@pytest.mark.parametrize("background", [False, True])
def test_jobs_run_in_order_and_are_reported_once(background: bool) -> None:
    loads = LoadExecutor(background)
    ran: list[int] = []
    numbers = [loads.submit(lambda i=i: ran.append(i)) for i in range(5)]  # type: ignore[misc]
    loads.wait()
    assert numbers == [1, 2, 3, 4, 5]
    assert ran == [0, 1, 2, 3, 4]
    assert loads.finished() == [1, 2, 3, 4, 5]
    assert loads.finished() == []
    loads.close()


def test_a_failed_background_job_is_raised_and_stops_the_jobs_after_it() -> None:
    loads = LoadExecutor(background=True)
    ran: list[str] = []
    gate = threading.Event()

    def fail() -> None:
        gate.wait()
        raise RuntimeError("boom")

    loads.submit(fail)
    loads.submit(lambda: ran.append("after"))
    gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        loads.wait()
    assert ran == []
    with pytest.raises(RuntimeError, match="boom"):
        loads.submit(lambda: ran.append("later"))
    loads.close()
    assert ran == []
