"""The fan-out progress of the console, from a real `ingest metrics-server`.

The first test loads the GitHub-like fixture API's issues and each issue's comments (a child source
through the children queue) with real `rq worker` processes: some issues' comments answer 404
(skipped), one issue's answer 403 (a failed parent); a child source whose parent failed and one
whose parent never ran have no jobs. Headless Chromium opens the pages; every expected number
comes from the fixture's functions. The second writes a run's outbox (``fanout_parents``) and child
jobs (``ingest_jobs``) with SQL: the pages show that run's numbers (not an older run's), the failed
parents' keys escaped, and the same numbers in their JSON documents."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github
from ingest_workers.testing.fixture_apis.server import ISSUES_PATH, Answer
from tests.console import browse, ingest, run_jobs
from tests.dom import Dom
from tests.helpers import metrics_server

pytestmark = pytest.mark.integration
ISSUES, FORBIDDEN = 30, 7  # issue 7's comments answer 403: a parent that fails
COMMENTS = """
url = "{url}/repos/acme/widgets/issues/{{parent.number}}/comments"
dataset = "cx_comments"
kind = "http_json"
records_path = ""
pagination = "link"
page_size = 20
rate_limit = 0
parents_per_job = 4
fields = {{ comment_id = "id", issue_number = "parent.number" }}
on_status = {{ 404 = "skip" }}
"""
ISSUES_LIST = """
kind = "http_json"
dataset = "cx_issues"
records_path = ""
pagination = "link"
page_size = 25
rate_limit = 0
fields = {{ issue_number = "number" }}
"""
CATALOG = f"""
[datasets.cx_issues]
table = "cx_issues"
key = ["issue_number"]
columns = {{{{ issue_number = "integer" }}}}
[datasets.cx_comments]
table = "cx_comments"
key = ["comment_id"]
columns = {{{{ comment_id = "integer", issue_number = "integer", body = "text" }}}}

[sources.cx_issues]
url = "{{url}}{ISSUES_PATH}"{ISSUES_LIST}
[sources.cx_comments]
parent = "cx_issues"{COMMENTS}
[sources.cx_gone]
url = "{{url}}/repos/acme/gone/issues"{ISSUES_LIST}
[sources.cx_gone_comments]
parent = "cx_gone"{COMMENTS}
[sources.cx_idle]
url = "{{url}}{ISSUES_PATH}"{ISSUES_LIST}
[sources.cx_idle_comments]
parent = "cx_idle"{COMMENTS}
"""


class OneParentForbidden(FixtureApiServer):
    """The fixture API, but issue FORBIDDEN's comments answer 403 (a permanent error) every time."""

    def route(self, path: str, query: dict[str, str]) -> Answer:
        if path == f"{ISSUES_PATH}/{FORBIDDEN}/comments":
            return Answer(403, {"message": "Must have push access to view these comments"})
        return super().route(path, query)


@pytest.fixture
def fan_out_catalog(tmp_path: Path, settings: Settings, pg: psycopg2.extensions.connection) -> Iterator[Path]:
    server = OneParentForbidden(FixtureApiConfig(issues=ISSUES)).start()
    try:
        with pg, pg.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS cx_issues, cx_comments")
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(CATALOG.format(url=server.url), encoding="utf-8")
        ingest(settings, catalog, "db", "migrate")
        yield catalog
    finally:
        server.stop()


