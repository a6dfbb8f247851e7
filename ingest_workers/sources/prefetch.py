"""Read an iterator ahead in a background thread, so a slow source's latency overlaps the work.

While the pipeline validates and loads the records of page k, the thread is
already waiting on page k+1. The buffer is bounded (``depth`` items), so memory
stays flat whatever the source's size; an exception in the source is raised in
the consumer at the point it happened.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order, produced up to ``depth`` items ahead by a daemon thread.

    Closing the returned generator early (or an error in the consumer) stops the thread.
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, which raises it)
            put(_Failure(exc))
            return
        put(_END)

    # in a copy of the job's context: its log fields, its redactor (core.redact)
    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,), name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


def read_ahead(items: Iterable[T], pages: int, page_size: int) -> Iterator[T]:
    """Yield ``items`` in order while a thread reads up to ``pages`` pages of ``page_size``
    items ahead (0 pages: no thread). Items cross threads a page at a time: a hand-off per
    item would cost more than the work on many items."""
    if pages <= 0:
        yield from items
        return
    with closing(prefetched(_pages(items, page_size), pages)) as ahead:
        for page in ahead:
            yield from page


def _pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while page := list(islice(iterator, size)):
        yield page
