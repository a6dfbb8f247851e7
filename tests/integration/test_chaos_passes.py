"""The chaos run's merge passes (``testing/chaos_merge.MergePasses``), without workers: jobs end as
this test says (their rows in ``ingest_jobs``, RQ's record of them deleted, which counts as ended).

A pass whose job did not finish (it lost a page) runs its revision again before the next one is
served: a history dataset keeps every revision as a version, so a revision skipped for a page is
missing from the history for good (the chaos run's ``history_broken>0`` flake)."""

from __future__ import annotations

import psycopg2.extensions
import pytest
import redis

from ingest_workers.core.config import Settings
from ingest_workers.runtime.producer import make_queue
from ingest_workers.testing.chaos_merge import MergePasses, merge_specs
from ingest_workers.testing.mock_sources import MockConfig, MockServer

pytestmark = pytest.mark.integration


def end_jobs(pg: psycopg2.extensions.connection, client: redis.Redis, run_id: str, job_ids: list[str],
             last_status: str) -> None:
    """The pass's jobs ended: each finished but the last, which ended ``last_status``."""
    with pg, pg.cursor() as cur:
        for job_id in job_ids:
            cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status) VALUES (%s, %s, %s, %s)",
                        (job_id, run_id, job_id.removeprefix(f"{run_id}-"),
                         last_status if job_id == job_ids[-1] else "finished"))
    client.delete(*(f"rq:job:{job_id}" for job_id in job_ids))


def test_a_pass_that_lost_a_page_serves_its_revision_again_before_the_next(
        settings: Settings, redis_client: redis.Redis, pg: psycopg2.extensions.connection) -> None:
    server = MockServer("127.0.0.1", 0, MockConfig(records=10))  # never started: only its revision is read
    try:
        passes = MergePasses(merge_specs(["chaos_merge_0", "chaos_merge_1"], server.url, 10, 5.0), 3, server,
                             settings.database_url)
        queue = make_queue(redis_client, settings)
        served = []
        for last_status in ("partial", "finished", "finished", "failed", "finished"):
            jobs = passes.advance(queue, settings)
            assert len(jobs) == 2 and passes.revision == server.config.revision
            served.append(passes.revision)
            end_jobs(pg, redis_client, next(reversed(passes.runs)), jobs, last_status)
        # revision 0 again after its pass lost a page, then 1 and 2, and 2 again after a failed job
        assert served == [0, 0, 1, 2, 2]
        assert passes.advance(queue, settings) == [] and not passes.pending(queue)
        assert passes.repeats == 2 and sorted(passes.runs.values()) == [0, 0, 1, 2, 2]
    finally:
        server.server_close()
