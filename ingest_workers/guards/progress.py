"""Where a job that ran before got to: the first page it has not wholly committed.

A job killed mid-run (SIGKILL, a lost host) starts again from that page instead of
page 1, so under repeated kills a long source still converges. The page is saved
only after its records' batch committed, so resuming can re-read a page (the dedup
filter and ``ON CONFLICT`` drop what was loaded) but never skip one. Losing the key
(a Redis restart) costs only a re-read from page 1.

Moving past the page saved before also clears the job's count of worker deaths
(:mod:`quarantine`): a job that keeps dying *without getting further* is a poison
job and gets quarantined; one that is killed while making progress is not.
"""

from __future__ import annotations

import redis

from .quarantine import DEATHS_PREFIX

PROGRESS_PREFIX = "ingest:progress:"
PROGRESS_TTL = 7 * 86400


class JobProgress:
    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self._client = client
        self._key = PROGRESS_PREFIX + job_id
        self._deaths_key = DEATHS_PREFIX + job_id
        self._saved = 1

    def page(self) -> int:
        """The page to start from (1 when the job never committed anything)."""
        self._saved = int(self._client.get(self._key) or 1)
        return self._saved

    def save(self, page: int) -> None:
        """Record ``page`` as the first one not wholly committed; call after the commit."""
        if page <= self._saved:
            return
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._key, page, ex=PROGRESS_TTL)
        pipe.delete(self._deaths_key)  # it got further: earlier deaths were not its fault
        pipe.execute()
        self._saved = page

    def clear(self) -> None:
        self._client.delete(self._key)
