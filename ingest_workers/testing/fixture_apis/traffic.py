"""What the fixture server remembers of its traffic: a count of requests per path, and which
paths answer a transient fault on their first request.

A path (with its query) is chosen for a fault by a hash of the seed and the path, so the same
paths fail in every run with the same settings; it fails on its first request under the current
revision only, so a client that retries always gets through.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultShares:
    """Shares (0..1) of paths that answer 500, or 429 with ``Retry-After: retry_after``, once."""

    error: float = 0.0
    throttle: float = 0.0
    retry_after: int = 0  # seconds
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.error, self.throttle) < 0 or self.error + self.throttle > 1:
            raise ValueError(f"fault shares must be >= 0 and sum to at most 1, got {self.error}, {self.throttle}")

    def status_for(self, path: str) -> int | None:
        """500, 429 or None: the fault ``path`` answers on its first request."""
        if not (self.error or self.throttle):
            return None
        digest = hashlib.sha256(f"{self.seed}:{path}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw < self.error:
            return 500
        return 429 if draw < self.error + self.throttle else None


class RequestLog:
    """Thread-safe counts of requests per path (with query), over the server's whole life, and
    of requests per path under the current revision (what decides a first-request fault)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._this_revision: Counter[str] = Counter()

    def record(self, path: str) -> int:
        """Count one request of ``path``; return how many it has had under this revision (1: first)."""
        with self._lock:
            self._counts[path] += 1
            self._this_revision[path] += 1
            return self._this_revision[path]

    def new_revision(self) -> None:
        """Forget which paths were asked under the old revision: their first request faults again."""
        with self._lock:
            self._this_revision.clear()

    def counts(self) -> dict[str, int]:
        """A copy of the requests per path so far."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._this_revision.clear()
