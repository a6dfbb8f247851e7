"""Queue depths and live workers, read from RQ's own registries (for metrics and status)."""

from __future__ import annotations

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer


def queue_depths(client: redis.Redis) -> list[tuple[str, str, int]]:
    """(queue, state, jobs) for every RQ queue and state, from RQ's own registries."""
    depths = []
    for queue in Queue.all(connection=client, serializer=JSONSerializer):
        registries = {"queued": queue, "started": queue.started_job_registry,
                      "scheduled": queue.scheduled_job_registry, "deferred": queue.deferred_job_registry,
                      "failed": queue.failed_job_registry, "finished": queue.finished_job_registry}
        depths += [(queue.name, state, registry.count) for state, registry in registries.items()]
    return depths


def worker_counts(client: redis.Redis) -> dict[str, int]:
    """Live RQ workers listening on each queue."""
    return {queue.name: Worker.count(connection=client, queue=queue)
            for queue in Queue.all(connection=client, serializer=JSONSerializer)}
