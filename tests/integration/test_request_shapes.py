"""Request shapes and time (issue 26) by catalog alone, through real ``rq worker`` processes: a POST
search endpoint paged in its body and capping its result sets, a GraphQL endpoint with ``pageInfo``,
a filter expression in a query parameter, and an endpoint refusing ranges longer than 7 days; a late
record is loaded thanks to ``lookback``; a worker SIGKILLed in a windowed run resumes at its window; a
backfill job steps through its range by the source's window."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2.extensions
import pytest
import redis
import requests
from click.testing import CliRunner

from ingest_workers.catalog import load_catalog
from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_backfill, enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers, worker_command, worker_env
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fleet import WorkerFleet
from tests.helpers import serving, wait_until
from tests.requests_fixture import DEAL_STEP, RequestsApi, RequestsData, deal, iso, issue

pytestmark = pytest.mark.integration

TABLES = ("i26_search_deals", "i26_graphql_deals", "i26_ranged_deals", "i26_issues")
DEAL_COLUMNS = '[datasets.{0}]\nkey = ["deal_id"]\ntime_column = "updated_at"\n[datasets.{0}.columns]\n' \
               'deal_id = "text"\nname = "text"\namount = "integer"\nupdated_at = "timestamp"\n\n'
GRAPHQL = ("query($first: Int!, $after: String, $since: DateTime) { deals(first: $first, after: $after, "
           "since: $since) { nodes { id name amount updated_at } pageInfo { endCursor hasNextPage } } }")
CATALOG = "".join(DEAL_COLUMNS.format(t) for t in TABLES[:3]) + """
[datasets.i26_issues]
key = ["issue_id"]
[datasets.i26_issues.columns]
issue_id = "text"
title = "text"
last_seen = "timestamp"

[sources.crm_deals]
kind = "http_json"
dataset = "i26_search_deals"
url = "API/v3/deals/search"
method = "POST"
body = { filter = { updated_after = "{since}", updated_before = "{until}" }, page = "{page}", size = 10 }
records_path = "results"
pagination = "page"
page_size = 10
page_size_param = ""
cursor_field = "updated_at"
initial_value = "INITIAL"
lookback = "15m"
window = "7d"
max_records_per_window = 20
fields = { deal_id = "id" }
rate_limit = 0

[sources.gh_deals]
kind = "http_json"
dataset = "i26_graphql_deals"
url = "API/graphql"
method = "POST"
body = { query = "GRAPHQL", variables = { first = 25, after = "{cursor}", since = "{since}" } }
records_path = "data.deals.nodes"
pagination = "cursor"
next_token_path = "data.deals.pageInfo.endCursor"
page_size_param = ""
cursor_field = "updated_at"
fields = { deal_id = "id" }
rate_limit = 0

[sources.errors]
kind = "http_json"
dataset = "i26_issues"
url = "API/api/0/issues/"
params = { query = "lastSeen:>{since}" }
records_path = ""
pagination = "link"
cursor_field = "last_seen"
fields = { issue_id = "id", last_seen = "lastSeen" }
rate_limit = 0

