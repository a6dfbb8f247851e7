"""A child source run directly, with its parent record in its context, against the fixture API
over real HTTP: it fetches exactly that parent's records, and a deleted parent's 404 is skipped
and counted (issue 24, the source side; the fan-out that runs it is the runtime's)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2.extensions
import pytest
import redis

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.models import Record, SourceSpec
from ingest_workers.runtime.resources import Resources
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.stages.base import map_fields
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github, shop

pytestmark = pytest.mark.integration

ISSUES, PRODUCTS = 40, 30
MANY_COMMENTS = 13  # n % 10 == 3: 58 comments, several pages
DELETED = 22  # n % 11 == 0: its comments answer 404


@pytest.fixture
def server() -> Iterator[FixtureApiServer]:
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES, products=PRODUCTS)).start()
    yield server
    server.stop()


def comments_spec(server: FixtureApiServer) -> SourceSpec:
    return SourceSpec(name="gh_issue_comments", kind="http_json", dataset="issue_comments", parent="gh_issues",
                      url=server.url + "/repos/acme/widgets/issues/{parent.number}/comments", records_path="",
                      pagination="link", page_size=20, fields={"comment_id": "id", "issue_number": "parent.number"},
                      on_status={"404": "skip"})


def context(spec: SourceSpec, **scope: object) -> SourceContext:
    client = HttpClient(make_session(), (5, 5), RetryPolicy(max_attempts=2, initial_backoff=0.01),
                        on_status={int(status): action for status, action in spec.on_status.items()})
    return SourceContext(client, **scope)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", [1, 5, MANY_COMMENTS])
def test_a_child_source_fetches_exactly_its_parents_comments(server: FixtureApiServer, number: int) -> None:
    spec = comments_spec(server)
    parent = github.issue(number)  # the parent record as its source serves it
    source = make_source(spec, context(spec, parent=parent))
    records = list(source.stream())
    assert records == github.comments_of(number)
    assert source.skipped == 0  # type: ignore[attr-defined]
    comment_pages = [path for path in server.requests() if "/comments" in path]
    assert comment_pages and all(f"/issues/{number}/comments" in path for path in comment_pages)
    rows = list(map_fields(spec.fields, scope={"parent": parent}).process(Record(r) for r in records))
    assert [(r.row["comment_id"], r.row["issue_number"]) for r in rows if isinstance(r, Record)] == \
        [(c["id"], number) for c in github.comments_of(number)]


def test_a_deleted_parents_404_is_skipped_and_counted(server: FixtureApiServer) -> None:
    assert github.comments_missing(DELETED)
    spec = comments_spec(server)
    source = make_source(spec, context(spec, parent=github.issue(DELETED)))
    assert list(source.stream()) == []
    assert source.skipped == 1  # type: ignore[attr-defined]
    assert [path for path in server.requests() if "/comments" in path] == \
        [f"/repos/acme/widgets/issues/{DELETED}/comments?per_page=20"]


def test_a_detail_endpoint_serves_one_record_per_parent(server: FixtureApiServer) -> None:
    spec = SourceSpec(name="shop_product_details", kind="http_json", dataset="products", parent="shop_products",
                      url=server.url + "/products/{parent.id}", records_path="", pagination="none",
                      on_status={"404": "skip"})
    missing = next(i for i in range(1, PRODUCTS + 1) if shop.detail_missing(i))
    for product in shop.products(PRODUCTS)[:missing]:
        source = make_source(spec, context(spec, parent=product))
        expected = shop.product_detail(product["id"])
        assert list(source.stream()) == ([] if expected is None else [expected])
        assert source.skipped == (1 if expected is None else 0)  # type: ignore[attr-defined]


def test_a_job_counts_its_skipped_requests_apart_from_its_records(
        server: FixtureApiServer, redis_client: redis.Redis, pg: psycopg2.extensions.connection,
        settings: Settings) -> None:
    missing = next(i for i in range(1, PRODUCTS + 1) if shop.detail_missing(i))
    counts = {}
    res = Resources(settings, {})
    try:
        for product_id in (missing, missing - 1):
            spec = SourceSpec(name=f"detail_{product_id}", kind="http_json", dataset="products", rate_limit=0,
                              url=f"{server.url}/products/{product_id}", records_path="", pagination="none",
                              fields={"product_id": "id"}, on_status={"404": "skip"})
            counts[product_id] = pipeline.run_fetch_job(spec, "run-1", f"run-1-{spec.name}", "inline", res)
    finally:
        res.close()
    assert counts[missing].to_dict() == {"fetched": 0, "rejected": 0, "duplicate": 0, "loaded": 0, "updated": 0,
                                         "deleted": 0}
    assert counts[missing].skipped == 1
    assert counts[missing - 1].to_dict() == {"fetched": 1, "rejected": 0, "duplicate": 0, "loaded": 1, "updated": 0,
                                             "deleted": 0}
    assert counts[missing - 1].skipped == 0
    with pg, pg.cursor() as cur:
        cur.execute("SELECT source, status, error FROM ingest_jobs ORDER BY source")
        assert cur.fetchall() == [(f"detail_{missing - 1}", "finished", None), (f"detail_{missing}", "finished", None)]
        cur.execute("SELECT product_id, name FROM products")
        expected = shop.product_detail(missing - 1)
        assert expected is not None and cur.fetchall() == [(str(expected["id"]), expected["name"])]
