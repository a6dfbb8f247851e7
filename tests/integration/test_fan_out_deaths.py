"""Fan-out under worker deaths: `rq worker` processes SIGKILLed while the parent job and its child
jobs run lose and duplicate nothing: every comment the fixture serves is stored once, every parent
is done, and the run (watched again with `enqueue --wait`) ends when its last child job has."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer
from ingest_workers.testing.fixture_apis.traffic import FaultShares
from ingest_workers.testing.fleet import WorkerFleet
from tests.integration.test_fan_out import CATALOG, TABLES, expected_comments, stored_comments

pytestmark = pytest.mark.integration

ISSUES = 90
RUN_ID = "fanout-deaths"


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    # A dead worker's job is taken over within 3 * 1 + max(2, 17 - 15) = 5 seconds.
    # Batches of 10 issues: the parent hands on children batch by batch while it still pages.
    return dataclasses.replace(settings, job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17,
                               batch_size=10)


@pytest.fixture
def fleet(fast_settings: Settings, tmp_path: Path) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(lambda name: worker_command(fast_settings, name), worker_env(fast_settings, os.environ),
                        tmp_path / "workers.log")
    yield fleet
    fleet.close()


@pytest.fixture
def slow_api() -> Iterator[FixtureApiServer]:
    # a tenth of the paths answer 500 once (the HTTP client retries them); comments pages take 40 ms
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES, latency=0.04,
                                               faults=FaultShares(error=0.1, seed=3))).start()
    yield server
    server.stop()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def started(pg: psycopg2.extensions.connection, source: str) -> int:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingest_jobs WHERE run_id = %s AND source = %s AND status = 'started'",
                    (RUN_ID, source))
        return int(cur.fetchone()[0])


def cli(services: Services, settings: Settings, catalog: Path, *args: str) -> str:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING",
             "--catalog", str(catalog)]
    env = {"INGEST_QUEUE": settings.queue, "INGEST_JOB_RETRIES": "3", "INGEST_JOB_RETRY_INTERVALS": "1",
           "INGEST_MAX_KILLS": "5"}
    result = CliRunner().invoke(main, [*flags, *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_workers_killed_while_parent_and_child_jobs_run_lose_and_duplicate_nothing(
        services: Services, fast_settings: Settings, fleet: WorkerFleet, slow_api: FixtureApiServer,
        tmp_path: Path, pg: psycopg2.extensions.connection, redis_client: redis.Redis) -> None:
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    catalog = tmp_path / "catalog.toml"
    # 1 issue a page, batches of 10: the parent is still paging when its first children start
    catalog.write_text(CATALOG.format(url=slow_api.url).replace("page_size = 25", "page_size = 1"), encoding="utf-8")
    cli(services, fast_settings, catalog, "db", "migrate")
    fleet.start(2)
    cli(services, fast_settings, catalog, "enqueue", "--sources", "all", "--run-id", RUN_ID)
    wait_until(lambda: started(pg, "gh_issue_comments") > 0, 60, "a child job to start")
    both_running = started(pg, "gh_issues") > 0
    fleet.kill_worker(fleet.workers[0])  # worker and work horse, mid-job
    fleet.start(1)
    wait_until(lambda: started(pg, "gh_issue_comments") > 0, 60, "a child job to run again")
    fleet.kill_worker(fleet.workers[0])
    fleet.start(1)
    output = cli(services, fast_settings, catalog, "enqueue", "--sources", "all", "--run-id", RUN_ID, "--wait",
                 "--timeout", "180")
    assert stored_comments(pg) == expected_comments(range(1, ISSUES + 1)), output
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM fanout_parents WHERE run_id = %s GROUP BY status", (RUN_ID,))
        assert dict(cur.fetchall()) == {"done": ISSUES}
        cur.execute("SELECT count(*) FROM ingest_jobs WHERE run_id = %s AND status <> 'finished'", (RUN_ID,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(DISTINCT issue_number) FROM fx_issues")
        assert cur.fetchone()[0] == ISSUES
    assert "gh_issue_comments: parents processed 90, failed 0, not reached 0" in output
    assert both_running, "the parent job had ended before the first kill: the test did not test that"
