"""Concurrent page fetch: pages handed over in order, bounded in flight and ahead, nothing sent
past the last page once it is known, errors raised at their own page, threads ended on close."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from itertools import count

import pytest

from ingest_workers.sources.page_fetch import fetched_in_order


class Recorder:
    """Stands in for the source: page n is ``[n] * size`` (shorter at ``last``), answered after a
    random short delay so that pages finish out of order; counts what is in flight."""

    def __init__(self, last: int | None = None, size: int = 3, fail_at: int | None = None) -> None:
        self.last, self.size, self.fail_at = last, size, fail_at
        self.asked: list[int] = []
        self.in_flight = self.most_in_flight = 0
        self.clients_opened: list[int] = []
        self.clients_closed: list[int] = []
        self._lock = threading.Lock()
        self._random = random.Random(7)

    def fetch(self, client: int, page: int) -> list[int]:
        with self._lock:
            self.asked.append(page)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            delay = self._random.uniform(0, 0.01)
        time.sleep(delay)
        with self._lock:
            self.in_flight -= 1
        if page == self.fail_at:
            raise RuntimeError(f"page {page} broke")
        return [page] * (1 if page == self.last else self.size)

    @contextmanager
    def client(self) -> Iterator[int]:
        with self._lock:
            number = len(self.clients_opened)
            self.clients_opened.append(number)
        try:
            yield number
        finally:
            with self._lock:
                self.clients_closed.append(number)

    def pages(self, concurrency: int, start: int = 1) -> Iterator[tuple[int, object]]:
        return fetched_in_order(self.fetch, count(start), concurrency, self.client,
                                is_last=lambda page: len(page) < self.size)


def read_all(recorder: Recorder, concurrency: int) -> list[int]:
    """What a consumer like http_json takes: pages in order until a short one."""
    taken: list[int] = []
    with closing(recorder.pages(concurrency)) as pages:
        for _, future in pages:
            page = future.result()
            taken.extend(page)
            if len(page) < recorder.size:
                break
    return taken


def wait_for_threads_to_end() -> None:
    deadline = time.monotonic() + 10
    while any(t.name.startswith("page-fetch-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "page-fetch threads still running"
        time.sleep(0.01)


@pytest.mark.parametrize("concurrency", [1, 2, 4, 8, 16])
def test_pages_arrive_in_page_order_whatever_order_they_finish_in(concurrency: int) -> None:
    recorder = Recorder(last=40)
    assert read_all(recorder, concurrency) == [p for p in range(1, 40) for _ in range(3)] + [40]
    assert recorder.most_in_flight <= concurrency
    wait_for_threads_to_end()


@pytest.mark.parametrize("concurrency", [1, 4, 8])
def test_at_most_concurrency_pages_are_fetched_ahead_of_the_one_taken(concurrency: int) -> None:
    recorder = Recorder(last=30)
    with closing(recorder.pages(concurrency)) as pages:
        for address, future in pages:
            page = future.result()
            time.sleep(0.02)  # a slow consumer: the threads get as far ahead as they may
            with recorder._lock:
                assert max(recorder.asked) - address <= concurrency
            if len(page) < recorder.size:
                break
    wait_for_threads_to_end()


def test_a_source_of_one_page_costs_one_request() -> None:
    recorder = Recorder(last=1)
    assert read_all(recorder, 8) == [1]
    wait_for_threads_to_end()
    assert recorder.asked == [1]


def test_once_the_short_page_is_known_no_later_page_is_asked_for() -> None:
    recorder = Recorder(last=5)
    assert read_all(recorder, 1) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5]
    wait_for_threads_to_end()
    assert sorted(recorder.asked) == [1, 2, 3, 4, 5]  # one thread: page 6 waited behind page 5

    recorder = Recorder(last=5)
    read_all(recorder, 4)
    wait_for_threads_to_end()
    assert max(recorder.asked) <= 5 + 4  # only what was in flight with page 5


def test_an_error_reaches_the_consumer_at_its_own_page_after_every_page_before_it() -> None:
    recorder = Recorder(fail_at=6)
    taken = []
    with closing(recorder.pages(4)) as pages:
        for address, future in pages:
            try:
                taken.append(future.result()[0])
            except RuntimeError as exc:
                assert (address, str(exc)) == (6, "page 6 broke")
                break
    assert taken == [1, 2, 3, 4, 5]
    wait_for_threads_to_end()


def test_closing_early_stops_the_threads_and_closes_each_threads_client() -> None:
    recorder = Recorder()  # endless
    with closing(recorder.pages(4)) as pages:
        for address, future in pages:
            future.result()
            if address == 10:
                break
    wait_for_threads_to_end()
    asked = len(recorder.asked)
    assert asked <= 10 + 4 + 1
    assert sorted(recorder.clients_closed) == recorder.clients_opened  # one client per thread, all closed
    assert 1 <= len(recorder.clients_opened) <= 4


def test_resumes_at_any_address() -> None:
    recorder = Recorder(last=12)
    with closing(recorder.pages(3, start=10)) as pages:
        addresses = []
        for address, future in pages:
            addresses.append(address)
            if len(future.result()) < recorder.size:
                break
    assert addresses == [10, 11, 12]
    wait_for_threads_to_end()


def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(fetched_in_order(lambda client, page: page, count(), 0, Recorder().client))
