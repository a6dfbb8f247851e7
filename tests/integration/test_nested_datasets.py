"""Nested datasets by catalog alone: the fixture API's issues with their labels (objects) and tags
(scalars) loaded into child tables by real `rq worker` processes (`ingest run --workers 2`).
Revision 2 changes some issues' lists (a label removed, one recoloured, one added, a tag added):
the child tables follow (the removed items are gone, unchanged items keep their ``xmin``); a third,
identical run changes nothing. A label failing its check goes to ``rejected_records`` with its place,
and its issue and the other labels load. Every expected row is computed here from the fixture's
own record functions (``github.issue``, ``labels_of``, ``tags_of``).

Then the loader and the migration directly: a dataset nested in a nested dataset. Last, the shop
fixture by catalog alone: its product list, a detail request per product fanned out over real
workers, and the details' reviews in a nested table that follows revisions 2 and 3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.models import Lineage
from ingest_workers.datasets import parse_dataset, resolve_nested
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.load.migrate import migrate
from ingest_workers.load.schema import differences
from ingest_workers.ops.metrics import REQUESTS_SKIPPED, read_counters
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer, github, shop
from tests.helpers import followed, values
from tests.integration.test_fan_out import ingest as fan_out_ingest

pytestmark = pytest.mark.integration

ISSUES = 45
REFUSED_COLOUR = "ffffff"  # the "wontfix" label's: refused by the pattern below
TABLES = ("gh_issues", "gh_issue_labels", "gh_issue_tags")
CATALOG = """
[settings]
batch_size = 8                        # several batches: several transactions per job

[datasets.issues]
table = "gh_issues"
key = ["number"]
write = "merge"
[datasets.issues.columns]
number = "integer"
title = "text"
state = "text"
updated_at = "timestamp"

[datasets.issue_labels]
table = "gh_issue_labels"
nested_in = "issues"
path = "labels"
key = ["label_id"]
fields = {{ label_id = "id" }}
[datasets.issue_labels.columns]
label_id = {{ type = "integer", required = true }}
name = "text"
color = {{ type = "text", pattern = "^(?!ffffff)[0-9a-f]{{6}}$" }}

[datasets.issue_tags]
table = "gh_issue_tags"
nested_in = "issues"
path = "tags"
[datasets.issue_tags.columns]
value = "text"

[sources.widgets]
kind = "http_json"
dataset = "issues"
url = "{api}/repos/acme/widgets/issues"
records_path = ""
pagination = "link"
page_size = 10
"""


def iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


def expected(revision: int) -> dict[str, dict[tuple, tuple]]:
    """Each table's rows by key as the fixture serves ``revision``."""
    issues, labels, tags = {}, {}, {}
    for n in range(1, ISSUES + 1):
        issue = github.issue(n, revision)
        issues[(n,)] = (issue["title"], issue["state"], iso(issue["updated_at"]))
        for label in github.labels_of(n, revision):
            if label["color"] != REFUSED_COLOUR:
                labels[(n, label["id"])] = (label["name"], label["color"], label)
        for index, tag in enumerate(github.tags_of(n, revision)):
            tags[(n, index)] = (tag, tag)
    return {"gh_issues": issues, "gh_issue_labels": labels, "gh_issue_tags": tags}


def refused_labels(revision: int, numbers: Any) -> list[tuple[int, int, dict[str, Any]]]:
    """(issue, index, label) of the labels the pattern refuses among the issues ``numbers``."""
    return [(n, i, label) for n in numbers for i, label in enumerate(github.labels_of(n, revision))
            if label["color"] == REFUSED_COLOUR]


QUERIES = {
    "gh_issues": "SELECT number, title, state, updated_at, xmin::text FROM gh_issues",
    "gh_issue_labels": "SELECT number, label_id, name, color, raw, xmin::text FROM gh_issue_labels",
    "gh_issue_tags": "SELECT number, item_index, value, raw, xmin::text FROM gh_issue_tags",
}
KEY_WIDTH = {"gh_issues": 1, "gh_issue_labels": 2, "gh_issue_tags": 2}


