"""An open circuit defers its source's job through RQ's scheduler (no sleeping worker)
while other sources keep flowing; the probe after the cool-down closes it."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.breaker import BreakerPolicy, CircuitBreaker
from ingest_workers.ops.metrics import CIRCUIT_STATE, JOBS_DEFERRED, METRICS_KEY, _field
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import broken_products, scalar

pytestmark = pytest.mark.integration


def spec(server: MockServer, name: str) -> SourceSpec:
    return SourceSpec(name=name, kind="http_json", dataset="products", url=f"{server.url}/products", page_size=100,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0)


def test_an_open_circuit_defers_the_job_and_other_sources_flow(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, breaker_failures=2, breaker_cooldown=3.0)
    mock_server.config = MockConfig(records=300)
    breaker = CircuitBreaker(redis_client, BreakerPolicy(failures=2, cooldown=3.0))
    for _ in range(2):
        breaker.record_failure("shop_down")  # as if its last two requests had failed
    opened_at = time.monotonic()

    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        enqueued = enqueue_run(queue, settings, [spec(mock_server, "shop_down"), spec(mock_server, "shop_up")],
                               "run-1")
        wait_for_jobs(queue, ["run-1-shop_up"], lambda state: None, timeout=30)
        up_done = time.monotonic() - opened_at
        state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=30)
    assert state.done == state.total and state.failed == 0

    # One worker: shop_up was done while shop_down's cool-down still ran, so nobody slept it out.
    assert up_done < 3.0
    assert queue.fetch_job("run-1-shop_down").number_of_retries >= 1  # deferred via RQ, at least once
    assert breaker.state("shop_down") == "closed"
    expected = 300 - broken_products(300)
    for source in ("shop_down", "shop_up"):
        assert scalar(pg, "SELECT count(*) FROM products WHERE source = %s", source) == expected
    assert int(redis_client.hget(METRICS_KEY, _field(JOBS_DEFERRED, ("shop_down",)))) >= 1
    assert redis_client.hget("ingest:metrics:gauges", _field(CIRCUIT_STATE, ("shop_down",))) == b"0"
