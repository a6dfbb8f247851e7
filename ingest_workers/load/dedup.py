"""Redis as a fast filter in front of PostgreSQL.

One Redis set per source holds the natural keys already committed to
PostgreSQL. A batch is checked in one ``SMISMEMBER`` round trip, and keys are
added only *after* the batch's transaction committed (:meth:`mark_seen` queues
them on the caller's post-commit pipeline). So a key in Redis always means
"in PostgreSQL"; a lost Redis only costs speed, since the table's unique key
and ``ON CONFLICT DO NOTHING`` still refuse the duplicates.

Each set expires ``ttl`` seconds (``INGEST_DEDUP_TTL``, 30 days) after its last use:
every check and every mark pushes the expiry back, so the set of a source that runs
stays, and the set of a source no longer run does not stay in Redis forever. An expired
set only means the next run checks its keys against PostgreSQL again: a key is never
added that is not in PostgreSQL, so "a key in Redis means a row in PostgreSQL" holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

SEEN_PREFIX = "ingest:seen:"


class RedisDedup:
    def __init__(self, client: redis.Redis, ttl: int | None = None) -> None:
        self._client = client
        self.ttl = ttl  # seconds the set lives after its last use; None: forever

    def unseen(self, source: str, keys: Sequence[str]) -> list[bool]:
        """For each key, True when it was never committed for ``source`` (the set's expiry is
        pushed back in the same round trip)."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        pipe.smismember(SEEN_PREFIX + source, list(keys))
        if self.ttl:
            pipe.expire(SEEN_PREFIX + source, self.ttl)
        flags = pipe.execute()[0]
        return [not flag for flag in flags]

    @staticmethod
    def mark_seen(pipe: redis.client.Pipeline, source: str, keys: Sequence[str], ttl: int | None = None) -> None:
        """Queue ``keys`` as committed (and the set's expiry ``ttl`` from now); call only after
        the PostgreSQL commit."""
        if keys:
            pipe.sadd(SEEN_PREFIX + source, *keys)
            if ttl:
                pipe.expire(SEEN_PREFIX + source, ttl)

    def forget(self, source: str) -> None:
        """Drop the filter of ``source`` (PostgreSQL still refuses duplicates)."""
        self._client.delete(SEEN_PREFIX + source)
