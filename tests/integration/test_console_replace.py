"""The console's page of a ``write = "replace"`` source, loaded by a real `rq worker` and opened in
headless Chromium: a run's ``deleted`` counts the rows its switch removed (the records the fixture
API withdrew since the previous complete run), as the run summary and ``ingest status`` count them,
in the runs table, the chart and the page's JSON document; the nested rows gone with them are their
dataset's ``deleted``; a run whose job failed says on its row that it replaced nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.load.migrate import migrate
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import summary_document
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.workerpool import local_workers
from tests.console import browse, ingest, run_jobs
from tests.helpers import answer, metrics_server, serving

pytestmark = pytest.mark.integration
SOURCE, DATASET = "console_catalog", "cr_items"
WITHDRAWN = {1, 5, 9}  # served in revision 1, no longer in revision 2
CATALOG = f"""
[datasets.{DATASET}]
key = ["sku"]
write = "replace"
[datasets.{DATASET}.columns]
sku = "text"
price = "integer"
[datasets.{DATASET}_labels]
nested_in = "{DATASET}"
path = "labels"
key = ["name"]
[datasets.{DATASET}_labels.columns]
name = "text"
[sources.{SOURCE}]
kind = "http_json"
dataset = "{DATASET}"
url = "URL/items"
pagination = "none"
"""


def served(revision: int) -> list[dict[str, Any]]:
    """The records the fixture API serves at ``revision`` (1 or 2): revision 2 withdraws some and adds one."""
    numbers = range(12) if revision == 1 else [i for i in range(13) if i not in WITHDRAWN]
    return [{"sku": f"s{i:02d}", "price": 10 + i, "labels": [{"name": "all"}, {"name": f"l{i % 3}"}]}
            for i in numbers]


class Api(BaseHTTPRequestHandler):
    """/items: the records of the current revision, or HTML when broken (the job fails)."""

    state: dict[str, Any]

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        if self.state["broken"]:
            answer(self, 200, {"Content-Type": "application/json"}, b"<html>oops")
        else:
            answer(self, 200, {"Content-Type": "application/json"},
                   json.dumps({"items": served(self.state["revision"])}).encode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"revision": 1, "broken": False}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Api,), {"state": state}))
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}", state


def test_a_replace_source_s_page_counts_the_rows_its_switches_removed(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, tmp_path: Path,
    api: tuple[str, dict[str, Any]],
) -> None:
    url, state = api
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace("URL", url), encoding="utf-8")
    catalog = load_catalog(path, {})
    with pg, pg.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {DATASET}, {DATASET}_staged, {DATASET}_labels, {DATASET}_labels_staged")
        cur.execute("DELETE FROM replace_switches WHERE source = %s", (SOURCE,))
    migrate(pg, catalog.datasets.values())
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, dict(os.environ), tmp_path / "workers.log"):
        run_jobs(queue, settings, [catalog.sources[SOURCE]], "run-1")
        state["revision"] = 2
        run_jobs(queue, settings, [catalog.sources[SOURCE]], "run-2")
        state["broken"] = True
        run_jobs(queue, settings, [catalog.sources[SOURCE]], "run-3")
    withdrawn = {r["sku"] for r in served(1)} - {r["sku"] for r in served(2)}
    labels = [{(r["sku"], label["name"]) for r in served(revision) for label in r["labels"]} for revision in (1, 2)]
    gone, labels_gone = len(withdrawn), len(labels[0] - labels[1])
    assert gone == len(WITHDRAWN) and labels_gone > 0  # the fixture withdraws records and their labels
    summary = summary_document("run-2", JobHistory(pg).summarise("run-2"), 1.0)["sources"][SOURCE]
    assert summary["deleted"] == gone  # what the run summary says, the page must say

    with metrics_server(settings, "--catalog", str(path)) as console:
        document = requests.get(f"{console}/status/sources/{SOURCE}", timeout=10).json()
        status = requests.get(f"{console}/status", timeout=10).json()["sources"][SOURCE]
        page = browse(f"{console}/sources/{SOURCE}", tmp_path, "replace")
    printed = json.loads(ingest(settings, path, "status", "--source", SOURCE, "--json"))
    assert {**printed, "generated_at": None} == {**document, "generated_at": None}  # one document

    runs = {run["run_id"]: run for run in document["runs"]}
    assert (runs["run-1"]["deleted"], runs["run-2"]["deleted"], runs["run-3"]["deleted"]) == (0, gone, 0)
    assert runs["run-2"]["replace"]["outcome"] == "replaced" and runs["run-2"]["replace"]["deleted"] == gone
    assert runs["run-2"]["replace"]["nested"] == {f"{DATASET}_labels": labels_gone}
    assert runs["run-3"]["outcome"] == "failed" and runs["run-3"]["replace"]["outcome"] == "refused"
    assert document["totals"]["deleted"] == document["datasets"][0]["deleted"] == gone
    assert status["deleted"] == status["replace"]["deleted"] == gone  # `ingest status`, the front page's /status

    rows = {row.attrs["data-run"]: row for row in page.find_all("tr", **{"data-run": None})}
    assert [rows[run].first("td", cls="deleted").text for run in ("run-1", "run-2", "run-3")] == ["0", f"{gone:,}", "0"]
    assert [int(bar.attrs["data-value"]) for bar in page.find_all("rect", **{"data-kind": "deleted"})] == [gone]
    assert page.find_all("rect", **{"data-kind": "deleted"})[0].attrs["data-run"] == "run-2"
    replaced = rows["run-2"].first("td", cls="replaced")
    assert replaced.text == f"replaced: {gone:,} rows gone" and f": {gone} gone" in replaced.attrs["title"]
    refused = rows["run-3"].first("td", cls="refused")
    assert refused.text == "refused: replaced nothing"
    assert "run-3 replaced nothing" in refused.attrs["title"] and "1 failed" in refused.attrs["title"]
    assert page.first("tr", **{"data-dataset": DATASET}).first("td", cls="deleted").text == f"{gone:,}"
    # the labels: each revision's new ones loaded, those of the withdrawn records deleted by run 2's switch
    nested = page.first("tr", **{"data-dataset": f"{DATASET}_labels"})
    assert nested.first("td", cls="deleted").text == f"{labels_gone:,}"
    assert nested.first("td", cls="loaded").text == f"{len(labels[0]) + len(labels[1] - labels[0]):,}"
    assert document["datasets"][1] == {"name": f"{DATASET}_labels", "nested": True, "deleted": labels_gone,
                                       "loaded": len(labels[0]) + len(labels[1] - labels[0]), "updated": 0,
                                       "rejected": 0}