def stored(pg: psycopg2.extensions.connection) -> dict[str, dict[tuple, tuple[tuple, str]]]:
    """Each table's rows by key: the values, and the row's xmin (new when the row is rewritten)."""
    out: dict[str, dict[tuple, tuple[tuple, str]]] = {}
    with pg, pg.cursor() as cur:
        for table, query in QUERIES.items():
            cur.execute(query + " WHERE source = 'widgets'")
            out[table] = {}
            for *values, xmin in cur.fetchall():
                key, rest = tuple(values[:KEY_WIDTH[table]]), values[KEY_WIDTH[table]:]
                if table == "gh_issues":
                    rest[-1] = iso(rest[-1])
                out[table][key] = (tuple(rest), xmin)
    return out


def ingest(services: Services, catalog: Path, tmp_path: Path, *args: str) -> Any:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING",
             "--catalog", str(catalog)]
    out = tmp_path / "summary.json"
    out.unlink(missing_ok=True)
    run = args[0] == "run"
    result = CliRunner().invoke(main, [*flags, *args, *(["--out", str(out)] if run else [])],
                                env={"INGEST_JOB_RETRIES": "0"})
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["sources"]["widgets"] if run else result


def run(services: Services, catalog: Path, tmp_path: Path) -> dict[str, Any]:
    return ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "120")


@pytest.fixture
def api() -> Iterator[FixtureApiServer]:
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES), host="127.0.0.1", port=0, revision=1).start()
    yield server
    server.stop()


@pytest.fixture
def clean(pg: psycopg2.extensions.connection) -> Iterator[None]:
    def drop() -> None:
        with pg, pg.cursor() as cur:
            for table in (*TABLES, "nest_orders", "nest_lines", "nest_line_notes", "nest_products", "nest_reviews",
                          "nest_product_list"):
                cur.execute(f"DROP TABLE IF EXISTS {table}")
    drop()
    yield
    drop()


def rejected_reasons(pg: psycopg2.extensions.connection) -> dict[tuple[int, int], str]:
    """(issue, index) -> reason of each refused label in ``rejected_records``."""
    with pg, pg.cursor() as cur:
        cur.execute("SELECT payload, reason FROM rejected_records WHERE source = 'widgets' AND stage = 'nested'")
        return {(p["parent"]["number"], p["index"]): reason for p, reason in cur.fetchall()}


def test_issue_labels_and_tags_follow_their_issues(services: Services, redis_client: redis.Redis,
                                                  pg: psycopg2.extensions.connection, api: FixtureApiServer,
                                                  clean: None, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(api=api.url))
    ingest(services, catalog, tmp_path, "db", "migrate")
    with pg, pg.cursor() as cur:  # the parent-key index, for joins
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'gh_issue_labels'")
        assert any(d.endswith("(number)") for (d,) in cur.fetchall())

    # Revision 1: everything is new; the "wontfix" labels are refused alone.
    summary = run(services, catalog, tmp_path)
    first, want = stored(pg), expected(1)
    for table in TABLES:
        assert values(first[table]) == want[table], table
    refused = refused_labels(1, range(1, ISSUES + 1))
    assert refused and len(want["gh_issue_labels"]) > len(refused)
    assert (summary["fetched"], summary["loaded"], summary["rejected"]) == (ISSUES, ISSUES, 0)  # issues only
    assert summary["nested"]["issue_labels"] == {"loaded": len(want["gh_issue_labels"]), "updated": 0,
                                                 "deleted": 0, "rejected": len(refused)}
    assert summary["nested"]["issue_tags"]["loaded"] == len(want["gh_issue_tags"])
    reasons = rejected_reasons(pg)
    assert set(reasons) == {(n, i) for n, i, _ in refused}
    n, i, _ = refused[0]
    assert reasons[(n, i)] == (f"labels[{i}].color: '{REFUSED_COLOUR}' does not match the pattern "
                               "^(?!ffffff)[0-9a-f]{6}$")

    # Revision 2: some issues' lists change; the child tables follow, row by row.
    api.revision = 2
    summary = run(services, catalog, tmp_path)
    second, want = stored(pg), expected(2)
    changed_issues = [n for n in range(1, ISSUES + 1) if github.labels_changed(n)]
    assert summary["updated"] == len(changed_issues) and summary["loaded"] == 0
    for table in TABLES:
        new, rewritten, gone = followed(first[table], second[table], want[table])
        kept = {k for k in want[table] if k not in new and k not in rewritten}
        if table == "gh_issues":
            assert {k[0] for k in rewritten} == set(changed_issues)
            continue
        assert new and kept
        nested = summary["nested"]["issue_labels" if table == "gh_issue_labels" else "issue_tags"]
        assert (nested["loaded"], nested["updated"], nested["deleted"]) == (len(new), len(rewritten), len(gone))
        # only the changed issues' items moved; an unchanged item of a changed issue kept its row version
        assert {k[0] for k in (*new, *rewritten, *gone)} <= set(changed_issues)
        assert any(k[0] in changed_issues for k in kept)
    assert [k for k in values(first["gh_issue_labels"]) if k not in want["gh_issue_labels"]]  # labels deleted
    assert summary["nested"]["issue_labels"]["rejected"] == len(refused_labels(2, changed_issues))

    # Revision 3 serves what 2 served: nothing changes, not even an xmin.
    api.revision = 3
    summary = run(services, catalog, tmp_path)
    assert stored(pg) == second
    assert (summary["loaded"], summary["updated"]) == (0, 0)
    assert all(n["loaded"] == n["updated"] == n["deleted"] == 0 for n in summary.get("nested", {}).values())

    # `ingest status` adds the three runs' item counts up, per nested dataset.
    status = json.loads(ingest(services, catalog, tmp_path, "status", "--json").output)["sources"]["widgets"]
    labels = status["nested"]["issue_labels"]
    assert labels["deleted"] == len(set(values(first["gh_issue_labels"])) - set(want["gh_issue_labels"]))
    assert labels["loaded"] == len(expected(1)["gh_issue_labels"]) + len(
        set(want["gh_issue_labels"]) - set(values(first["gh_issue_labels"])))


