"""The few things this package needs from RQ that its public API does not offer, in one place.

Everything else uses RQ's public API. Each helper here leans on a detail of RQ's that may change
with an upgrade; ``tests/unit/test_rq_compat.py`` checks each one against the installed RQ, so an
upgrade that breaks one fails that test instead of a worker in production.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.queue import EnqueueData

# The fields of a job's hash in Redis (``Job.to_dict()``) naming its callbacks: read as stored, because
# RQ imports a callback when it is read through its property (``job.failure_callback``).
CALLBACK_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name")


def callback_names(job: Job) -> list[str]:
    """The dotted paths of ``job``'s success, failure and stopped callbacks (those it has), without
    importing them."""
    stored = job.to_dict(include_meta=False, include_result=False)
    return [name for name in (stored.get(field) for field in CALLBACK_FIELDS) if name]


def create_job_kwargs(data: EnqueueData) -> dict[str, Any]:
    """``Queue.create_job``'s keyword arguments for a job prepared by ``Queue.prepare_data`` (what
    ``Queue.enqueue_many`` does inside; RQ has no public way to make one job of it). ``at_front``
    is not the job's but the enqueueing's: pass it to ``Queue.enqueue_job``."""
    fields = data._asdict()
    del fields["at_front"]
    return fields


# The worker name RQ's synchronous mode (``Queue(is_async=False)``) gives the job it runs in this process
SYNC_WORKER_NAME = "sync"


def runs_synchronously(job: Job | None) -> bool:
    """Whether ``job`` runs in RQ's synchronous mode (an inline run), not under a worker."""
    return job is not None and job.worker_name == SYNC_WORKER_NAME
