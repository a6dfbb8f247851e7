"""Fairness: a fan-out of thousands of child jobs does not starve a source enqueued after it. Child
jobs wait in the children queue, which workers take only when their other queues are empty, so a
small source enqueued after a 2,000-parent fan-out is the next job the (single) worker takes, and
finishes while most of the fan-out's child jobs still wait."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from ingest_workers.core.config import Settings
from ingest_workers.runtime.relay import children_queue
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer
from ingest_workers.testing.fleet import WorkerFleet
from tests.integration.test_fan_out_deaths import cli, wait_until

pytestmark = pytest.mark.integration

PARENTS = 2000
PER_JOB = 20
CHILD_JOBS = PARENTS // PER_JOB  # at least

CATALOG = """
[datasets.issues]
table = "fx_issues"
key = ["issue_number"]
[datasets.issues.columns]
issue_number = "integer"

[datasets.issue_comments]
table = "fx_issue_comments"
key = ["comment_id"]
[datasets.issue_comments.columns]
comment_id = "integer"
issue_number = "integer"

[sources.gh_issues]
kind = "http_json"
dataset = "issues"
url = "{url}/repos/acme/widgets/issues"
records_path = ""
pagination = "link"
page_size = 100
rate_limit = 0
fields = {{ issue_number = "number" }}

[sources.gh_issue_comments]
kind = "http_json"
dataset = "issue_comments"
parent = "gh_issues"
url = "{url}/repos/acme/widgets/issues/{{parent.number}}/comments"
records_path = ""
pagination = "link"
page_size = 100
rate_limit = 0
parents_per_job = {per_job}
fields = {{ comment_id = "id", issue_number = "parent.number" }}
on_status = {{ 404 = "skip" }}

[sources.late_small]
kind = "http_json"
dataset = "issues"
url = "{url}/repos/acme/widgets/issues"
records_path = ""
pagination = "none"
rate_limit = 0
fields = {{ issue_number = "number" }}
"""


@pytest.fixture
def api() -> Iterator[FixtureApiServer]:
    server = FixtureApiServer(FixtureApiConfig(issues=PARENTS, latency=0.01)).start()  # 10 ms a comments page
    yield server
    server.stop()


@pytest.fixture
def one_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    yield fleet
    fleet.close()


def ended(pg: psycopg2.extensions.connection, source: str) -> int:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingest_jobs WHERE source = %s AND status = 'finished'", (source,))
        return int(cur.fetchone()[0])


def test_a_source_enqueued_after_a_large_fan_out_finishes_long_before_it(
        services: Services, settings: Settings, one_worker: WorkerFleet, api: FixtureApiServer, tmp_path: Path,
        pg: psycopg2.extensions.connection, redis_client: redis.Redis) -> None:
    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS fx_issues, fx_issue_comments")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(url=api.url, per_job=PER_JOB), encoding="utf-8")
    cli(services, settings, catalog, "db", "migrate")
    one_worker.start(1)
    cli(services, settings, catalog, "enqueue", "--sources", "gh_issues")
    children = Queue(children_queue(settings.queue), connection=redis_client, serializer=JSONSerializer)
    wait_until(lambda: ended(pg, "gh_issues") == 1, 120, "the parent job to end")
    waiting_before = children.count
    assert waiting_before >= CHILD_JOBS - 10  # the fan-out's child jobs wait; the worker took one or two
    cli(services, settings, catalog, "enqueue", "--sources", "late_small")
    started = time.monotonic()
    wait_until(lambda: ended(pg, "late_small") == 1, 60, "the late source's job to end")
    waited = time.monotonic() - started
    still_waiting = children.count
    # The late job was taken next (after the child jobs run while `ingest enqueue` started): the fan-out
    # barely moved, most of its child jobs still wait.
    assert still_waiting >= waiting_before - 5 and still_waiting > CHILD_JOBS // 2, (waiting_before, still_waiting,
                                                                                      waited)
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingest_jobs WHERE source = 'gh_issue_comments'")
        listed = cur.fetchone()[0]  # 13 jobs a batch of 250 parents: groups never span two batches
    assert listed >= CHILD_JOBS and ended(pg, "gh_issue_comments") <= listed - still_waiting
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM fx_issues WHERE source = 'late_small'")
        assert cur.fetchone()[0] == 30  # its one page: the fixture's default page size
