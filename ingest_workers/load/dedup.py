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

Each batch is one Lua script call (:data:`_UNSEEN`, :data:`_MARK_SEEN`, ...) given its keys as one
JSON array made by orjson, and answering one string: redis-py would otherwise encode, pack and parse
every key of every batch in Python, which cost a job more than its COPY. Keys orjson refuses (lone
surrogates, which redis-py refuses too) take the commands one by one, as before.

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

import orjson
import redis

from ..datasets import Dataset
from ..datasets.nesting import nested_lists

SEEN_PREFIX = "ingest:seen:"
FINGERPRINT_PREFIX = "ingest:fp:"

# KEYS[1]: the set or hash; ARGV[1]: a JSON array of keys (or an object key -> fingerprint); ARGV[2]: the
# expiry in seconds, 0 for none. Keys go to commands in chunks: Lua's unpack takes a few thousand at most.
_CHUNKS = """
local function chunks(items, size, call)
  for i = 1, #items, size do call(unpack(items, i, math.min(i + size - 1, #items))) end
end
local function expire()
  if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
"""
# "1" for each key in the set, "0" for the others, in order
_UNSEEN = _CHUNKS + """
local keys, flags = cjson.decode(ARGV[1]), {}
chunks(keys, 4000, function(...)
  for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[1], ...)) do flags[#flags + 1] = flag end
end)
expire()
return table.concat(flags)
"""
_MARK_SEEN = _CHUNKS + """
chunks(cjson.decode(ARGV[1]), 4000, function(...) redis.call('SADD', KEYS[1], ...) end)
expire()
"""
# a JSON array: each key's fingerprint, false for none
_REMEMBERED = _CHUNKS + """
local keys, found = cjson.decode(ARGV[1]), {}
chunks(keys, 4000, function(...)
  for _, value in ipairs(redis.call('HMGET', KEYS[1], ...)) do found[#found + 1] = value end
end)
expire()
return cjson.encode(found)
"""
_REMEMBER = _CHUNKS + """
local flat = {}
for key, value in pairs(cjson.decode(ARGV[1])) do flat[#flat + 1] = key; flat[#flat + 1] = value end
chunks(flat, 4000, function(...) redis.call('HSET', KEYS[1], ...) end)
expire()
"""


def _json(keys: object) -> bytes | None:
    """``keys`` as a JSON text for a script; None when orjson refuses them (a lone surrogate)."""
    try:
        return orjson.dumps(keys)
    except TypeError:
        return None


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
        self._unseen = client.register_script(_UNSEEN)
        self._remembered = client.register_script(_REMEMBERED)

    def unseen(self, source: str, keys: Sequence[str]) -> list[bool]:
        """For each key, True when it was never committed for ``source`` (the set's expiry is
        pushed back in the same round trip)."""
        if not keys:
            return []
        payload = _json(list(keys))
        if payload is None:
            pipe = self._client.pipeline(transaction=False)
            pipe.smismember(SEEN_PREFIX + source, list(keys))
            if self.ttl:
                pipe.expire(SEEN_PREFIX + source, self.ttl)
            return [not flag for flag in pipe.execute()[0]]
        flags = self._unseen(keys=[SEEN_PREFIX + source], args=[payload, self.ttl or 0])
        return [flag == 48 for flag in (flags.encode() if isinstance(flags, str) else flags)]  # b"0"

    @staticmethod
    def mark_seen(pipe: redis.client.Pipeline, source: str, keys: Sequence[str], ttl: int | None = None) -> None:
        """Queue ``keys`` as committed (and the set's expiry ``ttl`` from now); call only after
        the PostgreSQL commit."""
        if not keys:
            return
        payload = _json(list(keys))
        if payload is not None:  # EVAL, not EVALSHA: a pipeline cannot load a script Redis forgot
            pipe.eval(_MARK_SEEN, 1, SEEN_PREFIX + source, payload, ttl or 0)
            return
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
        payload = _json(list(keys))
        if payload is not None:
            found = orjson.loads(self._remembered(keys=[FINGERPRINT_PREFIX + source], args=[payload, self.ttl or 0]))
            return [None if value is False else value for value in found]  # false: Lua's nil
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
        if not prints:
            return
        payload = _json(dict(prints))
        if payload is not None:
            pipe.eval(_REMEMBER, 1, FINGERPRINT_PREFIX + source, payload, ttl or 0)
            return
        pipe.hset(FINGERPRINT_PREFIX + source, mapping=dict(prints))
        if ttl:
            pipe.expire(FINGERPRINT_PREFIX + source, ttl)
