"""Workers and queues as RQ keeps them, through RQ's public API only: each worker's host, pid,
state, current job and heartbeat; each queue's depth by state, the age of its oldest waiting job,
and its scheduled (retries waiting their interval) and deferred jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

LISTED_JOBS = 20  # scheduled or deferred jobs listed per queue (the counts cover all of them)


@dataclass(frozen=True)
class JobLine:
    """A job as the console lists it: its id, source and run (from the job's meta) and a time."""

    job_id: str
    source: str | None
    run_id: str | None
    at: datetime | None  # started, enqueued or scheduled for, depending on the list


def workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Every live RQ worker: name, host, pid, state, queues, birth, last heartbeat and current job."""
    found = []
    for worker in Worker.all(connection=client, serializer=JSONSerializer):
        job = worker.get_current_job()
        current = _line(job, job.started_at) if job is not None else None
        found.append({"name": worker.name, "hostname": worker.hostname, "pid": worker.pid,
                      "state": str(worker.get_state()), "queues": worker.queue_names(),
                      "birth": worker.birth_date, "last_heartbeat": worker.last_heartbeat, "current_job": current})
    return sorted(found, key=lambda w: (str(w["hostname"]), str(w["name"])))


def queues(client: redis.Redis, now: datetime) -> list[dict[str, Any]]:
    """Every RQ queue: its jobs by state, its oldest waiting job and how long it has waited,
    its scheduled jobs with their time and its deferred jobs (at most :data:`LISTED_JOBS` each)."""
    found = []
    for queue in Queue.all(connection=client, serializer=JSONSerializer):
        oldest = _jobs(queue, queue.get_job_ids(0, 1))
        oldest_at = oldest[0].enqueued_at if oldest else None
        scheduled = queue.scheduled_job_registry
        scheduled_ids = scheduled.get_job_ids(0, LISTED_JOBS - 1)
        deferred_ids = queue.deferred_job_registry.get_job_ids(0, LISTED_JOBS - 1)
        found.append({
            "name": queue.name, "queued": queue.count, "started": queue.started_job_registry.count,
            "scheduled": scheduled.count, "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count, "finished": queue.finished_job_registry.count,
            "workers": Worker.count(connection=client, queue=queue),
            "oldest_queued_at": oldest_at,
            "oldest_queued_seconds": _age(oldest_at, now),
            "scheduled_jobs": [_line(job, scheduled.get_scheduled_time(job)) for job in _jobs(queue, scheduled_ids)],
            "deferred_jobs": [_line(job, job.enqueued_at) for job in _jobs(queue, deferred_ids)],
        })
    return sorted(found, key=lambda q: str(q["name"]))


def _jobs(queue: Queue, job_ids: list[str]) -> list[Job]:
    """The jobs of ``job_ids`` that still exist (one may expire between the two reads)."""
    return [job for job in Job.fetch_many(job_ids, connection=queue.connection, serializer=queue.serializer) if job]


def _line(job: Job, at: datetime | None) -> JobLine:
    meta = job.meta or {}
    source, run_id = meta.get("source"), meta.get("run_id")
    return JobLine(job.id, str(source) if source else None, str(run_id) if run_id else None, at)


def _age(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return round(max((now - aware).total_seconds(), 0.0), 1)
