"""Redis dedup logic on fakeredis (pure Redis logic; the integration tests use the real server)."""

import fakeredis

from ingest_workers.load.dedup import RedisDedup


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