ORDERS = {
    "orders": {"table": "nest_orders", "key": ["order_id"], "write": "merge",
               "columns": {"order_id": "text", "customer": "text"}},
    "lines": {"table": "nest_lines", "nested_in": "orders", "path": "lines", "key": ["sku"],
              "columns": {"sku": "text", "qty": {"type": "integer", "min": 1}}},
    "line_notes": {"table": "nest_line_notes", "nested_in": "lines", "path": "notes", "columns": {"value": "text"}},
}
ORDER_RECORDS = {
    1: [{"order_id": "o1", "customer": "ann", "lines": [{"sku": "a", "qty": 1, "notes": ["x", "y"]},
                                                        {"sku": "b", "qty": 2, "notes": []}]},
        {"order_id": "o2", "customer": "bob", "lines": [{"sku": "c", "qty": 0, "notes": ["z"]},
                                                        {"sku": "d", "qty": 1}]}],
    # only o1's lists change: line a (and its notes) gone, b unchanged, e new with a note
    2: [{"order_id": "o1", "customer": "ann", "lines": [{"sku": "b", "qty": 2, "notes": []},
                                                        {"sku": "e", "qty": 5, "notes": ["w"]}]},
        {"order_id": "o2", "customer": "bob", "lines": [{"sku": "c", "qty": 0, "notes": ["z"]},
                                                        {"sku": "d", "qty": 1}]}],
}


def order_rows(dataset: Any, revision: int, run: str) -> list[dict[str, Any]]:
    rows = []
    for record in ORDER_RECORDS[revision]:
        row = dataset.check(dict(record))
        row.update(source="shop", run_id=run, job_id=run, fetched_at="2026-01-01T00:00:00+00:00", raw=record)
        rows.append(row)
    return rows


def nested_state(pg: psycopg2.extensions.connection) -> dict[str, dict[tuple, str]]:
    """Each table's keys and their rows' xmin."""
    queries = {"orders": "SELECT order_id, xmin::text FROM nest_orders",
               "lines": "SELECT order_id, sku, qty, xmin::text FROM nest_lines",
               "line_notes": "SELECT order_id, sku, item_index, value, xmin::text FROM nest_line_notes"}
    out = {}
    with pg, pg.cursor() as cur:
        for name, query in queries.items():
            cur.execute(query)
            out[name] = {tuple(key): xmin for *key, xmin in cur.fetchall()}
    return out


