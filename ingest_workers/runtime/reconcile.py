"""Enqueue again the jobs of a run that Redis lost.

Redis replicates asynchronously: when Sentinel promotes a replica, the writes the old
primary acknowledged last may be gone (a job just enqueued, its claim, seen-marks, counter
increments), and a Redis restarted without persistence has lost everything. RQ cannot
know about a job it no longer has. The run's job list is in PostgreSQL (``ingest_jobs``,
written by the producer before the jobs go to Redis), so a job listed there that has not
ended and that Redis no longer knows is enqueued again, with its id and arguments.

Safe to repeat: a job Redis knows is left alone, and a job that ran (or half ran) before
loads nothing twice when it runs again (PostgreSQL's unique keys; the cursor moves only
with what committed). ``ingest runs reconcile RUN_ID`` runs it once; ``ingest enqueue
--wait`` and ``ingest run`` run it whenever a job of theirs disappears from Redis.
"""

from __future__ import annotations

from rq.job import Job
from rq.queue import Queue

from ..core.config import Settings
from ..ops.history import JobHistory
from .producer import CLAIM_PREFIX, job_data


def lost_jobs(queue: Queue, job_list: JobHistory, run_id: str) -> list[str]:
    """Ids of the jobs of ``run_id`` not ended in PostgreSQL and unknown to Redis."""
    planned = job_list.unfinished(run_id)
    pipe = queue.connection.pipeline(transaction=False)
    for job in planned:
        pipe.exists(Job.key_for(job.job_id))
    return [job.job_id for job, known in zip(planned, pipe.execute()) if not known]


def reconcile_run(queue: Queue, settings: Settings, job_list: JobHistory, run_id: str) -> list[str]:
    """Enqueue again every job of ``run_id`` that Redis lost (see the module docstring); return their ids."""
    planned = {job.job_id: job for job in job_list.unfinished(run_id)}
    lost = lost_jobs(queue, job_list, run_id)
    claim_ttl = settings.result_ttl + settings.job_timeout
    for job_id in lost:
        job = planned[job_id]
        target = Queue(job.queue or queue.name, connection=queue.connection, serializer=queue.serializer)
        with queue.connection.pipeline() as pipe:
            pipe.set(CLAIM_PREFIX + job_id, run_id, ex=claim_ttl)  # the claim may be lost with the job
            target.enqueue_many([job_data(settings, job_id, job.source, run_id, job.args)], pipeline=pipe)
            pipe.execute()
    return lost
