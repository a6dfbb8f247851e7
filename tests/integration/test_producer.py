"""Enqueueing against the real Redis: deterministic, idempotent, JSON only."""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import replace
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job

from ingest_workers.core.config import Settings
from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.producer import enqueue_run, make_queue, new_run_id, queues_of

pytestmark = pytest.mark.integration

SPECS = [SourceSpec(name=n, kind="http_json", dataset="products", url=f"http://127.0.0.1:1/{n}") for n in ("a", "b")]


def test_one_job_per_source_with_deterministic_ids(redis_client: redis.Redis, settings: Settings) -> None:
    queue = make_queue(redis_client, settings)
    enqueued = enqueue_run(queue, settings, SPECS, "run-1")
    assert [(e.source, e.job_id, e.created) for e in enqueued] == [("a", "run-1-a", True), ("b", "run-1-b", True)]
    assert queue.job_ids == ["run-1-a", "run-1-b"]
    job = queue.fetch_job("run-1-a")
    assert job.timeout == settings.job_timeout and job.result_ttl == settings.result_ttl
    assert job.args == [SPECS[0].to_dict(), "run-1"]
    assert job.description == "fetch a (run run-1)"


def test_enqueueing_the_same_run_twice_creates_no_second_job(redis_client: redis.Redis, settings: Settings) -> None:
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, SPECS, "run-1")
    again = enqueue_run(queue, settings, SPECS, "run-1")
    assert [e.created for e in again] == [False, False]
    assert queue.count == 2


def test_jobs_are_stored_as_json_never_pickle(redis_client: redis.Redis, settings: Settings) -> None:
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, SPECS[:1], "run-1")
    stored = zlib.decompress(redis_client.hget(Job.key_for("run-1-a"), "data"))  # RQ compresses job data
    assert json.loads(stored)[0] == "ingest_workers.runtime.jobs.fetch_source"


def test_new_run_ids_are_unique_and_valid() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50


def test_retry_intervals_come_from_the_settings(redis_client: redis.Redis, settings: Settings) -> None:
    settings = dataclasses.replace(settings, job_retries=3, job_retry_intervals="1,2")
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, SPECS[:1], "run-1")
    job = queue.fetch_job("run-1-a")
    assert (job.retries_left, job.retry_intervals) == (3, [1, 2])
    with pytest.raises(ConfigError, match="job_retry_intervals: expected whole seconds"):
        enqueue_run(queue, dataclasses.replace(settings, job_retry_intervals="soon"), SPECS[1:], "run-1")
    assert enqueue_run(queue, settings, SPECS[1:], "run-1")[0].created  # nothing was claimed by the failure


def test_a_source_with_its_own_queue_is_enqueued_there(redis_client: redis.Redis, settings: Settings) -> None:
    heavy = SourceSpec(name="heavy", kind="http_json", dataset="products", url="http://127.0.0.1:1/h",
                       queue="ingest-test-heavy")
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, [SPECS[0], heavy], "run-1")
    assert queue.job_ids == ["run-1-a"]
    assert make_queue(redis_client, replace(settings, queue="ingest-test-heavy")).job_ids == ["run-1-heavy"]
    assert queues_of(settings, [SPECS[0], heavy, heavy]) == [settings.queue, "ingest-test-heavy"]


def test_a_producer_that_dies_between_claim_and_enqueue_leaves_nothing_claimed(
        redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """both or neither; enqueueing again creates the jobs."""
    queue = make_queue(redis_client, settings)
    specs = SPECS

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