@pytest.mark.parametrize("write", ["merge", "append"])
def test_a_dataset_nested_in_a_nested_dataset_follows_its_parent(pg: psycopg2.extensions.connection, clean: None,
                                                               write: str) -> None:
    declared = {name: parse_dataset(name, {**entry, **({"write": write} if name == "orders" else {})})
                for name, entry in ORDERS.items()}
    datasets = resolve_nested(declared)
    migrate(pg, datasets.values())
    orders = datasets["orders"]
    loader = PostgresLoader(pg, copy_serialiser(orders))  # as a job loads: COPY text generated for the parent
    first = loader.load_batch(orders, order_rows(orders, 1, "r1"), [], Lineage("shop", "r1", "r1", "t"))
    assert first.inserted == 2
    assert first.nested == {"lines": {"loaded": 3, "updated": 0, "deleted": 0, "rejected": 1},
                            "line_notes": {"loaded": 2, "updated": 0, "deleted": 0, "rejected": 0}}
    before = nested_state(pg)
    assert set(before["lines"]) == {("o1", "a", 1), ("o1", "b", 2), ("o2", "d", 1)}
    assert set(before["line_notes"]) == {("o1", "a", 0, "x"), ("o1", "a", 1, "y")}  # c's note: c was refused
    with pg, pg.cursor() as cur:
        cur.execute("SELECT reason FROM rejected_records WHERE source = 'shop' AND stage = 'nested'")
        assert cur.fetchall() == [("lines[0].qty: 0 is below the minimum 1",)]

    second = loader.load_batch(orders, order_rows(orders, 2, "r2"), [], Lineage("shop", "r2", "r2", "t"))
    after = nested_state(pg)
    if write == "append":  # the first version stays, and its items with it
        assert (second.inserted, second.nested) == (0, {}) and after == before
        return
    assert (second.inserted, second.updated) == (0, 1)  # o1: only its lists changed
    assert after["orders"][("o2",)] == before["orders"][("o2",)]
    assert set(after["lines"]) == {("o1", "b", 2), ("o1", "e", 5), ("o2", "d", 1)}
    assert after["lines"][("o1", "b", 2)] == before["lines"][("o1", "b", 2)]  # unchanged: not rewritten
    assert set(after["line_notes"]) == {("o1", "e", 0, "w")}  # a's notes went with it
    assert second.nested["lines"] == {"loaded": 1, "updated": 0, "deleted": 1, "rejected": 0}
    assert second.nested["line_notes"] == {"loaded": 1, "updated": 0, "deleted": 2, "rejected": 0}


def test_migrate_creates_and_evolves_nested_tables(pg: psycopg2.extensions.connection, clean: None) -> None:
    def declared(**extra_columns: Any) -> dict[str, Any]:
        entries = {**ORDERS, "lines": {**ORDERS["lines"], "columns": {**ORDERS["lines"]["columns"], **extra_columns}}}
        return resolve_nested({name: parse_dataset(name, entry) for name, entry in entries.items()})

    done = migrate(pg, declared().values())
    assert {"created table nest_lines (dataset lines)",
            "created table nest_line_notes (dataset line_notes)"} <= set(done)
    with pg, pg.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'nest_line_notes'")
        indexes = [d for (d,) in cur.fetchall()]
    assert any(d.endswith("(source, order_id, sku, item_index)") for d in indexes)  # the unique key
    assert any(d.endswith("(order_id, sku)") for d in indexes)  # the parent's key, for joins
    assert differences(pg, declared(note="text")["orders"].family) == [
        "dataset lines: table nest_lines has no column 'note'"]
    assert "added column nest_lines.note (dataset lines)" in migrate(pg, declared(note="text").values())
    assert differences(pg, declared(note="text")["orders"].family) == []


PRODUCTS = 40
SHOP = """
[datasets.shop_products]
table = "nest_product_list"
key = ["product_id"]
[datasets.shop_products.columns]
product_id = "integer"
name = "text"

[datasets.product_details]
table = "nest_products"
key = ["product_id"]
write = "merge"
[datasets.product_details.columns]
product_id = "integer"
name = "text"
price = "numeric"

[datasets.product_reviews]
table = "nest_reviews"
nested_in = "product_details"
path = "reviews"
key = ["review_id"]
fields = {{ review_id = "id" }}
[datasets.product_reviews.columns]
review_id = {{ type = "integer", required = true }}
rating = {{ type = "integer", min = 1, max = 5 }}
comment = "text"

[sources.shop_list]
kind = "http_json"
dataset = "shop_products"
url = "{api}/products"
records_path = "products"
pagination = "page"
page_size_param = "limit"
page_size = 15
rate_limit = 0
fields = {{ product_id = "id" }}

[sources.shop_detail]
kind = "http_json"
dataset = "product_details"
parent = "shop_list"
url = "{api}/products/{{parent.id}}"
records_path = ""                     # one object: the product's detail is one record
pagination = "none"
rate_limit = 0
parents_per_job = 9
fields = {{ product_id = "id" }}
on_status = {{ 404 = "skip" }}        # a listed product whose detail is gone
"""
SHOP_QUERIES = {"nest_products": "SELECT product_id, name, price::float8, xmin::text FROM nest_products",
                "nest_reviews": "SELECT product_id, review_id, rating, comment, xmin::text FROM nest_reviews"}


