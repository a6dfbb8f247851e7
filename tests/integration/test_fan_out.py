"""Fan-out (issue 24) end to end: the GitHub-like fixture API's issues and the comments of each issue
(a child source), declared in a catalog alone and loaded by real `rq worker` processes
(`ingest run --workers 2`); some issues' comments answer 404 (skipped), some paths answer 500 or 429
once. Every expected row is computed here from the fixture's own functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.ops.metrics import REQUESTS_SKIPPED, read_counters
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github, shop
from ingest_workers.testing.fixture_apis.traffic import FaultShares

pytestmark = pytest.mark.integration

ISSUES = 60
TABLES = ("fx_issues", "fx_issue_comments")
ENV = {"INGEST_JOB_RETRIES": "2", "INGEST_JOB_RETRY_INTERVALS": "1", "INGEST_HTTP_MAX_BACKOFF": "0.2"}

CATALOG = """
[datasets.issues]
table = "fx_issues"
key = ["issue_number"]
[datasets.issues.columns]
issue_number = "integer"
title = "text"

[datasets.issue_comments]
table = "fx_issue_comments"
key = ["comment_id"]
[datasets.issue_comments.columns]
comment_id = "integer"
issue_number = "integer"
body = "text"

[sources.gh_issues]
kind = "http_json"
dataset = "issues"
url = "{url}/repos/acme/widgets/issues"
records_path = ""
pagination = "link"
page_size = 25
rate_limit = 0
fields = {{ issue_number = "number" }}

[sources.gh_issue_comments]
kind = "http_json"
dataset = "issue_comments"
parent = "gh_issues"
url = "{url}/repos/acme/widgets/issues/{{parent.number}}/comments"
records_path = ""
pagination = "link"
page_size = 20
rate_limit = 0
parents_per_job = 7
fields = {{ comment_id = "id", issue_number = "parent.number" }}
on_status = {{ 404 = "skip" }}
"""


@pytest.fixture
def api() -> Iterator[FixtureApiServer]:
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES, faults=FaultShares(error=0.05, throttle=0.05,
                                                                                  seed=7))).start()
    yield server
    server.stop()


@pytest.fixture
def catalog(api: FixtureApiServer, tmp_path: Path, pg: psycopg2.extensions.connection) -> Path:
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(url=api.url), encoding="utf-8")
    return path


def ingest(services: Services, catalog: Path, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING",
             "--catalog", str(catalog)]
    out = tmp_path / "out" / "summary.json"
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(main, [*flags, *args, *(["--out", str(out)] if args[0] == "run" else [])], env=ENV)
    document = json.loads(out.read_text()) if out.exists() else {}
    return result.exit_code, result.output, document


def expected_comments(numbers: range) -> dict[int, tuple[int, str]]:
    """comment id -> (issue number, body), from the fixture's functions: none for a deleted issue (404)."""
    return {c["id"]: (n, c["body"]) for n in numbers if not github.comments_missing(n) for c in github.comments_of(n)}


def stored_comments(pg: psycopg2.extensions.connection) -> dict[int, tuple[int, str]]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT comment_id, issue_number, body FROM fx_issue_comments")
        return {comment_id: (number, body) for comment_id, number, body in cur.fetchall()}


