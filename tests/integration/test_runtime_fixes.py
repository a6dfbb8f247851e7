"""Regression tests of issue 13's runtime items, against the real Redis and PostgreSQL:
scheduler slots across an interval change (7), claim and enqueue in one step (8),
respawn back-off, the stop grace and the breaker's probe bound (9), per-attempt job counts
and dedup sets that expire (10)."""

from __future__ import annotations

import dataclasses
import importlib
import time
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner
from rq import Queue

from ingest_workers import pipeline
from ingest_workers.cli import main
from ingest_workers.core.config import Settings, load_settings
from ingest_workers.core.errors import CircuitOpen
from ingest_workers.core.models import Counts, SourceSpec
from ingest_workers.guards.breaker import CircuitBreaker
from ingest_workers.load.dedup import SEEN_PREFIX, RedisDedup
from ingest_workers.ops.history import JobHistory
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.scheduler import SourceScheduler

pytestmark = pytest.mark.integration
SPEC = SourceSpec(name="sched", kind="http_json", dataset="products", url="http://127.0.0.1:1/p")


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC).timestamp()


def fire(redis_client: redis.Redis, settings: Settings, interval: int, moment: float) -> list[str]:
    """One tick of a scheduler of SPEC every ``interval`` seconds at ``moment``; the jobs it
    enqueued are deleted (ended), so a run in flight never holds a slot back here."""
    queue = make_queue(redis_client, settings)
    spec = dataclasses.replace(SPEC, interval_seconds=interval)
    fired = SourceScheduler(queue, settings, [spec], clock=lambda: moment).tick()
    for item in fired:
        redis_client.delete(f"rq:job:{item.job_id}")
    return [f"{item.slot_start:%H:%M}" for item in fired]


