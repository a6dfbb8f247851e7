"""A bounded cache of served pages for the mock server, so that a benchmark measures the
workers and not the mock computing its records (it shares the machine's cores).

Keyed by the request's path and query as sent: a client asking for the same page the
same way gets the same bytes. Least recently used pages go first once the cached bodies
pass ``max_bytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class PageCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[str, tuple[bytes, dict[str, str]]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # the server answers each request in its own thread

    def get(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: str, body: bytes, headers: dict[str, str]) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = (body, headers)
            self._size += len(body)
            while self._size > self.max_bytes:
                _, (old, _) = self._pages.popitem(last=False)
                self._size -= len(old)

    def __len__(self) -> int:
        return len(self._pages)
