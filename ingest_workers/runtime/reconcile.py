"""Enqueue again the jobs of a run that Redis lost.

Redis replicates asynchronously: when Sentinel promotes a replica, the writes the old
primary acknowledged last may be gone (a job just enqueued, its claim, seen-marks, counter
increments), and a Redis restarted without persistence has lost everything. RQ cannot
know about a job it no longer has. The run's job list is in PostgreSQL (``ingest_jobs``,
written by the producer before the jobs go to Redis), so a job listed there that has not
ended and that Redis no longer knows is enqueued again, with its id and arguments.

Safe to repeat, and to run twice at once: a job Redis knows is left alone (looked at again in
the transaction that enqueues it, so reconcilers running at once enqueue a lost job once), and a
job that ran (or half ran) before loads nothing twice when it runs again (PostgreSQL's unique
keys; the cursor moves only with what committed). ``ingest runs reconcile RUN_ID`` runs it once; ``ingest enqueue
--wait`` and ``ingest run`` run it whenever a job of theirs disappears from Redis.
"""

from __future__ import annotations

from redis.exceptions import WatchError
from rq.job import Job
from rq.queue import Queue

from ..core.config import Settings
from ..ops.history import JobHistory, PlannedJob
from .producer import CLAIM_PREFIX, job_data


def lost_jobs(queue: Queue, job_list: JobHistory, run_id: str) -> list[str]:
    """Ids of the jobs of ``run_id`` not ended in PostgreSQL and unknown to Redis."""
    planned = job_list.unfinished(run_id)
    pipe = queue.connection.pipeline(transaction=False)
    for job in planned:
        pipe.exists(Job.key_for(job.job_id))
    return [job.job_id for job, known in zip(planned, pipe.execute()) if not known]


def reconcile_run(queue: Queue, settings: Settings, job_list: JobHistory, run_id: str) -> list[str]:
    """Enqueue again every job of ``run_id`` that Redis lost (see the module docstring); return the
    ids this call enqueued. Reconcilers running at once enqueue each lost job once between them."""
    planned = {job.job_id: job for job in job_list.unfinished(run_id)}
    return [job_id for job_id in lost_jobs(queue, job_list, run_id)
            if _enqueue_if_still_lost(queue, settings, planned[job_id], run_id)]


def _enqueue_if_still_lost(queue: Queue, settings: Settings, job: PlannedJob, run_id: str) -> bool:
    """Enqueue ``job`` unless Redis knows it by now, in one transaction under ``WATCH`` of its key:
    another reconciler that enqueued it meanwhile makes ``EXEC`` fail, and the look is taken again.
    (A ``SET NX`` of the claim cannot decide: the claim may have outlived the job it claimed.)"""
    target = Queue(job.queue or queue.name, connection=queue.connection, serializer=queue.serializer)
    key = Job.key_for(job.job_id)
    with queue.connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    return False
                pipe.multi()
                pipe.set(CLAIM_PREFIX + job.job_id, run_id, ex=settings.result_ttl + settings.job_timeout)
                target.enqueue_many([job_data(settings, job.job_id, job.source, run_id, job.args)], pipeline=pipe)
                pipe.execute()
                return True
            except WatchError:  # another reconciler enqueued it meanwhile: look again
                continue
