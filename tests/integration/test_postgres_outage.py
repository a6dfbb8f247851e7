"""PostgreSQL unreachable mid-run (cut at the network by a proxy, the shared server keeps
running): the job backs off and resumes, no batch is dropped, and nothing is marked seen
in Redis before PostgreSQL committed it."""

from __future__ import annotations

import dataclasses
import threading

import psycopg2.extensions
import pytest
import redis

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.models import Counts, SourceSpec
from ingest_workers.load.dedup import SEEN_PREFIX
from ingest_workers.runtime.resources import Resources
from ingest_workers.testing.chaos import dsn_through, postgres_address
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from ingest_workers.testing.tcpproxy import CuttableProxy
from tests.helpers import broken_products, scalar, wait_until

pytestmark = pytest.mark.integration
RECORDS = 2000


def test_a_job_waits_out_a_postgres_outage_and_loads_everything_once(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer) -> None:
    mock_server.config = MockConfig(records=RECORDS, latency=0.05)
    proxy = CuttableProxy(postgres_address(settings.database_url)).start()
    settings = dataclasses.replace(settings, database_url=dsn_through(settings.database_url, proxy.address),
                                   pg_retry_seconds=30)
    spec = SourceSpec(name="shop", kind="http_json", dataset="products", url=f"{mock_server.url}/products",
                      page_size=100, fields={"product_id": "id", "name": "title"}, rate_limit=0)
    res = Resources(settings, {})
    outcome: list[Counts | BaseException] = []

    def job() -> None:
        try:
            outcome.append(pipeline.run_fetch_job(spec, "run-1", "run-1-shop", "inline", res))
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread to assert on)
            outcome.append(exc)

    worker = threading.Thread(target=job)
    try:
        worker.start()
        wait_until(lambda: scalar(pg, "SELECT count(*) FROM products") > 0, timeout=20, poll=0.05)  # a batch in
        proxy.cut()
        wait_until(lambda: proxy.refused >= 1, timeout=20)  # the job lost its batch and tries to reconnect
        loaded_at_cut = scalar(pg, "SELECT count(*) FROM products")
        seen_at_cut = redis_client.scard(SEEN_PREFIX + "shop")
        wait_until(lambda: proxy.refused >= 4, timeout=30)  # down: the job keeps trying
        assert worker.is_alive()
        assert scalar(pg, "SELECT count(*) FROM products") == loaded_at_cut
        assert redis_client.scard(SEEN_PREFIX + "shop") == seen_at_cut <= loaded_at_cut  # nothing uncommitted
        proxy.restore()
        worker.join(timeout=60)
    finally:
        proxy.close()
        res.close()
    [counts] = outcome
    assert isinstance(counts, Counts), counts
    valid = RECORDS - broken_products(RECORDS)
    assert scalar(pg, "SELECT count(*) FROM products") == valid == counts.loaded
    assert scalar(pg, "SELECT count(*) FROM rejected_records") == RECORDS - valid
    assert redis_client.scard(SEEN_PREFIX + "shop") == valid