[sources.ranged_deals]
kind = "http_json"
dataset = "i26_ranged_deals"
url = "API/ranged/deals"
records_path = "items"
pagination = "page"
page_size = 10
since_param = "from"
until_param = "to"
time_format = "unix"
cursor_field = "updated_at"
initial_value = "INITIAL"
window = "7d"
fields = { deal_id = "id" }
rate_limit = 0
"""


@pytest.fixture
def api() -> Iterator[RequestsApi]:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
    server = RequestsApi(RequestsData(start=start))
    with serving(server):
        yield server
    server.data.release.set()


@pytest.fixture
def catalog(api: RequestsApi, services: Services, pg: psycopg2.extensions.connection, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace("API", api.url).replace("INITIAL", iso(api.data.start)).replace("GRAPHQL", GRAPHQL))
    drop(pg)
    ingest(services, path, tmp_path, "db", "migrate")
    yield path
    drop(pg)


def drop(pg: psycopg2.extensions.connection) -> None:
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def ingest(services: Services, catalog: Path, tmp_path: Path, *args: str) -> dict[str, dict[str, int]]:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING",
             "--catalog", str(catalog)]
    out = tmp_path / "summary.json"
    out.unlink(missing_ok=True)
    extra = ["--out", str(out)] if args[0] == "run" else []
    result = CliRunner().invoke(main, [*flags, *args, *extra], env={"INGEST_JOB_RETRIES": "0"})
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["sources"] if args[0] == "run" else {}


def stored(pg: psycopg2.extensions.connection, table: str) -> dict[str, tuple[Any, ...]]:
    key = "issue_id" if table == "i26_issues" else "deal_id"
    values = "title, last_seen" if table == "i26_issues" else "name, amount, updated_at"
    with pg, pg.cursor() as cur:
        cur.execute(f"SELECT {key}, {values} FROM {table}")
        return {row[0]: tuple(iso(v) if isinstance(v, datetime) else v for v in row[1:]) for row in cur.fetchall()}


def expected_deals(deals: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {d["id"]: (d["name"], d["amount"], d["updated_at"]) for d in deals}


def mark(pg: psycopg2.extensions.connection, source: str) -> Any:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT position FROM source_cursors WHERE source = %s", (source,))
        return cur.fetchone()[0]


def test_each_request_shape_loads_by_catalog_alone_and_a_late_record_is_loaded(
        services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, api: RequestsApi,
        catalog: Path, tmp_path: Path) -> None:
    data = api.data
    recent = {"id": "deal-recent", "name": "Recent deal", "amount": 5,
              "updated_at": iso(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))}
    data.late.append(recent)  # loaded by the first run; within the second run's look-back
    summary = ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "180")
    deals = expected_deals(data.all_deals())
    for table in TABLES[:3]:
        assert stored(pg, table) == deals, table
    issues = {i["id"]: (i["title"], i["lastSeen"]) for i in (issue(n, data.start) for n in range(data.issues))}
    assert stored(pg, "i26_issues") == issues
    # A week holding search_cap deals or more was capped: what it served is served again by its halves.
    weeks = [sum(data.start + timedelta(days=7 * k) <= _moment(d["updated_at"]) < data.start + timedelta(days=7 * k + 7)
                 for d in data.all_deals()) for k in range(5)]
    served_twice = sum(min(count, data.search_cap) for count in weeks if count >= data.search_cap)
    assert served_twice > 0
    crm = summary["crm_deals"]
    assert (crm["loaded"], crm["duplicate"], crm["fetched"]) == (len(deals), served_twice, len(deals) + served_twice)

    searches = [body for method, path, body in data.requests if path == "/v3/deals/search"]
    assert {"page", "size", "filter"} <= set(searches[0]) and searches[0]["size"] == 10
    assert {body["page"] for body in searches} >= {1, 2, 3}  # the page moves in the body
    spans = {(body["filter"]["updated_after"], body["filter"]["updated_before"]) for body in searches}
    lengths = {_moment(u) - _moment(s) for s, u in spans}
    assert max(lengths) <= timedelta(days=7) and timedelta(days=3, hours=12) in lengths  # a capped week was cut
    first_window = (iso(data.start), iso(data.start + timedelta(days=7)))
    assert first_window in spans
    graphql = [body for method, path, body in data.requests if path == "/graphql"]
    assert "after" not in graphql[0]["variables"] and graphql[1]["variables"]["after"] == "cursor:25"
    assert graphql[0]["variables"]["first"] == 25 and "since" not in graphql[0]["variables"]  # no mark: all
    ranged = [path for method, path, body in data.requests if path.startswith("/ranged/")]
    assert f"from={int(data.start.timestamp())}&to={int((data.start + timedelta(days=7)).timestamp())}" in ranged[0]
    first_issues = [path for _, path, _ in data.requests if path.startswith("/api/0/issues/")][0]
    assert "query" not in first_issues  # no mark, no initial_value: the filter is left out, all is read

    # A record arrives late: its time is before crm_deals' mark, which lookback reaches back over.
    crm_mark = _moment(mark(pg, "crm_deals"))
    late = {"id": "deal-late", "name": "Late deal", "amount": 7, "updated_at": iso(crm_mark - timedelta(minutes=5))}
    data.late.append(late)
    data.issues += 3
    data.requests.clear()
    summary = ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "180")
    crm = summary["crm_deals"]
    assert (crm["fetched"], crm["duplicate"], crm["loaded"]) == (2, 1, 1)  # the recent one again, the late one
    assert stored(pg, "i26_search_deals") == {**deals, **expected_deals([late])}
    assert _moment(mark(pg, "crm_deals")) > crm_mark  # the mark only moves forward
    assert summary["gh_deals"]["loaded"] == 1  # after its own mark (the last deal's time)
    assert summary["ranged_deals"]["loaded"] == 0  # no lookback: a record before the mark stays unseen
    assert summary["errors"]["loaded"] == 3
    queries = [path for _, path, _ in data.requests if path.startswith("/api/0/issues/")]
    assert queries[0].startswith("/api/0/issues/?query=lastSeen%3A%3E")  # the mark inside the expression


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerFleet, Settings]]:
    fast = dataclasses.replace(settings, job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17)
    fleet = WorkerFleet(lambda name: worker_command(fast, name), worker_env(fast, os.environ),
                        tmp_path / "workers.log")
    yield fleet, fast
    fleet.close()


def test_a_worker_killed_in_a_windowed_run_resumes_at_its_window_and_loads_nothing_twice(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, api: RequestsApi, catalog: Path,
        fleet: tuple[WorkerFleet, Settings]) -> None:
    workers, settings = fleet
    data = api.data
    third = data.start + timedelta(days=14)  # the third window's start: held until the worker is killed
    data.hold = int(third.timestamp())
    spec = load_catalog(catalog, {}).sources["ranged_deals"]
    queue = make_queue(redis_client, settings)
    workers.start(1)
    enqueue_run(queue, settings, [spec], "run-1")
    assert data.held.wait(60), "the third window was never asked for"
    workers.kill_worker(workers.workers[0])  # SIGKILL: the worker and its work horse
    killed_at = len(data.requests)

    before = [deal(i, data.start) for i in range(data.deals) if data.start + i * DEAL_STEP < third]
    assert stored(pg, "i26_ranged_deals") == expected_deals(before)  # two windows committed, the third not
    assert mark(pg, "ranged_deals") == iso(third)  # the mark moved with each window

    data.hold = None
    data.release.set()
    workers.start(1)  # takes the dead worker's job over
    state = wait_for_jobs(queue, ["run-1-ranged_deals"], lambda s: None, timeout=90)
    assert (state.done, state.failed) == (1, 0)
    wait_until(lambda: JobHistory(pg).attempts(["run-1-ranged_deals"]).get("run-1-ranged_deals") == 2, 10)
    again = [path for _, path, _ in data.requests[killed_at:] if path.startswith("/ranged/")]
    assert f"from={int(third.timestamp())}&" in again[0]  # it resumed at its window
    assert all(int(p.split("from=")[1].split("&")[0]) >= int(third.timestamp()) for p in again)
    everything = [deal(i, data.start) for i in range(data.deals)]
    assert stored(pg, "i26_ranged_deals") == expected_deals(everything)
    [summary] = JobHistory(pg).summarise("run-1")
    assert (summary.counts.loaded, summary.counts.duplicate) == (len(everything) - len(before), 0)


def test_the_7_day_endpoint_refuses_a_longer_range(api: RequestsApi) -> None:
    """The fixture itself: what the windows keep the worker from asking."""
    start = int(api.data.start.timestamp())
    week = 7 * 24 * 3600
    assert requests.get(f"{api.url}/ranged/deals", params={"from": start, "to": start + week}, timeout=5).ok
    refused = requests.get(f"{api.url}/ranged/deals", params={"from": start, "to": start + week + 1}, timeout=5)
    assert refused.status_code == 400


def test_a_backfill_job_steps_through_its_range_by_the_source_s_window(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, api: RequestsApi,
        catalog: Path, tmp_path: Path) -> None:
    data = api.data
    spec = load_catalog(catalog, {}).sources["ranged_deals"]
    since, until = data.start + timedelta(days=2), data.start + timedelta(days=23)
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        _, enqueued = enqueue_backfill(queue, settings, [spec], since, until, timedelta(days=21))  # one job
        state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda s: None, timeout=90)
    assert (len(enqueued), state.done, state.failed) == (1, 1, 0)
    inside = [d for d in data.all_deals() if since <= _moment(d["updated_at"]) < until]
    assert stored(pg, "i26_ranged_deals") == expected_deals(inside)
    asked = {(int(q["from"][0]), int(q["to"][0])) for q in
             (parse_qs(urlsplit(path).query) for _, path, _ in data.requests if path.startswith("/ranged/"))}
    week = int(timedelta(days=7).total_seconds())
    assert sorted(asked) == [(int(since.timestamp()) + k * week, int(since.timestamp()) + (k + 1) * week)
                             for k in range(3)]  # three windows of 7 days: the API refuses longer
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM source_cursors WHERE source = 'ranged_deals'")
        assert cur.fetchone()[0] == 0  # a backfill leaves the mark alone
