"""The load executor (dbkit.destination.executor): jobs in order, shared jobs side by side on
their lanes, completion reported in order, a failure stops the rest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from dbkit.destination.executor import Abandoned, Job, LoadExecutor, Slot, TurnTimeout
from dbkit.destination.loader import MAX_PATIENCE, MIN_PATIENCE, blocked_by_it, patience

WAIT = 5.0


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("lanes", [1, 3])
def test_jobs_run_in_order_and_are_reported_once(background: bool, lanes: int) -> None:
    loads = LoadExecutor(background, lanes)
    ran: list[tuple[int, int]] = []
    numbers = [loads.submit(lambda slot, i=i: ran.append((i, slot.lane))) for i in range(5)]  # type: ignore[misc]
    loads.wait()
    assert numbers == [1, 2, 3, 4, 5]
    assert ran == [(i, 0) for i in range(5)]  # ordered jobs: one at a time, on lane 0
    assert loads.finished() == [1, 2, 3, 4, 5]
    assert loads.finished() == []
    loads.close()


def test_inline_runs_shared_jobs_on_lane_zero_at_once() -> None:
    loads = LoadExecutor(background=False, lanes=4)
    ran: list[int] = []
    loads.submit(lambda slot: ran.append(slot.lane), shared=True)
    assert ran == [0]
    assert loads.lanes == 1
    assert loads.finished() == [1]


def test_shared_jobs_run_side_by_side_on_their_own_lanes() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    started: list[int] = []
    gates = [threading.Event(), threading.Event()]

    def job(k: int) -> Job:
        def run(slot: Slot) -> None:
            started.append(slot.lane)
            assert gates[k].wait(WAIT)

        return run

    loads.submit(job(0), shared=True)
    loads.submit(job(1), shared=True)
    _until(lambda: len(started) == 2)  # both run at once
    assert sorted(started) == [0, 1]
    gates[1].set()  # the second one commits first: not reported before the first
    time.sleep(0.05)
    assert loads.finished() == []
    assert loads.busy
    gates[0].set()
    loads.wait()
    assert loads.finished() == [1, 2]
    assert [loads.busy] == [False]  # (a list: mypy narrowed the property above)
    loads.close()


def test_an_ordered_job_waits_for_the_shared_ones_before_it_and_holds_back_those_after() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    events: list[str] = []
    release = threading.Event()

    def shared(name: str, hold: bool = False) -> Job:
        def run(slot: Slot) -> None:
            events.append(f"start {name}")
            if hold:
                assert release.wait(WAIT)
            events.append(f"end {name}")

        return run

    def ordered(slot: Slot) -> None:
        events.append(f"ordered on {slot.lane}")

    loads.submit(shared("a", hold=True), shared=True)
    loads.submit(ordered)
    _until(lambda: "start a" in events)
    time.sleep(0.05)
    assert events == ["start a"]  # the ordered job waits, and the queue is full
    release.set()
    loads.submit(shared("b"), shared=True)
    loads.wait()
    assert events == ["start a", "end a", "ordered on 0", "start b", "end b"]
    assert loads.finished() == [1, 2, 3]
    loads.close()


def test_at_most_one_job_waits_behind_the_running_ones() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    release = threading.Event()
    submitted: list[int] = []

    def hold(slot: Slot) -> None:
        assert release.wait(WAIT)

    def submit_four() -> None:
        submitted.extend(loads.submit(hold, shared=True) for _ in range(4))

    thread = threading.Thread(target=submit_four)
    thread.start()
    _until(lambda: len(submitted) == 3)  # two running, one queued; the fourth waits for room
    time.sleep(0.05)
    assert submitted == [1, 2, 3]
    release.set()
    thread.join(WAIT)
    loads.wait()
    assert submitted == [1, 2, 3, 4]
    assert loads.finished() == [1, 2, 3, 4]
    loads.close()


def test_a_failed_background_job_is_raised_and_stops_the_jobs_after_it() -> None:
    loads = LoadExecutor(background=True)
    ran: list[str] = []
    gate = threading.Event()

    def fail(slot: Slot) -> None:
        gate.wait()
        raise RuntimeError("boom")

    loads.submit(fail)
    loads.submit(lambda slot: ran.append("after"))
    gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        loads.wait()
    assert ran == []
    with pytest.raises(RuntimeError, match="boom"):
        loads.submit(lambda slot: ran.append("later"))
    loads.close()
    assert ran == []


def test_a_failed_shared_job_lets_the_running_one_finish_and_starts_nothing_after_it() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    events: list[str] = []
    release = threading.Event()

    def slow(slot: Slot) -> None:
        assert release.wait(WAIT)
        slot.wait_turn()  # a later job failed: this one still commits
        events.append("slow committed")

    def fail(slot: Slot) -> None:
        raise RuntimeError("boom")

    loads.submit(slow, shared=True)
    loads.submit(fail, shared=True)
    _until(lambda: loads._error is not None)
    with pytest.raises(RuntimeError, match="boom"):
        loads.submit(lambda slot: events.append("after"), shared=True)
    release.set()
    with pytest.raises(RuntimeError, match="boom"):
        loads.wait()
    assert events == ["slow committed"]
    assert loads.finished() == [1], "a committed job is named before the failure is raised"
    with pytest.raises(RuntimeError, match="boom"):
        loads.finished()
    loads.close()


def test_a_job_out_of_patience_times_out_and_may_wait_again() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    events: list[str] = []
    release = threading.Event()

    def first(slot: Slot) -> None:
        assert release.wait(WAIT)
        events.append("first")

    def second(slot: Slot) -> None:
        try:
            slot.wait_turn(patience=0.05)
        except TurnTimeout:
            events.append("timed out")
            release.set()  # what the first one waited for: released by the rollback
            slot.wait_turn()
        events.append("second")

    loads.submit(first, shared=True)
    loads.submit(second, shared=True)
    loads.wait()
    assert events == ["timed out", "first", "second"]
    assert loads.finished() == [1, 2]
    loads.close()


def test_abort_drops_the_queued_jobs_and_lets_the_running_ones_finish_in_order() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    events: list[str] = []
    release = threading.Event()

    def job(name: str) -> Job:
        def run(slot: Slot) -> None:
            assert release.wait(WAIT)
            slot.wait_turn()
            events.append(name)

        return run

    loads.submit(job("a"), shared=True)
    loads.submit(job("b"), shared=True)
    loads.submit(job("queued"), shared=True)
    loads.abort()
    with pytest.raises(RuntimeError, match="stopped"):
        loads.submit(job("later"), shared=True)
    release.set()
    loads.wait()
    assert events == ["a", "b"]
    assert loads.committed() == [1, 2]
    loads.close()


def test_lanes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LoadExecutor(background=True, lanes=0)


def test_a_shared_job_commits_after_the_jobs_before_it_and_rolls_back_when_one_failed() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    events: list[str] = []
    release = threading.Event()

    def first(slot: Slot) -> None:
        assert release.wait(WAIT)
        slot.wait_turn()
        events.append("first committed")
        raise RuntimeError("first failed after its commit point")

    def second(slot: Slot) -> None:
        events.append("second sent")
        try:
            slot.wait_turn()
        except Abandoned:
            events.append("second rolled back")
            raise
        events.append("second committed")

    loads.submit(first, shared=True)
    loads.submit(second, shared=True)
    _until(lambda: "second sent" in events)
    time.sleep(0.05)
    assert events == ["second sent"]  # waits for the first one's turn
    release.set()
    with pytest.raises(RuntimeError, match="first failed"):
        loads.wait()
    assert events == ["second sent", "first committed", "second rolled back"]
    loads.close()


def test_wait_turn_returns_at_once_for_the_oldest_job_and_inline() -> None:
    turns: list[int] = []

    def job(slot: Slot) -> None:
        slot.wait_turn()
        turns.append(slot.number)

    for background in (False, True):
        loads = LoadExecutor(background, lanes=2)
        loads.submit(job, shared=True)
        loads.submit(job, shared=True)
        loads.wait()
        loads.close()
    assert turns == [1, 2, 1, 2]


def test_the_earliest_jobs_failure_is_the_one_raised() -> None:
    loads = LoadExecutor(background=True, lanes=2)
    release = threading.Event()

    def first(slot: Slot) -> None:
        assert release.wait(WAIT)
        raise RuntimeError("the first load's own failure")

    def second(slot: Slot) -> None:
        release.set()
        raise RuntimeError("a later failure")

    loads.submit(first, shared=True)
    loads.submit(second, shared=True)
    with pytest.raises(RuntimeError, match="the first load's own failure"):
        loads.wait()
    loads.close()


def test_patience_and_whether_the_load_before_was_waiting() -> None:
    assert patience(0.5) == MIN_PATIENCE
    assert patience(8.0) == 16.0
    assert patience(60.0) == MAX_PATIENCE < 50, "below InnoDB's default lock wait timeout"
    assert blocked_by_it(sent=0.3, waited=0.2), "committed at once after the rollback"
    assert not blocked_by_it(sent=0.3, waited=30.0), "a large load, still working"
