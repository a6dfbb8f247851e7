"""Fan-out's relay: the child jobs planned in PostgreSQL (``load.outbox``) go to Redis.

A parent job relays the children of each batch right after the batch's commit, and relays every
child it planned and that has not started yet when it runs again (a worker killed between a commit
and the enqueue). Each job id is claimed (``SET NX`` semantics, under ``WATCH`` in one
``MULTI``/``EXEC`` with the job), so relaying twice, or from two places, enqueues a job once.
``ingest run``, ``enqueue --wait`` and ``ingest runs reconcile`` enqueue again what Redis lost from
the run's list in ``ingest_jobs``, where the child jobs are listed too.

Fairness: child jobs go to a queue of their own, ``<queue>-children``, which every worker listens
to after all its other queues (:func:`with_children_queues`). RQ takes a worker's queues in order,
so a source job enqueued after a fan-out of thousands of child jobs is the next job a worker takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.exceptions import WatchError
from rq import Queue
from rq.serializers import JSONSerializer

from ..core.config import Settings
from ..load.outbox import ChildJob
from .producer import CLAIM_PREFIX, job_data, retry_intervals

CHILDREN_SUFFIX = "-children"


def children_queue(queue: str) -> str:
    """The queue of the child jobs fanned out by jobs of ``queue``."""
    return queue if queue.endswith(CHILDREN_SUFFIX) else queue + CHILDREN_SUFFIX


def with_children_queues(queues: Sequence[str]) -> list[str]:
    """``queues`` (in priority order), then their children queues: a worker takes a child job only
    when no other job waits."""
    main = [name for name in queues if not name.endswith(CHILDREN_SUFFIX)]
    return list(dict.fromkeys([*main, *(children_queue(name) for name in queues)]))


def relay(connection: redis.Redis, settings: Settings, run_id: str, jobs: Sequence[ChildJob]) -> list[str]:
    """Enqueue each of ``jobs`` whose id nobody claimed yet; return the ids enqueued now."""
    if not jobs:
        return []
    retry_intervals(settings)  # a bad setting fails before anything is claimed
    keys = [CLAIM_PREFIX + job.job_id for job in jobs]
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*keys)
                new = [job for job, owner in zip(jobs, pipe.mget(keys)) if owner is None]
                pipe.multi()
                _claim_and_enqueue(pipe, connection, settings, run_id, new)
                pipe.execute()
                return [job.job_id for job in new]
            except WatchError:  # another relay claimed one of these ids meanwhile: look again
                continue


def _claim_and_enqueue(pipe: redis.client.Pipeline, connection: redis.Redis, settings: Settings, run_id: str,
                       jobs: Sequence[ChildJob]) -> None:
    by_queue: dict[str, list[ChildJob]] = {}
    for job in jobs:
        pipe.set(CLAIM_PREFIX + job.job_id, run_id, ex=settings.result_ttl + settings.job_timeout)
        by_queue.setdefault(job.queue, []).append(job)
    for name, queued in by_queue.items():
        Queue(name, connection=connection, serializer=JSONSerializer).enqueue_many(
            [job_data(settings, job.job_id, job.source, run_id, job.args) for job in queued], pipeline=pipe)
