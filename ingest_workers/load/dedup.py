"""Redis as a fast filter in front of PostgreSQL.

One Redis set per source holds the natural keys already committed to
PostgreSQL. A batch is checked in one ``SMISMEMBER`` round trip, and keys are
added only *after* the batch's transaction committed (:meth:`mark_seen` queues
them on the caller's post-commit pipeline). So a key in Redis always means
"in PostgreSQL"; a lost Redis only costs speed, since the table's unique key
and ``ON CONFLICT DO NOTHING`` still refuse the duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

SEEN_PREFIX = "ingest:seen:"


class RedisDedup:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def unseen(self, source: str, keys: Sequence[str]) -> list[bool]:
        """For each key, True when it was never committed for ``source``."""
        if not keys:
            return []
        flags = self._client.smismember(SEEN_PREFIX + source, list(keys))
        return [not flag for flag in flags]

    @staticmethod
    def mark_seen(pipe: redis.client.Pipeline, source: str, keys: Sequence[str]) -> None:
        """Queue ``keys`` as committed; call only after the PostgreSQL commit."""
        if keys:
            pipe.sadd(SEEN_PREFIX + source, *keys)

    def forget(self, source: str) -> None:
        """Drop the filter of ``source`` (PostgreSQL still refuses duplicates)."""
        self._client.delete(SEEN_PREFIX + source)
