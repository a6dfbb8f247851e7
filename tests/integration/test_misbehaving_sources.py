"""Sources that misbehave, through the real pipeline (real Redis and PostgreSQL): a page that
stays unreadable under a cursor, a paginator that never ends, a record nested thousands of
levels deep, and sinks that must see exactly the rows PostgreSQL inserted.

Every expected outcome comes from this file's own fixture data (:func:`product` and the
pages the server is told to break), never from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2.extensions
import pytest
import redis

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import PermanentError
from ingest_workers.core.models import Lineage, Record, SourceSpec
from ingest_workers.datasets import PRODUCTS
from ingest_workers.load.cursors import CursorStore
from ingest_workers.ops.metrics import MetricsRecorder
from ingest_workers.ops.status import source_status
from ingest_workers.runtime.resources import Resources
from tests.helpers import answer, scalar, serving

pytestmark = pytest.mark.integration
PAGE_SIZE = 10
RECORDS = 50
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def product(i: int) -> dict[str, Any]:
    """Record ``i`` of this file's feed: valid, one second after the one before."""
    return {"id": f"P{i:03d}", "title": f"Product {i}", "price": 10 + i,
            "updated_at": (EPOCH + timedelta(seconds=i)).isoformat()}


class Feed(ThreadingHTTPServer):
    """Products by page number (``page``/``per_page``), at or after ``updated_since``.

    ``broken``: page numbers answered with a body cut in half; ``bodies``: page number ->
    a body served as is; ``ignore_page``: serve page 1 whatever is asked (for ``repeats``
    requests, then an empty page, so that a client that never notices still ends).
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FeedHandler)
        self.records = [product(i) for i in range(RECORDS)]
        self.broken: set[int] = set()
        self.bodies: dict[int, bytes] = {}
        self.ignore_page = False
        self.repeats = 40
        self.pages_asked: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/products"


class _FeedHandler(BaseHTTPRequestHandler):
    server: Feed

    def do_GET(self) -> None:  # noqa: N802
        query = parse_qs(urlsplit(self.path).query)
        page, size = int(query.get("page", ["1"])[0]), int(query.get("per_page", [str(PAGE_SIZE)])[0])
        self.server.pages_asked.append(page)
        since = query.get("updated_since", [None])[0]
        records = [r for r in self.server.records
                   if since is None or datetime.fromisoformat(r["updated_at"]) >= datetime.fromisoformat(since)]
        if self.server.ignore_page:
            page = 1 if len(self.server.pages_asked) <= self.server.repeats else 10_000
        body = self.server.bodies.get(page) or json.dumps({"items": records[(page - 1) * size:page * size]}).encode()
        if page in self.server.broken:
            body = body[: len(body) // 2]
        answer(self, 200, {"Content-Type": "application/json"}, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def feed() -> Iterator[Feed]:
    server = Feed()
    with serving(server):
        yield server


def spec_for(feed: Feed, **changes: Any) -> SourceSpec:
    values: dict[str, Any] = {"cursor_field": "updated_at", "since_param": "updated_since", **changes}
    return SourceSpec(name="cursor_shop", kind="http_json", dataset="products", url=feed.url, page_size=PAGE_SIZE,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0, **values)


def run_job(spec: SourceSpec, settings: Settings, run_id: str) -> None:
    res = Resources(dataclasses.replace(settings, http_max_attempts=2), {})
    try:
        pipeline.run_fetch_job(spec, run_id, f"{run_id}-{spec.name}", "inline", res)
    finally:
        res.close()


def loaded_ids(pg: psycopg2.extensions.connection) -> set[str]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT product_id FROM products")
        return {pid for (pid,) in cur.fetchall()}


def job_row(pg: psycopg2.extensions.connection, job_id: str) -> tuple[str, str | None]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, error FROM ingest_jobs WHERE job_id = %s", (job_id,))
        return cur.fetchone()


def test_a_lost_page_keeps_the_cursor_before_it_and_the_next_run_loads_it(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 1: page 2 stays unreadable in the first run."""
    spec = spec_for(feed)
    served = {r["id"] for r in feed.records}
    lost = {product(i)["id"] for i in range(PAGE_SIZE, 2 * PAGE_SIZE)}  # page 2
    feed.broken = {2}
    run_job(spec, settings, "run-1")

    assert loaded_ids(pg) == served - lost
    status, error = job_row(pg, "run-1-cursor_shop")
    assert status == "partial"
    assert "page 2" in error and "not JSON" in error
    assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE reason LIKE 'page 2:%%'") == 1
    mark = CursorStore(pg).position("cursor_shop")
    assert mark is None or datetime.fromisoformat(mark) < datetime.fromisoformat(product(PAGE_SIZE)["updated_at"])
    health = source_status(pg, ["cursor_shop"])["cursor_shop"]
    assert (health["success_rate"], health["health"]) == (0.0, "unhealthy")
    assert "page 2" in health["recent_failures"][0]["error"]

    feed.broken = set()
    run_job(spec, settings, "run-2")
    assert loaded_ids(pg) == served  # per record: every record served is loaded
    assert job_row(pg, "run-2-cursor_shop") == ("finished", None)
    assert CursorStore(pg).position("cursor_shop") == product(RECORDS - 1)["updated_at"]


