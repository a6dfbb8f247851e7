"""Concurrent page fetch under real ``rq worker`` processes, real Redis and PostgreSQL: a
worker SIGKILLed mid-job leaves a committed prefix of the records and an exact resume page, the
job's next run starts at that page and loads the rest once; and the source's cluster-wide rate
limit holds while pages are fetched concurrently."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2.extensions
import pytest
import redis

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.progress import PROGRESS_PREFIX
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.fleet import WorkerFleet
from ingest_workers.testing.mock_faults import FaultInjector
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
PAGE = 100


class RequestLog(FaultInjector):
    """No faults; notes the page number and the arrival time of every page request."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> bool:
        page = int(parse_qs(urlsplit(handler.path).query).get("page", ["1"])[0])
        with self._lock:
            self.requests.append((time.monotonic(), page))
        return super().respond(handler, body)

    def pages_since(self, moment: float) -> list[int]:
        with self._lock:
            return [page for at, page in self.requests if at >= moment]


def products_spec(server: MockServer, **changes: object) -> SourceSpec:
    spec = SourceSpec(name="shop", kind="http_json", dataset="products", url=f"{server.url}/products",
                      page_size=PAGE, fields={"product_id": "id", "name": "title"}, rate_limit=0)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerFleet, Settings]]:
    fast = dataclasses.replace(settings, job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17)
    fleet = WorkerFleet(lambda name: worker_command(fast, name), worker_env(fast, os.environ),
                        tmp_path / "workers.log")
    yield fleet, fast
    fleet.close()


def committed_ids(pg: psycopg2.extensions.connection) -> list[int]:
    """The record ids PostgreSQL holds, loaded or rejected, in order."""
    with pg, pg.cursor() as cur:
        cur.execute(r"SELECT substring(raw->>'id' FROM '\d+$')::int FROM products UNION ALL "
                    r"SELECT substring(payload->>'id' FROM '\d+$')::int FROM rejected_records ORDER BY 1")
        return [row[0] for row in cur.fetchall()]


def test_a_worker_killed_mid_job_leaves_a_committed_prefix_and_the_next_run_starts_at_the_resume_page(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
        fleet: tuple[WorkerFleet, Settings]) -> None:
    workers, settings = fleet
    records = 10_000  # 100 pages at 300 ms each, 4 in flight: about 8 s
    log = RequestLog()
    mock_server.faults = log
    mock_server.config = MockConfig(records=records, latency=0.3)
    queue = make_queue(redis_client, settings)
    workers.start(1)
    enqueue_run(queue, settings, [products_spec(mock_server, concurrency=4)], "run-1")
    job_id, progress_key = "run-1-shop", PROGRESS_PREFIX + "run-1-shop"
    wait_until(lambda: int(redis_client.get(progress_key) or 0) >= 10, timeout=60)
    workers.kill_worker(workers.workers[0])  # SIGKILL: the worker and its work horse
    killed_at = time.monotonic()
    resume_page = int(redis_client.get(progress_key))
    assert resume_page < 100

    ids = committed_ids(pg)
    assert ids == list(range(len(ids)))  # committed in page order: a prefix, no hole, no repeat
    assert len(ids) >= (resume_page - 1) * PAGE  # every page before the resume page is committed
    # Pages past it were asked for (their answers are noted once the mock's latency has passed).
    wait_until(lambda: max(page for _, page in log.requests) > resume_page, timeout=5)

    workers.start(1)  # takes the dead worker's job over
    state = wait_for_jobs(queue, [job_id], lambda s: None, timeout=90)
    assert (state.done, state.failed) == (1, 0)
    again = log.pages_since(killed_at + 1.0)  # answers the dead worker had asked for are noted until then
    assert again[0] == resume_page and min(again) == resume_page  # the next run starts at the resume page
    assert committed_ids(pg) == list(range(records))  # the rest loaded, nothing twice
    assert JobHistory(pg).attempts([job_id]) == {job_id: 2}


def test_the_rate_limit_holds_while_pages_are_fetched_concurrently(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
        fleet: tuple[WorkerFleet, Settings]) -> None:
    workers, settings = fleet
    rate, pages = 10.0, 30
    log = RequestLog()
    mock_server.faults = log
    mock_server.config = MockConfig(records=pages * PAGE - 1, latency=0.05)
    queue = make_queue(redis_client, settings)
    workers.start(2)
    # Two runs of the source on two workers, 16 requests in flight each: one limit for all of them.
    spec = products_spec(mock_server, concurrency=16, rate_limit=rate)
    enqueue_run(queue, settings, [spec], "run-1")
    enqueue_run(queue, settings, [spec], "run-2")
    state = wait_for_jobs(queue, ["run-1-shop", "run-2-shop"], lambda s: None, timeout=120)
    assert (state.done, state.failed) == (2, 0)
    times = sorted(at for at, _ in log.requests)
    assert len(times) >= 2 * pages
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert measured <= rate * 1.02, f"{measured:.2f} requests/s for a limit of {rate}/s"
