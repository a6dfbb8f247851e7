"""The Redis filter in front of PostgreSQL, on the real Redis: one Lua script per batch, given the keys
as one JSON text, must answer what the commands one key at a time answered."""

import pytest
import redis

from ingest_workers.datasets import parse_dataset
from ingest_workers.load.dedup import FINGERPRINT_PREFIX, SEEN_PREFIX, RedisDedup, fingerprint

pytestmark = pytest.mark.integration

# keys a natural key can be: COPY's and JSON's special characters, NUL, the key separator, non-ASCII
ODD_KEYS = ["plain", "tab\there", "new\nline", "nul\x00", "sep\x1fpart", 'quote"\\', "é", "𝄞", "[]", "{}", " "]


def test_keys_are_unseen_until_marked_after_commit(redis_client: redis.Redis) -> None:
    dedup = RedisDedup(redis_client)
    assert dedup.unseen("shop", ["a", "b"]) == [True, True]
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"])
    assert dedup.unseen("shop", ["a", "b"]) == [True, True]  # queued, not yet executed ("not committed")
    pipe.execute()
    assert dedup.unseen("shop", ["a", "b"]) == [False, True]
    assert dedup.unseen("other", ["a"]) == [True]  # per source
    assert redis_client.ttl(SEEN_PREFIX + "shop") == -1  # no ttl: forever


def test_odd_keys_and_batches_larger_than_one_command_takes(redis_client: redis.Redis) -> None:
    dedup = RedisDedup(redis_client)
    keys = [f"k{i}" for i in range(9_001)] + ODD_KEYS
    marked = keys[::3]
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", marked)
    pipe.execute()
    assert redis_client.smembers(SEEN_PREFIX + "shop") == {key.encode() for key in marked}
    assert dedup.unseen("shop", keys) == [i % 3 != 0 for i in range(len(keys))]


def test_a_key_redis_py_cannot_encode_is_refused_as_before(redis_client: redis.Redis) -> None:
    with pytest.raises(UnicodeEncodeError):
        RedisDedup(redis_client).unseen("shop", ["lone \ud800"])


def test_empty_batches_cost_no_round_trip(redis_client: redis.Redis) -> None:
    assert RedisDedup(redis_client).unseen("shop", []) == []
    assert RedisDedup(redis_client).remembered("shop", []) == []
    pipe = redis_client.pipeline()
    RedisDedup.mark_seen(pipe, "shop", [])
    RedisDedup.remember(pipe, "shop", {})
    assert len(pipe) == 0


def test_forget_drops_the_filter(redis_client: redis.Redis) -> None:
    dedup = RedisDedup(redis_client)
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"])
    pipe.execute()
    dedup.forget("shop")
    assert dedup.unseen("shop", ["a"]) == [True]


def test_a_merge_dataset_remembers_what_was_loaded_per_key_so_a_change_gets_through(
        redis_client: redis.Redis) -> None:
    dedup = RedisDedup(redis_client)
    dataset = parse_dataset("items", {"key": ["id"], "write": "merge",
                                     "columns": {"id": "text", "price": "numeric"}})
    first = {"id": "a", "price": 1}
    assert dedup.remembered("shop", ["a"]) == [None]
    pipe = redis_client.pipeline()
    dedup.remember(pipe, "shop", {"a": fingerprint(dataset, first)})
    pipe.execute()
    assert dedup.remembered("shop", ["a", "b"]) == [fingerprint(dataset, first), None]
    dedup.forget("shop")
    assert dedup.remembered("shop", ["a"]) == [None]


def test_fingerprints_of_odd_keys_and_large_batches(redis_client: redis.Redis) -> None:
    dedup = RedisDedup(redis_client)
    keys = [f"k{i}" for i in range(5_001)] + ODD_KEYS
    prints = {key: f"v:{i}\t{key}" for i, key in enumerate(keys) if i % 2}
    pipe = redis_client.pipeline()
    dedup.remember(pipe, "shop", prints)
    pipe.execute()
    assert redis_client.hlen(FINGERPRINT_PREFIX + "shop") == len(prints)
    assert dedup.remembered("shop", keys) == [prints.get(key) for key in keys]


def test_dedup_sets_expire_and_each_use_pushes_the_expiry_back(redis_client: redis.Redis) -> None:
    """Never forever; a set in use stays."""
    dedup = RedisDedup(redis_client, ttl=1000)
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"], dedup.ttl)
    dedup.remember(pipe, "shop", {"a": "v:1"}, dedup.ttl)
    pipe.execute()
    for prefix in (SEEN_PREFIX, FINGERPRINT_PREFIX):
        assert 990 < redis_client.ttl(prefix + "shop") <= 1000
        redis_client.expire(prefix + "shop", 10)
    assert dedup.unseen("shop", ["a", "b"]) == [False, True]
    assert dedup.remembered("shop", ["a"]) == ["v:1"]
    for prefix in (SEEN_PREFIX, FINGERPRINT_PREFIX):
        assert redis_client.ttl(prefix + "shop") > 990
