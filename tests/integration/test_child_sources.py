"""A child source run directly, with its parent record in its context, against the fixture API
over real HTTP: it fetches exactly that parent's records, and a deleted parent's 404 is skipped
and counted (issue 24, the source side; the fan-out that runs it is the runtime's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest_workers.core.models import Record, SourceSpec
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
