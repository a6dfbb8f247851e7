"""A scheduled parent fans out exactly as an enqueued one (issue 24): `ingest schedule`'s scheduler fires
the GitHub-like issues source, real `rq worker` processes run its job and the child jobs it fans out,
and every comment the fixture serves is stored once, every parent done. The source's next slot is
skipped while a job its run fanned out has not ended, and fires once it has. A partitioned source
with a schedule runs each of its partitions."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.ops.history import UNFINISHED, JobHistory
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.scheduler import SourceScheduler
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github
from ingest_workers.testing.fleet import WorkerFleet
from tests.helpers import wait_until
from tests.integration.test_fan_out import (
    CATALOG,
    PICKED,
    SHOP_CATALOG,
    TABLES,
    expected_comments,
    ingest,
    stored_comments,
)

pytestmark = pytest.mark.integration

ISSUES = 30
HOUR = 3600


def run_ended(pg: psycopg2.extensions.connection, run_id: str, at_least: int = 2) -> bool:
    """The run listed its child jobs (``at_least`` jobs: with the parent's batches) and none of its jobs
    is unfinished."""
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE status = ANY(%s)), count(*) FROM ingest_jobs WHERE run_id = %s",
                    (list(UNFINISHED), run_id))
        unfinished, total = cur.fetchone()
    return total >= at_least and unfinished == 0


def test_a_scheduled_parent_fans_out_as_an_enqueued_one(services: Services, settings: Settings, tmp_path: Path,
                                                         pg: psycopg2.extensions.connection,
                                                         redis_client: redis.Redis) -> None:
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES)).start()
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    try:
        with pg, pg.cursor() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(CATALOG.format(url=server.url).replace("page_size = 25", f"page_size = 25\n"
                                                                   f"interval_seconds = {HOUR}"), encoding="utf-8")
        assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        found = load_catalog(catalog, {})
        now = [1_800_000_000.0 - 1_800_000_000.0 % HOUR + 60]
        scheduler = SourceScheduler(make_queue(redis_client, settings), settings, list(found.sources.values()),
                                    clock=lambda: now[0], sources=found.sources)
        assert [spec.name for spec in scheduler.specs] == ["gh_issues"]  # its child runs with it
        [fired] = scheduler.tick()
        run_id = fired.job_id.removesuffix("-gh_issues")
        fleet.start(2)
        wait_until(lambda: run_ended(pg, run_id), timeout=120)
    finally:
        fleet.close()
        server.stop()
    assert stored_comments(pg) == expected_comments(range(1, ISSUES + 1))
    summaries = {s.source: s for s in JobHistory(pg).summarise(run_id)}
    assert set(summaries) == {"gh_issues", "gh_issue_comments"}
    tally = summaries["gh_issue_comments"].parents
    assert tally is not None and (tally.done, tally.failed, tally.pending) == (ISSUES, 0, 0)
    assert summaries["gh_issue_comments"].failed == summaries["gh_issues"].failed == 0

    # the next slot: skipped while a job the run fanned out has not ended, fired once it has
    with pg, pg.cursor() as cur:
        cur.execute("UPDATE ingest_jobs SET status = 'enqueued' WHERE job_id = (SELECT min(job_id) FROM ingest_jobs "
                    "WHERE run_id = %s AND source = 'gh_issue_comments') RETURNING job_id", (run_id,))
        [(child,)] = cur.fetchall()
    now[0] += HOUR
    assert scheduler.tick() == []
    with pg, pg.cursor() as cur:
        cur.execute("UPDATE ingest_jobs SET status = 'finished' WHERE job_id = %s", (child,))
    assert [fired.source for fired in scheduler.tick()] == ["gh_issues"]


def test_a_scheduled_partitioned_source_runs_each_partition(services: Services, settings: Settings,
                                                              tmp_path: Path, pg: psycopg2.extensions.connection,
                                                              redis_client: redis.Redis) -> None:
    """A partitioned source with a schedule: the slot's run plans one parent per partition in the outbox
    and the workers load each partition's comments (a 404 partition skipped)."""
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES)).start()
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    try:
        with pg, pg.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS fx_board_comments")
        catalog = tmp_path / "catalog.toml"
        partitioned = SHOP_CATALOG[SHOP_CATALOG.index("[datasets.board_comments]"):SHOP_CATALOG.index("[sources.")]
        partitioned += SHOP_CATALOG[SHOP_CATALOG.index("[sources.picked_issues]"):]
        catalog.write_text(partitioned.format(url=server.url) + f"interval_seconds = {HOUR}\n", encoding="utf-8")
        assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        found = load_catalog(catalog, {})
        scheduler = SourceScheduler(make_queue(redis_client, settings), settings, list(found.sources.values()),
                                    clock=lambda: 1_800_000_000.0, sources=found.sources)
        [fired] = scheduler.tick()
        run_id = fired.job_id[:fired.job_id.index("-picked_issues-")]  # a child job's id: run, source, group
        fleet.start(1)
        wait_until(lambda: run_ended(pg, run_id, at_least=1), timeout=120)
    finally:
        fleet.close()
        server.stop()
    with pg, pg.cursor() as cur:
        cur.execute("SELECT comment_id, issue_number FROM fx_board_comments")
        assert dict(cur.fetchall()) == {c["id"]: n for n in PICKED for c in github.comments_of(n)}
    tally = {s.source: s for s in JobHistory(pg).summarise(run_id)}["picked_issues"].parents
    assert tally is not None and (tally.done, tally.failed, tally.pending) == (len(PICKED), 0, 0)
