"""Where a job that ran before got to: the first page it has not wholly committed.

A job killed mid-run (SIGKILL, a lost host) starts again from that page instead of
page 1, so under repeated kills a long source still converges. The page is saved
only after its records' batch committed, so resuming can re-read a page (the dedup
filter and ``ON CONFLICT`` drop what was loaded) but never skip one. Losing the key
(a Redis restart) costs only a re-read from page 1.
"""

from __future__ import annotations

import redis

PROGRESS_PREFIX = "ingest:progress:"
PROGRESS_TTL = 7 * 86400


class JobProgress:
    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self._client = client
        self._key = PROGRESS_PREFIX + job_id

    def page(self) -> int:
        """The page to start from (1 when the job never committed anything)."""
        return int(self._client.get(self._key) or 1)

    def save(self, page: int) -> None:
        self._client.set(self._key, page, ex=PROGRESS_TTL)

    def clear(self) -> None:
        self._client.delete(self._key)
