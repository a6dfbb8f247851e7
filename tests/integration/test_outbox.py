"""The fan-out outbox (load.outbox) and its relay (runtime.relay) on the real PostgreSQL and Redis:
parents planned once per run, grouped into child jobs with deterministic ids, listed in the run's
job list in the same transaction, relayed to the children queue once however often relayed."""

from __future__ import annotations

import psycopg2.extensions
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from ingest_workers.core.config import Settings
from ingest_workers.load.outbox import (
    DONE,
    FAILED,
    Parent,
    child_job_id,
    listed_children,
    mark_parent,
    parent_tallies,
    pending_parents,
    plan_children,
)
from ingest_workers.ops.history import JobHistory
from ingest_workers.runtime.relay import children_queue, relay
from tests.helpers import scalar

pytestmark = pytest.mark.integration

CHILD = {"name": "comments", "kind": "http_json", "dataset": "posts", "parents_per_job": 3}


def parents(numbers: range) -> list[Parent]:
    return [Parent(str(n), {"number": n, "title": f"issue {n}"}) for n in numbers]


def plan(pg: psycopg2.extensions.connection, numbers: range, run_id: str = "run-1") -> list:
    with pg, pg.cursor() as cur:
        return plan_children(cur, run_id, CHILD, "ingest-test-children", parents(numbers), "run-1-issues")


def test_parents_are_grouped_into_jobs_with_ids_of_their_keys(pg: psycopg2.extensions.connection) -> None:
    jobs = plan(pg, range(1, 8))
    assert [job.job_id for job in jobs] == [child_job_id("run-1", "comments", keys)
                                            for keys in (["1", "2", "3"], ["4", "5", "6"], ["7"])]
    assert all(job.args == [CHILD, "run-1", {"parent_job": "run-1-issues"}] for job in jobs)
    assert [p.key for p in pending_parents(pg, jobs[1].job_id)] == ["4", "5", "6"]
    assert pending_parents(pg, jobs[2].job_id)[0].record == {"number": 7, "title": "issue 7"}
    listed = JobHistory(pg).unfinished("run-1")
    assert {job.job_id for job in listed} == {job.job_id for job in jobs}
    assert {job.queue for job in listed} == {"ingest-test-children"}
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE parent_job = 'run-1-issues'") == 3


def test_a_batch_planned_again_plans_nothing_twice(pg: psycopg2.extensions.connection) -> None:
    first = plan(pg, range(1, 5))
    assert plan(pg, range(1, 5)) == []  # the batch ran again after a crash past its commit
    again = plan(pg, range(3, 7))  # a later batch repeating two parents: only 5 and 6 are new
    assert [p.key for p in pending_parents(pg, again[0].job_id)] == ["5", "6"]
    assert scalar(pg, "SELECT count(*) FROM fanout_parents") == 6
    assert len(first) == 2
    assert len(plan(pg, range(1, 5), run_id="run-2")) == 2  # another run fans out the same parents again


def test_a_rolled_back_batch_leaves_no_parent_and_no_job(pg: psycopg2.extensions.connection) -> None:
    with pytest.raises(RuntimeError), pg, pg.cursor() as cur:
        plan_children(cur, "run-1", CHILD, "q", parents(range(1, 4)), "run-1-issues")
        raise RuntimeError("the batch failed after its parents were written")
    assert scalar(pg, "SELECT count(*) FROM fanout_parents") == 0
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs") == 0


def test_done_parents_are_not_pending_and_are_tallied(pg: psycopg2.extensions.connection) -> None:
    job = plan(pg, range(1, 4))[0]
    with pg, pg.cursor() as cur:
        mark_parent(cur, "run-1", "comments", "1", DONE)
        mark_parent(cur, "run-1", "comments", "2", FAILED, "url: the parent has no value at parent.number")
    assert [p.key for p in pending_parents(pg, job.job_id)] == ["3"]
    tally = parent_tallies(pg, "run-1")["comments"]
    assert (tally.done, tally.failed, tally.pending) == (1, 1, 1)


def test_relaying_twice_enqueues_each_child_job_once(pg: psycopg2.extensions.connection,
                                                     redis_client: redis.Redis, settings: Settings) -> None:
    jobs = plan(pg, range(1, 8))
    assert relay(redis_client, settings, "run-1", jobs) == [job.job_id for job in jobs]
    assert relay(redis_client, settings, "run-1", listed_children(pg, "run-1-issues")) == []
    queue = Queue("ingest-test-children", connection=redis_client, serializer=JSONSerializer)
    assert sorted(queue.job_ids) == sorted(job.job_id for job in jobs)
    assert queue.fetch_job(jobs[0].job_id).func_name == "ingest_workers.runtime.jobs.fetch_children"


def test_children_queues_come_after_every_other_queue() -> None:
    from ingest_workers.runtime.relay import with_children_queues
    assert children_queue("ingest") == "ingest-children"
    assert children_queue("ingest-children") == "ingest-children"
    assert with_children_queues(["ingest", "slow"]) == ["ingest", "slow", "ingest-children", "slow-children"]


def test_child_jobs_committed_but_never_relayed_are_enqueued_by_reconcile(
        pg: psycopg2.extensions.connection, redis_client: redis.Redis, settings: Settings) -> None:
    from ingest_workers.runtime.producer import make_queue
    from ingest_workers.runtime.reconcile import reconcile_run
    jobs = plan(pg, range(1, 5))  # the parent's batch committed; its worker died before the relay
    again = reconcile_run(make_queue(redis_client, settings), settings, JobHistory(pg), "run-1")
    assert sorted(again) == sorted(job.job_id for job in jobs)
    queue = Queue("ingest-test-children", connection=redis_client, serializer=JSONSerializer)
    assert sorted(queue.job_ids) == sorted(again)
    job = queue.fetch_job(jobs[0].job_id)
    assert (job.func_name, list(job.args)) == ("ingest_workers.runtime.jobs.fetch_children", jobs[0].args)
    assert relay(redis_client, settings, "run-1", jobs) == []  # the parent's retry relays nothing twice