def test_the_pages_show_a_real_fan_out_s_progress_and_why_child_sources_have_no_jobs(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, tmp_path: Path,
    fan_out_catalog: Path,
) -> None:
    specs = load_catalog(fan_out_catalog, {}).sources
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 2, dict(os.environ), tmp_path / "workers.log"):
        run_jobs(queue, settings, [specs["cx_issues"], specs["cx_gone"]], "run-f", pg)
    numbers = range(1, ISSUES + 1)
    comments = sum(len(github.comments_of(n)) for n in numbers if n != FORBIDDEN)
    expected = {"parents": {"total": ISSUES, "done": ISSUES - 1, "skipped": 0, "failed": 1, "pending": 0},
                "jobs": {"queued": 0, "running": 0, "failed": 1}, "loaded": comments,
                "skipped": sum(map(github.comments_missing, numbers))}
    with metrics_server(settings, "--catalog", str(fan_out_catalog)) as console:
        for name in ("cx_issues", "cx_comments"):  # the parent's page, and the child source's own
            document = requests.get(f"{console}/status/sources/{name}", timeout=10).json()
            assert {**json.loads(ingest(settings, fan_out_catalog, "status", "--source", name, "--json")),
                    "generated_at": None} == {**document, "generated_at": None}
            [child] = document["children"]
            assert {key: child[key] for key in expected} == expected
            check_fan_out_page(browse(f"{console}/sources/{name}", tmp_path, f"fan-out-{name}"), expected)
        check_run(browse(f"{console}/sources/cx_issues", tmp_path, "issues"), "finished", ISSUES)
        check_run(browse(f"{console}/sources/cx_comments", tmp_path, "comments"), "partial", comments)
        gone = browse(f"{console}/sources/cx_gone", tmp_path, "gone")
        idle = browse(f"{console}/sources/cx_idle_comments", tmp_path, "idle")
        front = browse(f"{console}/", tmp_path, "front")
        sources = requests.get(f"{console}/status", timeout=10).json()["sources"]
    text = ingest(settings, fan_out_catalog, "status", "--source", "cx_issues")
    assert (f"  cx_comments: parents done {ISSUES - 1} / {ISSUES}, failed 1, pending 0, requests skipped "
            f"{expected['skipped']}; child jobs queued 0, running 0, failed 1; loaded {comments}") in text
    assert f"    failed parent {FORBIDDEN}: " in text and "HTTP 403" in text
    waiting = {"cx_gone_comments": "no jobs: its parent cx_gone's latest run run-f ended failed without fanning "
                                   "out to it",
               "cx_idle_comments": "never run: its parent cx_idle has not run yet"}
    assert gone.first("tr", data_child="cx_gone_comments").first("td", cls="state").text == waiting["cx_gone_comments"]
    rows = {row.attrs["data-source"]: row for row in front.find_all("tr", **{"data-source": None})}
    assert set(rows) == set(specs)
    assert idle.first("tr", data_child="cx_idle_comments").first("td", cls="state").text == waiting["cx_idle_comments"]
    for name, state in waiting.items():
        assert rows[name].first("td", cls="outcome").text == state
        assert (sources[name]["parent"], sources[name]["state"]) == (name.removesuffix("_comments"), state)
    assert rows["cx_comments"].first("td", cls="loaded").text == f"{comments:,}"
    status = ingest(settings, fan_out_catalog, "status")
    assert all(f"{name}: child source of {name.removesuffix('_comments')}: {state}" in status
               for name, state in waiting.items())


def check_fan_out_page(page: Dom, expected: dict[str, Any]) -> None:
    row = page.first("tr", data_child="cx_comments")
    cells = {c.attrs["class"]: c.text for c in row.find_all("td") if "class" in c.attrs}
    parents, jobs = expected["parents"], expected["jobs"]
    assert cells == {"n parents": f"{parents['done']} / {parents['total']}", "n parents-failed": "1",
                     "n parents-pending": "0", "n skipped": str(expected["skipped"]),
                     **{f"n jobs-{state}": str(count) for state, count in jobs.items()},
                     "n loaded": f"{expected['loaded']:,}"}
    [failed] = page.first("ul", data_child="cx_comments").find_all("li")
    assert failed.attrs["data-key"] == str(FORBIDDEN) and "HTTP 403" in failed.text


def check_run(page: Dom, outcome: str, loaded: int) -> None:
    """A source's run-f: its outcome and counts as the fixture makes them (each record loaded once);
    the child source's is partial, its job with issue FORBIDDEN having lost that parent's comments."""
    row = page.first("tr", data_run="run-f")
    assert row.first("td", cls="outcome").text == outcome
    assert {kind: row.first("td", cls=kind).text for kind in ("loaded", "updated", "deleted", "duplicate",
                                                              "rejected")} == \
        {"loaded": f"{loaded:,}", "updated": "0", "deleted": "0", "duplicate": "0", "rejected": "0"}
    [bar] = page.find_all("rect", data_run="run-f")
    assert (bar.attrs["data-kind"], int(bar.attrs["data-value"])) == ("loaded", loaded)


