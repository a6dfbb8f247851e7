"""An open circuit, or a server's Retry-After longer than the HTTP back-off cap, defers its
source's job through RQ's scheduler (no sleeping worker) while other sources keep flowing;
the probe after the cool-down closes the circuit."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2.extensions
import pytest
import redis
from rq.registry import ScheduledJobRegistry

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.breaker import BreakerPolicy, CircuitBreaker
from ingest_workers.ops.metrics import CIRCUIT_STATE, JOBS_DEFERRED, METRICS_KEY, _field
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import answer, broken_products, scalar, serving, wait_until

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


class SlowDown(BaseHTTPRequestHandler):
    """Products, but the first request of each path is a 429 with ``Retry-After: 120`` (counted)."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        SlowDown.asked.append(path)
        if SlowDown.asked.count(path) == 1:
            return answer(self, 429, {"Retry-After": "120"}, b"")
        body = {"items": [{"id": f"SD{i}", "title": f"slow {i}", "price": i + 1} for i in range(RETRY_AFTER_RECORDS)]}
        answer(self, 200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


RETRY_AFTER_RECORDS = 7


def test_a_retry_after_beyond_the_back_off_cap_defers_the_job_by_that_wait(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    """``Retry-After: 120`` with a 30 s cap: one request, then the job waits in RQ's scheduled registry
    for 120 s (not slept out, not failed, its tries not burnt) while other sources flow. The test
    then moves the scheduled time to now instead of waiting: the job runs again and loads."""
    mock_server.config = MockConfig(records=300)
    SlowDown.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDown)
    slow = SourceSpec(name="shop_slow", kind="http_json", dataset="products", pagination="none",
                      url=f"http://127.0.0.1:{server.server_address[1]}/products",
                      fields={"product_id": "id", "name": "title"}, rate_limit=0)
    queue = make_queue(redis_client, settings)
    registry = ScheduledJobRegistry(queue=queue)
    with serving(server), local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        asked_at = time.time()
        enqueue_run(queue, settings, [slow, spec(mock_server, "shop_up")], "run-1")
        wait_for_jobs(queue, ["run-1-shop_up"], lambda state: None, timeout=30)
        wait_until(lambda: "run-1-shop_slow" in registry.get_job_ids(), timeout=30)
        when = registry.get_scheduled_time("run-1-shop_slow").timestamp()
        # by the server's wait, not the 30 s cap (RQ keeps the time in whole seconds)
        assert 119 <= when - asked_at < 120 + (time.time() - asked_at) + 1
        assert SlowDown.asked == ["/products"]  # asked once: the 429 was not retried too early
        job = queue.fetch_job("run-1-shop_slow")
        assert job.get_status() == "scheduled" and job.number_of_retries == 1
        assert int(redis_client.hget(METRICS_KEY, _field(JOBS_DEFERRED, ("shop_slow",)))) == 1
        with pg, pg.cursor() as cur:
            cur.execute("SELECT status, error FROM ingest_jobs WHERE job_id = 'run-1-shop_slow'")
            status, error = cur.fetchone()
        assert status == "deferred" and error.startswith("deferred: ") and "Retry-After 120s" in error

        registry.schedule(job, datetime.now(UTC))  # the 120 s are over (the worker's scheduler moves it)
        state = wait_for_jobs(queue, ["run-1-shop_slow"], lambda state: None, timeout=30)
    assert state.failed == 0
    assert SlowDown.asked == ["/products", "/products"]
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_slow'") == RETRY_AFTER_RECORDS