@pytest.mark.parametrize("workers", ["2", "0"])  # real `rq worker` processes, or inline in this process
def test_a_parent_source_fans_out_its_children_through_real_workers(
        services: Services, catalog: Path, tmp_path: Path, pg: psycopg2.extensions.connection,
        redis_client: redis.Redis, workers: str) -> None:
    assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
    status, output, summary = ingest(services, catalog, tmp_path, "run", "--workers", workers, "--timeout", "240")
    assert status == 0, output
    with pg, pg.cursor() as cur:
        cur.execute("SELECT issue_number FROM fx_issues")
        assert sorted(row[0] for row in cur.fetchall()) == list(range(1, ISSUES + 1))
    assert stored_comments(pg) == expected_comments(range(1, ISSUES + 1))
    deleted = sum(1 for n in range(1, ISSUES + 1) if github.comments_missing(n))
    comments = summary["sources"]["gh_issue_comments"]
    assert (comments["parents"], comments["parents_failed"], comments["parents_pending"]) == (ISSUES, 0, 0)
    assert comments["skipped"] == deleted
    assert read_counters(redis_client, REQUESTS_SKIPPED, [("gh_issue_comments",), ("gh_issues",)]) == [deleted, 0]
    assert comments["loaded"] == len(expected_comments(range(1, ISSUES + 1)))
    assert comments["jobs"] >= -(-ISSUES // 7)  # 7 parents a job at most (groups never span two batches)
    assert "gh_issue_comments: parents processed 60" in output
    status_output = ingest(services, catalog, tmp_path, "status")[1]
    assert f"gh_issue_comments: parents processed {ISSUES}, requests skipped {deleted} in 24h" in status_output
    with pg, pg.cursor() as cur:  # each parent taken once, by the child job it was planned for
        cur.execute("SELECT count(*), count(DISTINCT job_id) FROM fanout_parents WHERE run_id = %s AND status = 'done'",
                    (summary["run_id"],))
        assert cur.fetchone() == (ISSUES, comments["jobs"])
    # fan_out = "all": a second run re-reads every issue's comments, though no issue changed
    status, output, again = ingest(services, catalog, tmp_path, "run", "--workers", workers, "--timeout", "240")
    assert status == 0, output
    assert again["sources"]["gh_issues"]["duplicate"] == ISSUES
    comments_again = again["sources"]["gh_issue_comments"]
    assert (comments_again["parents"], comments_again["loaded"]) == (ISSUES, 0)
    assert comments_again["duplicate"] == len(expected_comments(range(1, ISSUES + 1)))
    assert stored_comments(pg) == expected_comments(range(1, ISSUES + 1))


@pytest.mark.parametrize("workers", ["2", "0"])
def test_a_child_source_named_alone_runs_from_its_stored_parents(
        services: Services, catalog: Path, tmp_path: Path, pg: psycopg2.extensions.connection,
        redis_client: redis.Redis, api: FixtureApiServer, workers: str) -> None:
    assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
    status, output, _ = ingest(services, catalog, tmp_path, "run", "--workers", "2", "--timeout", "240")
    assert status == 0, output
    with pg, pg.cursor() as cur:
        cur.execute("TRUNCATE fx_issue_comments")
    redis_client.flushdb()  # the dedup marks of the comments loaded: the backfill must load them again
    issue_pages = sum(count for path, count in api.requests().items() if "/comments" not in path)
    status, output, summary = ingest(services, catalog, tmp_path, "run", "--sources", "gh_issue_comments",
                                     "--workers", workers, "--timeout", "240")
    assert status == 0, output
    assert stored_comments(pg) == expected_comments(range(1, ISSUES + 1))
    assert sum(count for path, count in api.requests().items() if "/comments" not in path) == issue_pages
    assert set(summary["sources"]) == {"gh_issue_comments"}  # no job of gh_issues in this run
    assert summary["sources"]["gh_issue_comments"]["parents"] == ISSUES


SHOP_CATALOG = """
[datasets.shop_items]
table = "fx_shop_items"
key = ["product_id"]
[datasets.shop_items.columns]
product_id = "integer"
name = "text"

[datasets.shop_details]
table = "fx_shop_details"
key = ["product_id"]
[datasets.shop_details.columns]
product_id = "integer"
price = "numeric"
reviews = "json"

[datasets.board_comments]
table = "fx_board_comments"
key = ["comment_id"]
[datasets.board_comments.columns]
comment_id = "integer"
issue_number = "integer"

[sources.shop_list]
kind = "http_json"
dataset = "shop_items"
url = "{url}/products"
records_path = "products"
pagination = "page"
page_size_param = "limit"
page_size = 20
rate_limit = 0
fields = {{ product_id = "id" }}

[sources.shop_detail]
kind = "http_json"
dataset = "shop_details"
parent = "shop_list"
url = "{url}/products/{{parent.id}}"
records_path = ""
pagination = "none"
rate_limit = 0
parents_per_job = 9
fan_out = "changed"
fields = {{ product_id = "id" }}
on_status = {{ 404 = "skip" }}

[sources.picked_issues]
kind = "http_json"
dataset = "board_comments"
url = "{url}/repos/acme/widgets/issues/{{partition.issue}}/comments"
records_path = ""
pagination = "link"
page_size = 50
rate_limit = 0
partitions = {{ issue = [1, 3, 13, 22] }}
fields = {{ comment_id = "id", issue_number = "partition.issue" }}
on_status = {{ 404 = "skip" }}
"""
PRODUCTS = 50
PICKED = (1, 3, 13, 22)


@pytest.mark.parametrize("workers", ["2", "0"])
def test_a_list_and_its_details_and_a_partitioned_source(services: Services, tmp_path: Path,
                                                          pg: psycopg2.extensions.connection,
                                                          redis_client: redis.Redis, workers: str) -> None:
    server = FixtureApiServer(FixtureApiConfig(products=PRODUCTS)).start()
    try:
        with pg, pg.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS fx_shop_items, fx_shop_details, fx_board_comments")
        catalog = tmp_path / "shop.toml"
        catalog.write_text(SHOP_CATALOG.format(url=server.url), encoding="utf-8")
        assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        status, output, summary = ingest(services, catalog, tmp_path, "run", "--workers", workers, "--timeout", "240")
        assert status == 0, output
        again_status, again_output, again = ingest(services, catalog, tmp_path, "run", "--workers", workers)
    finally:
        server.stop()
    expected = {n: shop.product_detail(n) for n in range(1, PRODUCTS + 1) if not shop.detail_missing(n)}
    with pg, pg.cursor() as cur:
        cur.execute("SELECT product_id, price, reviews FROM fx_shop_details")
        assert {pid: (float(price), reviews) for pid, price, reviews in cur.fetchall()} == \
            {pid: (d["price"], d["reviews"]) for pid, d in expected.items()}
        cur.execute("SELECT comment_id, issue_number FROM fx_board_comments")
        assert dict(cur.fetchall()) == {c["id"]: n for n in PICKED if not github.comments_missing(n)
                                        for c in github.comments_of(n)}
    detail = summary["sources"]["shop_detail"]
    assert (detail["parents"], detail["skipped"], detail["loaded"]) == (PRODUCTS, PRODUCTS // 13, len(expected))
    picked = summary["sources"]["picked_issues"]
    assert (picked["parents"], picked["skipped"]) == (len(PICKED), sum(map(github.comments_missing, PICKED)))
    # fan_out = "changed": the second run loads no product again, so it fans out no detail job
    assert again_status == 0, again_output
    assert "shop_detail" not in again["sources"] and again["sources"]["shop_list"]["duplicate"] == PRODUCTS


# the error of the child job running when the time passes: stopped by the run (a worker), or by itself (inline)
STOPPED_BY = {"1": "stopped: the run's time limit (12s) passed",
              "0": "JobTimeoutException: stopped: the run's time limit"}


@pytest.mark.parametrize("workers", ["1", "0"])
def test_the_time_limit_marks_every_unfinished_child_job_failed(
        services: Services, tmp_path: Path, pg: psycopg2.extensions.connection, redis_client: redis.Redis,
        workers: str) -> None:
    """One worker (or inline), ten issues in two child jobs (7 + 3 parents) whose comment pages take 3 s
    each (the first job: at least 27 s): the time limit passes while the first child job runs and the
    second waits. Both are failed in ``ingest_jobs``, each saying why; the run is no success; the
    parents not reached stay pending."""
    issues, limit = 10, 12  # the parent job has 12 s to end (a loaded machine starts workers slowly)
    server = FixtureApiServer(FixtureApiConfig(issues=issues, latency=3.0)).start()
    try:
        with pg, pg.cursor() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(CATALOG.format(url=server.url), encoding="utf-8")
        assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        status, output, summary = ingest(services, catalog, tmp_path, "run", "--workers", workers,
                                         "--timeout", str(limit))
    finally:
        server.stop()
    assert status == 1 and summary["ok"] is False, output
    with pg, pg.cursor() as cur:
        cur.execute("SELECT source, status, error FROM ingest_jobs WHERE run_id = %s", (summary["run_id"],))
        jobs = sorted(cur.fetchall(), key=lambda job: (job[0], not (job[2] or "").startswith("cancelled")))
        cur.execute("SELECT status, count(*) FROM fanout_parents WHERE run_id = %s GROUP BY status",
                    (summary["run_id"],))
        parents = dict(cur.fetchall())
    assert jobs[0] == ("gh_issue_comments", "failed", f"cancelled before it started: the run's time limit ({limit}s) "
                                                      "passed")
    assert jobs[1][:2] == ("gh_issue_comments", "failed") and jobs[1][2].startswith(STOPPED_BY[workers])
    assert jobs[2:] == [("gh_issues", "finished", None)]
    comments = summary["sources"]["gh_issue_comments"]
    assert (comments["jobs"], comments["failed_jobs"]) == (2, 2)
    assert comments["parents_pending"] == parents["pending"] >= 3 and sum(parents.values()) == issues
    stored = stored_comments(pg)
    assert stored.items() <= expected_comments(range(1, issues + 1)).items()  # what committed is right
