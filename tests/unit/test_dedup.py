"""Redis dedup logic on fakeredis (pure Redis logic; the integration tests use the real server)."""

import fakeredis

from ingest_workers.core.config import load_settings
from ingest_workers.load.dedup import SEEN_PREFIX, RedisDedup


def test_keys_are_unseen_until_marked_after_commit() -> None:
    client = fakeredis.FakeRedis()
    dedup = RedisDedup(client)
    assert dedup.unseen("shop", ["a", "b"]) == [True, True]
    pipe = client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"])
    assert dedup.unseen("shop", ["a", "b"]) == [True, True]  # queued, not yet executed ("not committed")
    pipe.execute()
    assert dedup.unseen("shop", ["a", "b"]) == [False, True]
    assert dedup.unseen("other", ["a"]) == [True]  # per source


def test_empty_batches_cost_no_round_trip() -> None:
    client = fakeredis.FakeRedis()
    assert RedisDedup(client).unseen("shop", []) == []
    pipe = client.pipeline()
    RedisDedup.mark_seen(pipe, "shop", [])
    assert len(pipe) == 0


def test_forget_drops_the_filter() -> None:
    client = fakeredis.FakeRedis()
    dedup = RedisDedup(client)
    pipe = client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"])
    pipe.execute()
    dedup.forget("shop")
    assert dedup.unseen("shop", ["a"]) == [True]


def test_a_merge_dataset_remembers_what_was_loaded_per_key_so_a_change_gets_through() -> None:
    from ingest_workers.datasets import parse_dataset
    from ingest_workers.load.dedup import fingerprint

    client = fakeredis.FakeRedis()
    dedup = RedisDedup(client)
    dataset = parse_dataset("items", {"key": ["id"], "write": "merge",
                                     "columns": {"id": "text", "price": "numeric"}})
    first, same, changed = {"id": "a", "price": 1}, {"id": "a", "price": 1, "raw": {"x": 1}}, {"id": "a", "price": 2}
    assert fingerprint(dataset, first) == fingerprint(dataset, same)  # lineage and payload do not count
    assert fingerprint(dataset, first) != fingerprint(dataset, changed)
    assert dedup.remembered("shop", ["a"]) == [None]
    pipe = client.pipeline()
    dedup.remember(pipe, "shop", {"a": fingerprint(dataset, first)})
    pipe.execute()
    assert dedup.remembered("shop", ["a", "b"]) == [fingerprint(dataset, first), None]
    dedup.forget("shop")
    assert dedup.remembered("shop", ["a"]) == [None]


def test_with_a_version_column_the_version_is_the_fingerprint() -> None:
    from ingest_workers.datasets import parse_dataset
    from ingest_workers.load.dedup import fingerprint

    dataset = parse_dataset("items", {"key": ["id"], "write": "merge", "version_column": "v",
                                     "columns": {"id": "text", "v": "integer", "price": "numeric"}})
    same_version = fingerprint(dataset, {"id": "a", "v": 3, "price": 1})
    assert same_version == fingerprint(dataset, {"id": "a", "v": 3, "price": 9})


def test_dedup_sets_expire_and_each_use_pushes_the_expiry_back() -> None:
    """Never forever; a set in use stays."""
    redis_client = fakeredis.FakeRedis()
    dedup = RedisDedup(redis_client, ttl=1000)
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"], dedup.ttl)
    pipe.execute()
    assert 990 < redis_client.ttl(SEEN_PREFIX + "shop") <= 1000
    redis_client.expire(SEEN_PREFIX + "shop", 10)
    assert dedup.unseen("shop", ["a", "b"]) == [False, True]
    assert redis_client.ttl(SEEN_PREFIX + "shop") > 990
    assert load_settings(env={"INGEST_DEDUP_TTL": "86400"}).dedup_ttl == 86400