def shop_expected(revision: int) -> dict[str, dict[tuple, tuple]]:
    """The details and their reviews by key as the shop fixture serves ``revision`` (404s aside)."""
    details = {i: shop.product_detail(i, revision) for i in range(1, PRODUCTS + 1) if not shop.detail_missing(i)}
    return {"nest_products": {(i, ): (d["name"], d["price"]) for i, d in details.items() if d},
            "nest_reviews": {(i, r["id"]): (r["rating"], r["comment"]) for i in details
                             for r in shop.reviews_of(i, revision)}}


def shop_stored(pg: psycopg2.extensions.connection) -> dict[str, dict[tuple, tuple[tuple, str]]]:
    out: dict[str, dict[tuple, tuple[tuple, str]]] = {}
    with pg, pg.cursor() as cur:
        for table, query in SHOP_QUERIES.items():
            cur.execute(query)
            width = 1 if table == "nest_products" else 2
            out[table] = {tuple(row[:width]): (tuple(row[width:-1]), row[-1]) for row in cur.fetchall()}
    return out


def test_product_reviews_follow_their_product_detail_fanned_out_over_real_workers(
        services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, clean: None,
        tmp_path: Path) -> None:
    """The shop fixture by catalog alone: the product list, a detail request per listed product (one
    object each; a gone one's 404 skipped) fanned out over two `rq worker` processes, its reviews a
    nested dataset; a share of paths answers 500 or 429 once. Revision 2 removes a product's first
    review, changes its last and adds one: the review table follows, the reviews left alone keep their
    ``xmin``; revision 3 serves the same again and changes nothing."""
    server = FixtureApiServer(FixtureApiConfig(products=PRODUCTS, faults=FaultShares(error=0.1, throttle=0.1,
                                                                                     seed=5))).start()
    summaries, states = [], []
    try:
        catalog = tmp_path / "shop.toml"
        catalog.write_text(SHOP.format(api=server.url), encoding="utf-8")
        assert fan_out_ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        for revision in (1, 2, 3):
            server.revision = revision
            status, output, summary = fan_out_ingest(services, catalog, tmp_path, "run", "--workers", "2",
                                                     "--timeout", "240")
            assert status == 0, output
            summaries.append(summary["sources"]["shop_detail"])
            states.append(shop_stored(pg))
    finally:
        server.stop()
    missing = [i for i in range(1, PRODUCTS + 1) if shop.detail_missing(i)]
    first, want = states[0], shop_expected(1)
    assert all(values(first[table]) == want[table] for table in SHOP_QUERIES)
    detail = summaries[0]
    assert (detail["parents"], detail["skipped"], detail["loaded"]) == (PRODUCTS, len(missing), PRODUCTS - len(missing))
    assert detail["nested"]["product_reviews"]["loaded"] == len(want["nest_reviews"])
    assert read_counters(redis_client, REQUESTS_SKIPPED, [("shop_detail",)]) == [3 * len(missing)]  # three runs

    changed = [i for i in range(1, PRODUCTS + 1) if shop.reviews_changed(i)]
    new, rewritten, gone = followed(first["nest_reviews"], states[1]["nest_reviews"], shop_expected(2)["nest_reviews"])
    assert changed and {key[0] for key in (*new, *rewritten, *gone)} == set(changed)
    assert summaries[1]["updated"] == len(changed) and summaries[1]["loaded"] == 0
    assert summaries[1]["nested"]["product_reviews"] == {"loaded": len(new), "updated": len(rewritten),
                                                         "deleted": len(gone), "rejected": 0}
    products = states[1]["nest_products"]  # a product whose reviews changed is rewritten; the others are not
    assert values(products) == shop_expected(2)["nest_products"]
    assert {key[0] for key, (_, xmin) in products.items() if xmin != first["nest_products"][key][1]} == set(changed)

    assert states[2] == states[1]  # revision 3 serves revision 2: not even an xmin moves
    assert (summaries[2]["loaded"], summaries[2]["updated"]) == (0, 0)
    assert all(n["loaded"] == n["updated"] == n["deleted"] == 0 for n in summaries[2].get("nested", {}).values())