def test_a_200_with_an_error_body_is_retried_then_its_page_is_lost_and_the_cursor_keeps_before_it(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    message = "Daily quota exceeded for this API key; try again tomorrow. " + "More detail. " * 30
    feed.bodies[3] = json.dumps({"items": [], "error": {"code": 429001, "message": message}}).encode()
    spec = spec_for(feed, error_path="error", concurrency=1)
    run_job(spec, settings, "run-1")

    lost = {product(i)["id"] for i in range(2 * PAGE_SIZE, 3 * PAGE_SIZE)}  # page 3
    assert loaded_ids(pg) == {r["id"] for r in feed.records} - lost
    assert feed.pages_asked.count(3) == 2  # retried (http_max_attempts = 2 here), then lost
    status, error = job_row(pg, "run-1-cursor_shop")
    assert status == "partial"
    assert f"page 3: the API answered 200 with an error at 'error': {message[:200]}..." in error
    mark = CursorStore(pg).position("cursor_shop")
    assert mark is None or datetime.fromisoformat(mark) < datetime.fromisoformat(product(2 * PAGE_SIZE)["updated_at"])

    feed.bodies.clear()
    run_job(spec, settings, "run-2")
    assert loaded_ids(pg) == {r["id"] for r in feed.records}
    assert job_row(pg, "run-2-cursor_shop") == ("finished", None)


def test_a_paginator_that_repeats_its_page_is_stopped(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 3: the server ignores ``page`` and serves the same full page again."""
    feed.ignore_page = True
    with pytest.raises(PermanentError, match="repeats the page before it"):
        # One request at a time: paging got to page 2; page 3 may have been read ahead (the one page
        # fetched while page 2 was checked), and was dropped.
        run_job(spec_for(feed, cursor_field=None, since_param=None, concurrency=1),
                dataclasses.replace(settings, batch_size=PAGE_SIZE), "run-1")
    assert feed.pages_asked[:2] == [1, 2] and len(feed.pages_asked) <= 3
    assert loaded_ids(pg) == {product(i)["id"] for i in range(PAGE_SIZE)}
    assert job_row(pg, "run-1-cursor_shop")[0] == "failed"


def test_paging_stops_after_max_pages(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    assert 0 < SourceSpec(name="x", kind="http_json", dataset="products").max_pages <= 100_000
    with pytest.raises(PermanentError, match="max_pages"):
        run_job(spec_for(feed, max_pages=3, concurrency=1), dataclasses.replace(settings, batch_size=PAGE_SIZE),
                "run-1")
    assert feed.pages_asked == [1, 2, 3]
    assert len(loaded_ids(pg)) == 3 * PAGE_SIZE  # what was read before the stop is kept


def test_max_pages_counts_every_page_once_when_pages_are_fetched_at_once(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    feed.records = [product(i) for i in range(60 * PAGE_SIZE)]  # 60 pages: more than max_pages
    with pytest.raises(PermanentError, match="max_pages"):
        run_job(spec_for(feed, max_pages=40, concurrency=8), dataclasses.replace(settings, batch_size=PAGE_SIZE),
                "run-1")
    assert len(feed.pages_asked) == 40  # eight threads counted them: none twice, none missed


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_record_nested_too_deep_is_rejected_alone_and_its_page_loads(
        feed: Feed, pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 4: one record 5,000 levels deep (past the decoder's limit) on page 1, one
    900 levels deep (under it: decodable, too deep to serialise safely) on page 2, with read-ahead on."""
    def page(first: int, deep_levels: int) -> bytes:
        good = [json.dumps(product(i)) for i in range(first, first + PAGE_SIZE - 1)]
        bad = f'{{"id": "DEEP{deep_levels}", "title": "deep", "price": 1, "extra": {deep(deep_levels)}}}'
        return ('{"items": [' + ", ".join([*good[:4], bad, *good[4:]]) + "]}").encode()

    feed.bodies = {1: page(0, 5000), 2: page(100, 900)}
    feed.records = feed.records[:2 * PAGE_SIZE]  # page 3 is empty: the end
    run_job(spec_for(feed, cursor_field=None, since_param=None), dataclasses.replace(settings, prefetch_pages=2),
            "run-1")

    expected = {product(i)["id"] for i in [*range(PAGE_SIZE - 1), *range(100, 100 + PAGE_SIZE - 1)]}
    assert loaded_ids(pg) == expected
    with pg, pg.cursor() as cur:
        cur.execute("SELECT payload->>'id', reason FROM rejected_records ORDER BY 1")
        rejected = cur.fetchall()
    assert [pid for pid, _ in rejected] == ["DEEP5000", "DEEP900"]
    assert all("nested deeper than" in reason for _, reason in rejected)
    assert job_row(pg, "run-1-cursor_shop") == ("finished", None)


class RecordingSink:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def consume(self, rows: Any) -> None:
        self.rows.extend(row["product_id"] for row in rows)


class TransactionalRecordingSink(RecordingSink):
    in_transaction = True


def test_sinks_receive_exactly_the_rows_postgres_inserted(
        pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    """Issue item 6: P1 is in the table already (Redis does not know it), P2's price
    overflows numeric(12,2) so PostgreSQL refuses it; only P0 and P3 are new."""
    lineage = Lineage("sinky", "run-1", "job-1", EPOCH.isoformat())

    def row(pid: str, price: Decimal = Decimal("1.00")) -> dict[str, Any]:
        return {"product_id": pid, "name": pid, "price": price, "currency": "USD", "category": None,
                "in_stock": None, "updated_at": None, "source": "sinky", "run_id": "run-1", "job_id": "job-1",
                "fetched_at": EPOCH.isoformat(), "raw": {"id": pid}}

    with pg, pg.cursor() as cur:
        cur.execute("INSERT INTO products (product_id, name, price, currency, source, run_id, job_id, fetched_at, raw)"
                    " VALUES ('P1', 'P1', 1, 'USD', 'sinky', 'run-0', 'job-0', now(), '{}')")
    after, inside = RecordingSink(), TransactionalRecordingSink()
    res = Resources(settings, {})
    try:
        loader = pipeline.BatchLoader(PRODUCTS, lineage, res, MetricsRecorder(), pipeline.postgres_retry(res),
                                      sinks=[after, inside])
        counts = loader.load([Record({"id": "P0"}, row("P0")), Record({"id": "P1"}, row("P1")),
                              Record({"id": "P2"}, row("P2", Decimal("123456789012.00"))),
                              Record({"id": "P3"}, row("P3"))])
    finally:
        res.close()
    assert (counts.loaded, counts.duplicate, counts.rejected) == (2, 1, 1)
    assert sorted(after.rows) == ["P0", "P3"]
    assert sorted(inside.rows) == ["P0", "P3"]
