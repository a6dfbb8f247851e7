"""Redis as a fast filter in front of PostgreSQL.

Append datasets: one Redis set per source holds the natural keys already committed to
PostgreSQL. A batch is checked in one ``SMISMEMBER`` round trip, and keys are
added only *after* the batch's transaction committed (:meth:`RedisDedup.mark_seen` queues
them on the caller's post-commit pipeline). So a key in Redis always means
"in PostgreSQL"; a lost Redis only costs speed, since the table's unique key
and ``ON CONFLICT DO NOTHING`` still refuse the duplicates.

Merge datasets: a key alone must not hide a change, so one Redis hash per source maps each
committed key to a fingerprint of the values loaded (or of its version, with a
``version_column``): a record whose fingerprint is the one remembered is dropped, any other
goes on to PostgreSQL, which decides (``ON CONFLICT DO UPDATE ... WHERE``). Redis can only
make a record skip work it would not have done: never replace or keep a row by itself.

Each set (and hash) expires ``ttl`` seconds (``INGEST_DEDUP_TTL``, 30 days) after its last use:
every check and every mark pushes the expiry back, so the set of a source that runs
stays, and the set of a source no longer run does not stay in Redis forever. An expired
set only means the next run checks its keys against PostgreSQL again: a key is never
added that is not in PostgreSQL, so "a key in Redis means a row in PostgreSQL" holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from ..datasets import Dataset
from ..datasets.nesting import nested_lists

SEEN_PREFIX = "ingest:seen:"
FINGERPRINT_PREFIX = "ingest:fp:"


def fingerprint(dataset: Dataset, row: dict[str, Any]) -> str:
    """What identifies the version of a record loaded: its version (and whether it is flagged
    deleted: a deletion that keeps the version must get through), or a hash of its values."""
    if dataset.version_column is not None:
        deleted = ":deleted" if dataset.deleted_column is not None and row.get(dataset.deleted_column) is True else ""
        return f"v:{row[dataset.version_column]}{deleted}"
    # The lists nested datasets read are part of the record: a changed list is a changed record.
    nested = tuple(nested_lists(dataset, row.get("raw"))) if dataset.nested else ()
    values = repr((*(row.get(column) for column in dataset.column_names), *nested)).encode("utf-8",
                                                                                          "surrogatepass")
    return hashlib.blake2b(values, digest_size=12).hexdigest()


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
        self._client.delete(SEEN_PREFIX + source, FINGERPRINT_PREFIX + source)

    def remembered(self, source: str, keys: Sequence[str]) -> list[str | None]:
        """For each key, the fingerprint last committed for ``source`` (None: never, or forgotten)."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(FINGERPRINT_PREFIX + source, list(keys))
        if self.ttl:
            pipe.expire(FINGERPRINT_PREFIX + source, self.ttl)
        found = pipe.execute()[0]
        return [None if value is None else value.decode() if isinstance(value, bytes) else value for value in found]

    @staticmethod
    def remember(pipe: redis.client.Pipeline, source: str, prints: Mapping[str, str], ttl: int | None = None) -> None:
        """Queue each key's fingerprint as committed (and the hash's expiry ``ttl`` from now);
        call only after the PostgreSQL commit."""
        if prints:
            pipe.hset(FINGERPRINT_PREFIX + source, mapping=dict(prints))
            if ttl:
                pipe.expire(FINGERPRINT_PREFIX + source, ttl)