def test_scheduler_slots_survive_an_interval_change(redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 7: 300 s -> 3600 s fires at the next hour, and back to 300 s at the next 5 minutes."""
    assert fire(redis_client, settings, 300, at(10, 56)) == ["10:55"]
    assert fire(redis_client, settings, 3600, at(10, 58)) == []  # the hour's slot started before 10:55
    assert fire(redis_client, settings, 3600, at(11, 0, 30)) == ["11:00"]
    assert fire(redis_client, settings, 3600, at(11, 30)) == []
    assert fire(redis_client, settings, 300, at(11, 3)) == []  # 11:00 was fired already
    assert fire(redis_client, settings, 300, at(11, 5, 10)) == ["11:05"]


def test_a_producer_that_dies_between_claim_and_enqueue_leaves_nothing_claimed(
        redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue item 8: both or neither; enqueueing again creates the jobs."""
    queue = make_queue(redis_client, settings)
    specs = [dataclasses.replace(SPEC, name=name) for name in ("a", "b")]

    def die(self: Queue, *args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("the producer died here")

    with monkeypatch.context() as patch:
        patch.setattr(Queue, "enqueue_many", die)
        with pytest.raises(KeyboardInterrupt):
            enqueue_run(queue, settings, specs, "run-1")
    assert queue.count == 0
    again = enqueue_run(queue, settings, specs, "run-1")
    assert [item.created for item in again] == [True, True]
    assert sorted(queue.job_ids) == ["run-1-a", "run-1-b"]
    assert [item.created for item in enqueue_run(queue, settings, specs, "run-1")] == [False, False]


class _Exited:
    """A worker process that has already exited."""

    returncode = 1

    def poll(self) -> int:
        return 1


def test_a_crashing_worker_is_restarted_after_a_growing_capped_back_off() -> None:
    """Issue item 9: not every second; 0, 1, 2, 4, ... seconds, at most 60."""
    from ingest_workers.runtime.workerpool import RespawnBackoff, supervise  # new in this fix

    now = [0.0]
    starts: list[float] = []
    delays: list[float] = []

    def start() -> _Exited:
        starts.append(now[0])
        return _Exited()

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return now[0] > 400

    supervise(start, 1, wait, lambda: now[0], lambda processes: None,  # type: ignore[arg-type]
              on_exit=lambda status, delay: delays.append(delay))
    assert delays[:9] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert len(starts) < 15  # against 400 restarts at one a second
    backoff = RespawnBackoff()
    assert [backoff.delay(0), backoff.delay(0), backoff.delay(120)] == [0.0, 1.0, 0.0]  # a long run starts over


def test_ingest_workers_stops_its_workers_with_the_configured_grace(monkeypatch: pytest.MonkeyPatch,
                                                                     settings: Settings) -> None:
    assert load_settings(env={"INGEST_STOP_GRACE": "2400"}).stop_grace == 2400
    assert Settings().stop_grace > Settings().job_timeout  # the job in hand may run to its timeout
    graces: list[float] = []
    module = importlib.import_module("ingest_workers.cli.workers")  # the package exports the command by that name
    monkeypatch.setattr(module, "supervise", lambda start, count, should_stop, clock, stop, on_exit, **hooks: stop([]))
    monkeypatch.setattr(module, "stop_workers", lambda processes, grace: graces.append(grace))
    result = CliRunner().invoke(main, ["workers", "--count", "1"],
                                env={"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
                                     "INGEST_STOP_GRACE": "2400"})
    assert result.exit_code == 0, result.output
    assert graces == [2400]


def test_the_breaker_probe_is_bounded_by_its_own_timeout(redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 9: after a probe took the half-open slot, the next may try within
    breaker_probe_timeout, not the job's 30 minutes."""
    settings = dataclasses.replace(settings, job_timeout=1800, breaker_failures=1, breaker_cooldown=0.05,
                                   breaker_probe_timeout=5)
    breaker = CircuitBreaker(redis_client, pipeline.breaker_policy(settings))
    breaker.record_failure("src")
    time.sleep(0.1)  # the cool-down is over
    breaker.check("src")  # this caller is the probe (and its worker dies here)
    with pytest.raises(CircuitOpen) as caught:
        breaker.check("src")
    assert 0 < caught.value.retry_after <= 5


def test_job_history_keeps_each_attempts_counts_and_their_sum(pg: psycopg2.extensions.connection) -> None:
    """Issue item 10: a job that failed after loading 300 records and was retried."""
    history = JobHistory(pg)
    history.started("job-1", "run-1", "src")
    history.failed("job-1", Counts(fetched=400, rejected=10, duplicate=90, loaded=300), "TransientError: down")
    history.started("job-1", "run-1", "src")
    history.finished("job-1", Counts(fetched=1000, rejected=10, duplicate=290, loaded=700))
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, attempts, fetched, rejected, duplicate, loaded, attempt_counts FROM ingest_jobs")
        status, attempts, fetched, rejected, duplicate, loaded, per_attempt = cur.fetchone()
    assert (status, attempts) == ("finished", 2)
    assert (fetched, rejected, duplicate, loaded) == (1400, 20, 380, 1000)
    assert per_attempt == [
        {"attempt": 1, "status": "failed", "fetched": 400, "rejected": 10, "duplicate": 90, "loaded": 300,
         "updated": 0},
        {"attempt": 2, "status": "finished", "fetched": 1000, "rejected": 10, "duplicate": 290, "loaded": 700,
         "updated": 0},
    ]


def test_dedup_sets_expire_and_each_use_pushes_the_expiry_back(redis_client: redis.Redis) -> None:
    """Issue item 10: never forever; a set in use stays."""
    dedup = RedisDedup(redis_client, ttl=1000)
    pipe = redis_client.pipeline()
    dedup.mark_seen(pipe, "shop", ["a"], dedup.ttl)
    pipe.execute()
    assert 990 < redis_client.ttl(SEEN_PREFIX + "shop") <= 1000
    redis_client.expire(SEEN_PREFIX + "shop", 10)
    assert dedup.unseen("shop", ["a", "b"]) == [False, True]
    assert redis_client.ttl(SEEN_PREFIX + "shop") > 990
    assert load_settings(env={"INGEST_DEDUP_TTL": "86400"}).dedup_ttl == 86400


def test_a_dead_workers_replacement_waits_until_it_can_start() -> None:
    """Issue 17: no worker is started into a Redis that does not answer; it is started once it does."""
    from ingest_workers.runtime.workerpool import supervise

    now = [0.0]
    starts: list[float] = []

    def start() -> _Exited:
        starts.append(now[0])
        return _Exited()

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return now[0] > 30

    supervise(start, 1, wait, lambda: now[0], lambda processes: None,  # type: ignore[arg-type]
              can_start=lambda: now[0] >= 20)  # Redis answers again after 20 s
    assert starts[0] == 0.0 and starts[1] == 20.0  # the first replacement waited for it
