"""The fan-out progress of the console, from a real `ingest metrics-server`: a run's outbox
(``fanout_parents``) and child jobs (``ingest_jobs``) are written here with SQL, and the pages of
the parent and of the child source show that run's numbers (not an older run's), the failed
parents' keys escaped, and the same numbers in their JSON documents."""

from __future__ import annotations

import html

import psycopg2.extensions
import pytest
import requests

from ingest_workers.core.config import Settings
from tests.dom import Dom
from tests.helpers import metrics_server

pytestmark = pytest.mark.integration
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
