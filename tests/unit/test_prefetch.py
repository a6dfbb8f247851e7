import threading

import pytest

from ingest_workers.pipeline.resume import Position, with_resume_page
from ingest_workers.sources.prefetch import prefetched, read_ahead
from tests.helpers import wait_until


def test_items_arrive_in_order() -> None:
    assert list(prefetched(range(1000), depth=7)) == list(range(1000))


def test_depth_zero_is_plain_iteration() -> None:
    assert list(prefetched(iter("abc"), depth=0)) == ["a", "b", "c"]


def test_the_producer_never_runs_more_than_depth_ahead() -> None:
    produced: list[int] = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetched(source(), depth=3)
    assert next(stream) == 0
    wait_until(lambda: len(produced) >= 1 + 3 + 1, timeout=10, poll=0.01)  # the producer has caught up...
    assert len(produced) == 1 + 3 + 1  # ...and stopped: consumed, buffered, and one waiting to be put
    assert next(stream) == 1
    wait_until(lambda: len(produced) >= 6, timeout=10, poll=0.01)
    assert len(produced) == 6  # one taken, one more made
    stream.close()


def test_a_source_error_is_raised_where_it_happened() -> None:
    def source():
        yield 1
        yield 2
        raise ValueError("page 3 broke")

    stream = prefetched(source(), depth=2)
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(ValueError, match="page 3 broke"):
        next(stream)


def test_the_next_item_is_fetched_while_the_consumer_works_on_this_one() -> None:
    fetched = [threading.Event() for _ in range(3)]

    def source():
        for i in range(3):
            fetched[i].set()
            yield i

    stream = prefetched(source(), depth=2)
    assert next(stream) == 0
    # Still "working" on item 0: item 1 must arrive without the consumer asking for it.
    assert fetched[1].wait(timeout=5)
    assert list(stream) == [1, 2]


def test_closing_early_stops_the_thread() -> None:
    before = set(threading.enumerate())
    stream = prefetched(iter(range(10**9)), depth=2)
    next(stream)
    started = set(threading.enumerate()) - before
    stream.close()
    assert [t.name for t in started] == ["prefetch"]
    for thread in started:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in started)


def test_read_ahead_yields_every_item_in_order_across_pages() -> None:
    assert list(read_ahead(range(1001), pages=2, page_size=100)) == list(range(1001))
    assert list(read_ahead(iter("abc"), pages=0, page_size=100)) == ["a", "b", "c"]


def test_read_ahead_stays_within_its_pages() -> None:
    produced: list[int] = []

    def source():
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = read_ahead(source(), pages=2, page_size=100)
    assert next(stream) == 0
    wait_until(lambda: len(produced) >= 4 * 100, timeout=10, poll=0.01)
    # the page in hand, two buffered, one waiting to be put: memory is bounded by pages, not the source
    assert len(produced) == 4 * 100
    stream.close()


def test_closing_read_ahead_stops_its_thread() -> None:
    before = set(threading.enumerate())
    stream = read_ahead(iter(range(10**9)), pages=2, page_size=10)
    next(stream)
    started = set(threading.enumerate()) - before
    stream.close()
    assert [t.name for t in started] == ["prefetch"]
    for thread in started:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in started)



class PagedSource:
    """Three pages of three records; ``resume_page`` moves as each page is read (like http_json)."""

    def __init__(self) -> None:
        self.resume_page = 1

    def resume_from(self, page: int) -> None:
        raise AssertionError("not called here")

    def stream(self):
        for page in (1, 2, 3):
            self.resume_page = page
            yield from (f"p{page}r{i}" for i in range(3))


def test_the_resume_point_is_the_page_of_the_record_taken_not_of_the_page_read_ahead() -> None:
    source, position = PagedSource(), Position()
    records = position.follow(read_ahead(with_resume_page(source), pages=2, page_size=3))
    assert [next(records) for _ in range(4)] == ["p1r0", "p1r1", "p1r2", "p2r0"]
    wait_until(lambda: source.resume_page == 3, timeout=10, poll=0.01)  # the thread has read ahead...
    assert position.resume_page == 2  # ...but a job that committed these four resumes at page 2
    records.close()
