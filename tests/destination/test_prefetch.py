"""The builder thread of upcoming loads: order, bounds, errors and stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from dbkit.destination.prefetch import Prefetcher
from dbkit.errors import SystemFailure


def _counting(values: list[int], built: list[int]) -> Iterator[int]:
    for value in values:
        built.append(value)
        yield value


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_loads_get_their_parts_in_order_built_ahead_within_the_bound() -> None:
    prefetcher = Prefetcher(ahead=3)
    built: list[int] = []
    try:
        first = prefetcher.start(_counting(list(range(10)), built))
        second = prefetcher.start(_counting(list(range(100, 105)), built))
        _wait_for(lambda: len(built) >= 4)
        time.sleep(0.1)
        # 3 parts wait in the queue and the builder holds the 4th: nothing more is built
        assert built == [0, 1, 2, 3]
        assert list(first) == list(range(10))
        assert list(second) == list(range(100, 105))
        assert built == [*range(10), *range(100, 105)]
    finally:
        prefetcher.close()


def test_an_error_building_a_part_reaches_the_load_after_the_parts_before_it() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad record")

    prefetcher = Prefetcher(ahead=2)
    try:
        parts = prefetcher.start(broken())
        assert next(parts) == 1
        with pytest.raises(ValueError, match="bad record"):
            next(parts)
        with pytest.raises(StopIteration):
            next(parts)
        # the builder goes on with the next load
        assert list(prefetcher.start(iter([7, 8]))) == [7, 8]
    finally:
        prefetcher.close()


def test_a_cancelled_load_releases_the_builder_for_the_next_one() -> None:
    prefetcher = Prefetcher(ahead=1)
    built: list[int] = []
    try:
        failed = prefetcher.start(_counting(list(range(50)), built))
        after = prefetcher.start(iter([1, 2, 3]))
        assert next(failed) == 0
        failed.cancel()  # the load failed: it reads no more
        assert list(after) == [1, 2, 3]
        assert len(built) < 50
    finally:
        prefetcher.close()


def test_close_stops_the_builder_and_a_waiting_load() -> None:
    prefetcher = Prefetcher(ahead=1)
    gate = threading.Event()

    def slow() -> Iterator[int]:
        gate.wait(5)
        yield 1

    parts = prefetcher.start(slow())
    closer = threading.Thread(target=prefetcher.close)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            list(parts)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    closer.start()
    gate.set()
    closer.join(5)
    reader.join(5)
    assert not closer.is_alive()
    assert not reader.is_alive()
    assert not errors or isinstance(errors[0], SystemFailure)