PARENT, CHILD, RUN, OLD_RUN = "shop_orders", "order_lines", "run-new", "run-old"
BAD_KEY = "<b>7</b>"
STATUSES = ["done"] * 5 + ["pending"] * 2 + ["failed"]  # parents 1..8; parent 8's key is BAD_KEY
CHILD_JOBS = [("finished", 12), ("started", 0), ("failed", 3)]  # (status, loaded)


def write_fixture(pg: psycopg2.extensions.connection) -> None:
    """Two runs of the parent: the newest fanned out to CHILD as above, the older (ignored) had 4 failed parents."""
    with pg, pg.cursor() as cur:
        cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status, started_at, finished_at) VALUES "
                    "('old-p', %s, %s, 'finished', now() - interval '2 hours', now() - interval '2 hours'), "
                    "('new-p', %s, %s, 'finished', now() - interval '1 minute', now())",
                    (OLD_RUN, PARENT, RUN, PARENT))
        for index, (status, loaded) in enumerate(CHILD_JOBS):
            cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status, loaded, parent_job) "
                        "VALUES (%s, %s, %s, %s, %s, 'new-p')", (f"new-c{index}", RUN, CHILD, status, loaded))
        cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status, parent_job, started_at) "
                    "VALUES ('old-c', %s, %s, 'failed', 'old-p', now() - interval '2 hours')", (OLD_RUN, CHILD))
        for position, status in enumerate(STATUSES):
            key = BAD_KEY if status == "failed" else f"o{position}"
            cur.execute("INSERT INTO fanout_parents (run_id, child_source, parent_key, job_id, position, parent, "
                        "status, error) VALUES (%s, %s, %s, %s, %s, '{}', %s, %s)",
                        (RUN, CHILD, key, f"new-c{position % 3}", position, status,
                         "HTTP 500 for <order>" if status == "failed" else None))
        for position in range(4):
            cur.execute("INSERT INTO fanout_parents (run_id, child_source, parent_key, job_id, position, parent, "
                        "status, error) VALUES (%s, %s, %s, 'old-c', %s, '{}', 'failed', 'old')",
                        (OLD_RUN, CHILD, f"old{position}", position))


def test_a_source_page_shows_its_latest_run_s_fan_out_progress(
    pg: psycopg2.extensions.connection, settings: Settings,
) -> None:
    write_fixture(pg)
    expected_parents = {"total": len(STATUSES), "done": STATUSES.count("done"), "skipped": 0,
                        "failed": STATUSES.count("failed"), "pending": STATUSES.count("pending")}
    expected_jobs = {"queued": 0, "running": 1, "failed": 1}
    with metrics_server(settings) as url:
        for source in (PARENT, CHILD):  # the parent's page and the child source's own page
            document = requests.get(f"{url}/status/sources/{source}", timeout=10).json()
            [child] = document["children"]
            assert (child["source"], child["run_id"]) == (CHILD, RUN)
            assert child["parents"] == expected_parents and child["jobs"] == expected_jobs
            assert child["loaded"] == sum(loaded for _, loaded in CHILD_JOBS)
            assert [(f["key"], f["error"]) for f in child["failed_parents"]] == [(BAD_KEY, "HTTP 500 for <order>")]

            page = requests.get(f"{url}/sources/{source}", timeout=10).text
            assert BAD_KEY not in page and html.escape(BAD_KEY, quote=False) in page
            row = Dom.parse(page).first("tr", data_child=CHILD)
            cells = {c.attrs["class"]: c.text for c in row.find_all("td") if "class" in c.attrs}
            assert cells["n parents"] == f"{expected_parents['done']} / {expected_parents['total']}"
            assert (cells["n jobs-queued"], cells["n jobs-running"], cells["n jobs-failed"]) == ("0", "1", "1")
            assert cells["n parents-pending"] == "2"
            [failed] = Dom.parse(page).first("ul", data_child=CHILD).find_all("li")
            assert failed.attrs["data-key"] == BAD_KEY and "HTTP 500 for <order>" in failed.text
