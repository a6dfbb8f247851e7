"""Fetch a job's pages concurrently and hand them over in page order.

For paginations whose page addresses are known before the pages arrive (page numbers,
offsets), up to ``concurrency`` requests of one job are in flight at once. Each thread has
its own ``requests.Session`` (a session is not documented as thread-safe) under the same
:class:`~.http.HttpClient` policy, so every request still goes through the source's retries,
its cluster-wide rate limit and its circuit breaker.

- **Order**: the consumer receives page k before page k+1 whatever order they arrived in, so
  it processes and commits them in order and a job's resume position (the first page not
  wholly committed) stays exact. An error fetching page k reaches the consumer at page k,
  after every page before it.
- **Memory**: at most ``concurrency`` pages are fetched ahead of the one the consumer holds.
  With ``concurrency`` 1 this is a read-ahead of one page (:mod:`.prefetch`), which this
  replaces for these paginations.
- **The end**: the window opens only once the first page is taken, so a source that fits in
  one page costs one request. When the consumer stops (a short page ended paging, or an
  error), addresses not yet asked for are never asked for, and answers still in flight are
  dropped when they arrive.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from typing import Generic, TypeVar

from .http import HttpClient, make_session

A = TypeVar("A")  # a page's address: its number or offset
C = TypeVar("C")  # what a thread fetches with: its own HTTP client
T = TypeVar("T")  # a fetched page


def fetched_in_order(fetch: Callable[[C, A], T], addresses: Iterable[A], concurrency: int,
                     thread_client: Callable[[], AbstractContextManager[C]],
                     is_last: Callable[[T], bool] = lambda page: False) -> Iterator[tuple[A, Future[T]]]:
    """Yield ``(address, future)`` for each address in order; ``future.result()`` is the page
    (``fetch(client, address)`` in one of ``concurrency`` threads) or raises its error.

    Ask for the next page only after the one before it was dealt with: closing the generator
    (or not asking again) ends paging. ``thread_client()`` gives each thread its client. Once a
    page ``is_last`` (e.g. short), later addresses not yet sent are not sent.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    pool = _FetchPool(fetch, addresses, concurrency, thread_client, is_last)
    try:
        pool.submit(1)  # the first page alone: it may be the only one
        while pool.window:
            task = pool.window.popleft()
            yield task.address, task.future
            # The consumer came back: the page it took was not the last. The window opens to
            # ``concurrency`` pages ahead of the one handed over next.
            pool.submit(concurrency + 1)
    finally:
        pool.close()


class _FetchPool(Generic[A, C, T]):
    """The threads of one :func:`fetched_in_order` and the pages sent to them, in order."""

    def __init__(self, fetch: Callable[[C, A], T], addresses: Iterable[A], concurrency: int,
                 thread_client: Callable[[], AbstractContextManager[C]], is_last: Callable[[T], bool]) -> None:
        self._fetch, self._concurrency = fetch, concurrency
        self._thread_client, self._is_last = thread_client, is_last
        self._tasks: queue.SimpleQueue[_Task[A, T] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._last_seen = _NEVER  # the index of the first page found to be the last
        self._last_lock = threading.Lock()  # two threads may find a last page at once: keep the lower
        self._upcoming = enumerate(addresses)
        self._threads: list[threading.Thread] = []
        self.window: deque[_Task[A, T]] = deque()

    def submit(self, count: int) -> None:
        """Send pages until ``count`` are in the window (none past the last page seen)."""
        while len(self.window) < count and (pair := next(self._upcoming, None)) is not None \
                and pair[0] <= self._last_seen:
            task = _Task(*pair)
            self.window.append(task)
            self._tasks.put(task)
            if len(self._threads) < min(self._concurrency, len(self.window)):
                # in a copy of the job's context: its log fields, its redactor (core.redact)
                thread = threading.Thread(target=contextvars.copy_context().run, args=(self._work,),
                                          name=f"page-fetch-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def close(self) -> None:
        self._stop.set()
        for task in self.window:
            task.future.cancel()
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        with self._thread_client() as client:
            while (task := self._tasks.get()) is not None and not self._stop.is_set():
                if task.index > self._last_seen or not task.future.set_running_or_notify_cancel():
                    task.future.cancel()  # past the last page, or the consumer stopped before it
                    continue
                try:
                    page = self._fetch(client, task.address)
                except BaseException as exc:  # noqa: BLE001 (raised in the consumer, at this page)
                    task.future.set_exception(exc)
                    continue
                if self._is_last(page):
                    with self._last_lock:
                        self._last_seen = min(self._last_seen, task.index)
                task.future.set_result(page)


class _Task(Generic[A, T]):
    __slots__ = ("address", "future", "index")

    def __init__(self, index: int, address: A) -> None:
        self.index = index
        self.address = address
        self.future: Future[T] = Future()


_NEVER = 1 << 62


@contextmanager
def session_client(client: HttpClient) -> Iterator[HttpClient]:
    """``client``'s policy over a session of this thread's own, closed when the thread is done."""
    session = make_session()
    try:
        yield client.with_session(session)
    finally:
        session.close()
