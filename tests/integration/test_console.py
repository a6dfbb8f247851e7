"""The operator's console of `ingest metrics-server`, loaded by real `rq worker` processes and opened
in a real headless Chromium: a source's page shows its runs (chart and table), the reasons its
records were rejected with redacted samples, its cursor and next run; the workers page shows which
worker runs what and where the backlog is. Every number is computed here from the fixture data,
and each page is also checked against its JSON document. Screenshots go to the test's tmp_path."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from tests.console import browse, ingest, run_jobs
from tests.helpers import answer, metrics_server, serving, wait_until

pytestmark = pytest.mark.integration
TOKEN = "planted-console-token-5c1f"
HOUR = 3600

VALID = [{"id": f"p{i:03}", "title": f"Product {i}", "price": 10 + i, "currency": "EUR",
          "updated_at": f"2026-11-{1 + i % 28:02}T08:00:00Z"} for i in range(40)]
NO_NAME = [{"id": f"n{i}", "price": 5, "currency": "EUR"} for i in range(3)]
NEGATIVE = [{"id": f"m{i}", "title": f"Minus {i}", "price": -1 - i, "currency": "EUR",
             "Authorization": f"Bearer {TOKEN}", "note": f"served with key {TOKEN}"} for i in range(5)]
RECORDS = sorted(VALID + NO_NAME + NEGATIVE, key=lambda r: str(r.get("updated_at", "")))


class FixtureApi(BaseHTTPRequestHandler):
    """/shop: every record at once; /slow: a page held until the test releases it; /flaky: 503;
    anything else: 404."""

    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        if self.path.startswith("/shop"):
            answer(self, 200, {"Content-Type": "application/json"}, json.dumps({"items": RECORDS}).encode())
        elif self.path.startswith("/slow"):
            self.release.wait(60)
            answer(self, 200, {"Content-Type": "application/json"}, json.dumps({"items": VALID[:1]}).encode())
        elif self.path.startswith("/flaky"):
            answer(self, 503, {"Content-Type": "text/plain"}, b"try later")
        else:
            answer(self, 404, {"Content-Type": "text/plain"}, b"no such feed")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        pass


@contextmanager
def fixture_api() -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()
    handler = type("Handler", (FixtureApi,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server):
        try:
            yield f"http://127.0.0.1:{server.server_port}", release
        finally:
            release.set()


def catalog_text(url: str) -> str:
    common = ('kind = "http_json"\ndataset = "products"\npagination = "none"\n'
              'fields = { product_id = "id", name = "title" }')
    return (f'[sources.shop_rejects]\n{common}\nurl = "{url}/shop"\nauth_env = "SHOP_TOKEN"\n'
            f'cursor_field = "updated_at"\nsince_param = "since"\ninterval_seconds = {HOUR}\n'
            f'[sources.shop_broken]\n{common}\nurl = "{url}/broken"\n'
            f'[sources.shop_slow]\n{common}\nurl = "{url}/slow"\n'
            f'[sources.shop_flaky]\n{common}\nurl = "{url}/flaky"\n')


def test_the_console_shows_runs_rejects_and_workers_as_the_fixture_made_them(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)  # the workers' and the console's environment
    with fixture_api() as (url, release):
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(catalog_text(url), encoding="utf-8")
        specs = load_catalog(catalog, {}).sources
        # the workers may read the token the catalog names, as `ingest workers` with it would allow
        settings = dataclasses.replace(settings, source_vars=",".join(load_catalog(catalog, {}).variables()))
        queue = make_queue(redis_client, settings)
        with local_workers(settings, 1, dict(os.environ),
                           tmp_path / "workers.log"):
            run_jobs(queue, settings, [specs["shop_rejects"], specs["shop_broken"]], "run-1")
            run_jobs(queue, settings, [specs["shop_rejects"]], "run-2")
            with metrics_server(settings, "--catalog", str(catalog)) as console:
                busy = check_workers_page(console, queue, settings, specs, tmp_path, release)
                assert wait_for_jobs(queue, busy, lambda state: None, timeout=90).done == len(busy)
                check_source_page(console, tmp_path, settings, catalog)
                check_broken_source(console, tmp_path)
                front = browse(f"{console}/", tmp_path, "front", wait=25)
    assert int(front.first("body").attrs["data-refreshed"]) >= 1  # swapped in place, every 10 s
    rows = {row.attrs["data-source"]: row for row in front.find_all("tr", **{"data-source": None})}
    assert set(rows) == {"shop_rejects", "shop_broken", "shop_slow", "shop_flaky"}
    assert rows["shop_rejects"].first("td", cls="loaded").text == f"{len(VALID):,}"
    assert rows["shop_broken"].first("td", cls="health").text == "unhealthy"
    links = {a.attrs.get("href") for a in front.find_all("a")}
    assert {"/sources/shop_rejects", "/sources/shop_broken", "/workers"} <= links


def cli_status(settings: Settings, catalog: Path, *flags: str) -> str:
    return ingest(settings, catalog, "status", *flags, env={"SHOP_TOKEN": TOKEN})


def check_source_page(console: str, tmp_path: Path, settings: Settings, catalog: Path) -> None:
    document = requests.get(f"{console}/status/sources/shop_rejects", timeout=10).json()
    printed = json.loads(cli_status(settings, catalog, "--source", "shop_rejects", "--json"))
    assert {**printed, "generated_at": None} == {**document, "generated_at": None}  # one document
    text = cli_status(settings, catalog, "--source", "shop_rejects")
    assert f"{len(NEGATIVE)} x price: # is below the minimum #" in text and TOKEN not in text
    before = time.time()
    page = browse(f"{console}/sources/shop_rejects", tmp_path, "source")
    valid, rejected = len(VALID), len(NO_NAME) + len(NEGATIVE)
    expected_runs = {"run-1": {"loaded": valid, "duplicate": 0, "rejected": rejected, "fetched": len(RECORDS),
                               "deleted": 0},
                     "run-2": {"loaded": 0, "duplicate": valid, "rejected": rejected, "fetched": len(RECORDS),
                               "deleted": 0}}
    rows = {row.attrs["data-run"]: row for row in page.find_all("tr", **{"data-run": None})}
    for run_id, counts in expected_runs.items():
        row = rows[run_id]
        assert row.first("td", cls="outcome").text == "finished"
        for kind, count in counts.items():
            assert row.first("td", cls=kind).text == f"{count:,}", (run_id, kind)
            bars = [r for r in page.find_all("rect", **{"data-run": run_id, "data-kind": kind})]
            assert [int(bar.attrs["data-value"]) for bar in bars] == ([count] if count and kind != "fetched" else [])
        [from_json] = [run for run in document["runs"] if run["run_id"] == run_id]
        assert {kind: from_json[kind] for kind in counts} == counts

    reasons = {int(s.attrs["data-count"]): s for s in page.find_all("section", cls="reason")}
    assert set(reasons) == {len(NO_NAME), len(NEGATIVE)}  # each record stored once, under run-1
    assert "name" in reasons[len(NO_NAME)].attrs["data-reason"]
    assert "price" in reasons[len(NEGATIVE)].attrs["data-reason"]
    samples = reasons[len(NEGATIVE)].text
    assert TOKEN not in page.html and TOKEN not in json.dumps(document)
    assert "${SHOP_TOKEN}" in samples and '"Authorization": "[redacted]"' in samples
    assert {r["count"] for r in document["rejects"]["reasons"]} == set(reasons)

    newest = max(r["updated_at"] for r in VALID)
    cursor = page.first("dd", cls="cursor").text
    assert cursor.startswith("updated_at = ") and newest[:10] in cursor and "run-1" in cursor
    next_run = datetime.fromisoformat(page.first("dd", cls="next-run").text).timestamp()
    assert next_run in {HOUR * (math.floor(t / HOUR) + 1) for t in (before - 60, before, time.time())}
    assert document["next_run"] == page.first("dd", cls="next-run").text


def check_broken_source(console: str, tmp_path: Path) -> None:
    page = browse(f"{console}/sources/shop_broken", tmp_path, "broken")
    [row] = page.find_all("tr", **{"data-run": "run-1"})
    assert row.first("td", cls="outcome").text == "failed"
    assert "HTTP 404" in row.first("td", cls="error").text
    assert page.first(None, id="rejects").text.startswith("no record rejected")
    missing = requests.get(f"{console}/status/sources/no_such_source", timeout=10)
    assert missing.status_code == 404


def check_workers_page(console: str, queue: Any, settings: Settings, specs: dict[str, Any], tmp_path: Path,
                       release: threading.Event) -> list[str]:
    """While the only worker is held by shop_slow, a second job waits and a third is scheduled for a
    retry in an hour: the page names the worker's job and source, and the backlog."""
    retrying = dataclasses.replace(settings, job_retries=1, job_retry_intervals=str(HOUR))
    [scheduled] = [e.job_id for e in enqueue_run(queue, retrying, [specs["shop_flaky"]], "run-3")]
    wait_until(lambda: queue.scheduled_job_registry.count == 1, timeout=60)
    [slow] = [e.job_id for e in enqueue_run(queue, settings, [specs["shop_slow"]], "run-3")]
    wait_until(lambda: queue.started_job_registry.count == 1, timeout=60)
    [waiting] = [e.job_id for e in enqueue_run(queue, settings, [specs["shop_rejects"]], "run-3")]
    time.sleep(1)  # the waiting job's age is at least a second
    document = requests.get(f"{console}/status/workers", timeout=10).json()
    page = browse(f"{console}/workers", tmp_path, "workers")
    text = cli_status(settings, tmp_path / "catalog.toml", "--workers")
    release.set()
    assert f"{slow}  shop_slow" in text and f"queue {settings.queue}: queued 1" in text

    [worker] = page.find_all("tr", **{"data-worker": None})
    assert worker.first("td", cls="job").text == slow
    assert worker.first("td", cls="source").text == "shop_slow"
    assert worker.first("td", cls="host").text == socket.gethostname()
    [from_json] = document["workers"]
    assert worker.first("td", cls="pid").text == str(from_json["pid"]) and from_json["current_job"]["job_id"] == slow
    row = page.first("tr", **{"data-queue": settings.queue})
    assert row.first("td", cls="queued").text == "1" and row.first("td", cls="scheduled").text == "1"
    assert float(row.first("td", cls="oldest").text.split(" s")[0]) >= 1
    [job] = page.find_all("tr", **{"data-job": scheduled})
    runs_at = datetime.fromisoformat(job.first("td", cls="at").text)
    assert 0.9 * HOUR < (runs_at - datetime.now(UTC)).total_seconds() <= HOUR
    [queue_doc] = [q for q in document["queues"] if q["name"] == settings.queue]
    assert (queue_doc["queued"], queue_doc["scheduled"], queue_doc["started"]) == (1, 1, 1)
    return [slow, waiting]
