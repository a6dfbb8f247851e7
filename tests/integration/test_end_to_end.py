"""Mock HTTP source -> real `rq worker` processes -> Redis dedup -> PostgreSQL, and the
Prometheus counters scraped from a real `ingest metrics-server` agree with the tables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq import Callback

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import broken_products, metrics_server, scalar

pytestmark = pytest.mark.integration

RECORDS = 2_000
INVALID = broken_products(RECORDS)


def specs(server: MockServer, *names: str) -> list[SourceSpec]:
    return [SourceSpec(name=name, kind="http_json", dataset="products", url=f"{server.url}/products", page_size=300,
                       fields={"product_id": "id", "name": "title"}) for name in names]


def run(redis_client: redis.Redis, settings: Settings, sources: list[SourceSpec], run_id: str) -> None:
    queue = make_queue(redis_client, settings)
    enqueued = enqueue_run(queue, settings, sources, run_id)
    state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=120)
    assert state.done == state.total, "jobs did not finish in time"


@pytest.mark.parametrize(("worker_class", "record_path"), [(None, "compiled"), ("rq.worker.SimpleWorker", "compiled"),
                                                           (None, "reference")],
                         ids=["forking", "simple", "reference-record-path"])
def test_every_record_lands_once_across_runs(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path, worker_class: str | None, record_path: str,
) -> None:
    settings = dataclasses.replace(settings, record_path=record_path)  # the workers get it as INGEST_RECORD_PATH
    mock_server.config = MockConfig(records=RECORDS)
    sources = specs(mock_server, "shop_a", "shop_b")
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log", worker_class):
        run(redis_client, settings, sources, "run-1")
        run(redis_client, settings, sources, "run-2")

    for source in ("shop_a", "shop_b"):
        assert scalar(pg, "SELECT count(*) FROM products WHERE source = %s", source) == RECORDS - INVALID
        assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = %s", source) == INVALID
        assert scalar(pg, "SELECT count(*) FROM products WHERE source = %s AND run_id = 'run-1'", source) \
            == RECORDS - INVALID
    first, second = JobHistory(pg).summarise("run-1"), JobHistory(pg).summarise("run-2")
    for summary in first:
        assert (summary.counts.fetched, summary.counts.rejected, summary.counts.duplicate, summary.counts.loaded) \
            == (RECORDS, INVALID, 0, RECORDS - INVALID)
        assert summary.failed == 0
    for summary in second:
        assert (summary.counts.loaded, summary.counts.duplicate) == (0, RECORDS - INVALID)


def test_a_failing_source_fails_its_job_alone_and_at_once(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    settings = Settings(**{**settings.__dict__, "job_retries": 2})
    mock_server.config = MockConfig(records=500)
    good = specs(mock_server, "shop_good")[0]
    broken = SourceSpec(name="shop_broken", kind="http_json", dataset="products", url=f"{mock_server.url}/missing")
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        run(redis_client, settings, [broken, good], "run-1")
    job = make_queue(redis_client, settings).fetch_job("run-1-shop_broken")
    assert job.get_status() == "failed"
    assert job.retries_left == 0  # a 404 is permanent: not retried
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, attempts, error FROM ingest_jobs WHERE source = 'shop_broken'")
        status, attempts, error = cur.fetchone()
    assert (status, attempts) == ("failed", 1)
    assert "PermanentError" in error and "HTTP 404" in error
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_good'") == 500 - broken_products(500)


@pytest.fixture
def metrics_url(settings: Settings) -> Iterator[str]:
    with metrics_server(settings) as url:
        yield url


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_scraped_counters_equal_the_rows_in_postgres(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path, metrics_url: str,
) -> None:
    mock_server.config = MockConfig(records=RECORDS)
    sources = specs(mock_server, "shop_a", "shop_b")
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):  # the default, forking worker
        run(redis_client, settings, sources, "run-1")
        run(redis_client, settings, sources, "run-2")
        health = requests.get(f"{metrics_url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["workers"] == 2
        samples = scrape(metrics_url)
    loaded = sum(v for (name, labels), v in samples.items()
                 if name == "ingest_records_total" and ("outcome", "loaded") in labels)
    rejected = sum(v for (name, labels), v in samples.items()
                   if name == "ingest_records_total" and ("outcome", "rejected") in labels)
    fetched = sum(v for (name, labels), v in samples.items()
                  if name == "ingest_records_total" and ("outcome", "fetched") in labels)
    assert loaded == scalar(pg, "SELECT count(*) FROM products") == 2 * (RECORDS - INVALID)
    assert rejected == 2 * 2 * INVALID  # rejected again on the second run, recorded once
    assert fetched == 2 * 2 * RECORDS
    assert samples[("ingest_jobs_total", frozenset({("source", "shop_a"), ("outcome", "success")}))] == 2
    assert samples[("ingest_job_duration_seconds_count",
                    frozenset({("queue", settings.queue), ("outcome", "success")}))] == 4
    assert samples[("ingest_queue_jobs", frozenset({("queue", settings.queue), ("state", "finished")}))] == 4
    assert samples[("ingest_fetch_requests_total", frozenset({("source", "shop_a"), ("status_class", "2xx")}))] \
        == 2 * (RECORDS // 300 + 1)


def test_jobs_queued_under_the_old_module_paths_still_run(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    """Jobs in Redis from before the layout name ``ingest_workers.jobs.fetch_source`` and its failure
    callback; a hand-written command line names ``ingest_workers.worker.IngestWorker``."""
    mock_server.config = MockConfig(records=RECORDS)
    [spec] = specs(mock_server, "shop_old")
    queue = make_queue(redis_client, settings)
    job = queue.enqueue_call("ingest_workers.jobs.fetch_source", args=(spec.to_dict(), "run-old"),
                             job_id="run-old-shop_old", on_failure=Callback("ingest_workers.jobs.on_failure"))
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log", "ingest_workers.worker.IngestWorker"):
        state = wait_for_jobs(queue, [job.id], lambda state: None, timeout=120)
    assert (state.done, state.failed) == (1, 0), (tmp_path / "workers.log").read_text()
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_old'") == RECORDS - INVALID
