"""The RQ worker and queue classes to run: RQ's forking ``Worker`` with a shorter
abandoned-job deadline and worker deaths counted towards quarantine.

Run it with ``rq worker --worker-class ingest_workers.runtime.worker.IngestWorker
--queue-class ingest_workers.runtime.worker.IngestQueue --job-monitoring-interval 5
--maintenance-interval 10 --worker-ttl 25 ...`` (see
:func:`ingest_workers.runtime.workerpool.worker_command`).

Why RQ's own mechanism: the parent process already heartbeats every
``job_monitoring_interval`` and extends the job's entry in the
``StartedJobRegistry``; ``clean_registries`` (every ``maintenance_interval``)
retries or fails entries whose deadline passed, calling the job's failure
callback with ``AbandonedJobError``. RQ adds a fixed 60 s of grace to each
heartbeat and cleans every 10 minutes by default; here the grace is two
monitoring intervals. An idle worker runs maintenance only between two blocking
dequeues (``worker_ttl - 15`` seconds each), so a job whose worker died is
taken over after at most ``3 * job_monitoring_interval + max(maintenance_interval,
worker_ttl - 15)`` seconds.

Importing this module also imports :mod:`ingest_workers.runtime.jobs` (and the whole pipeline) into the
worker's parent process: every job's work horse is a fork of it and inherits the code instead of
importing it again, which cost each job about 80 ms (measured in BENCHMARKS.md). The parent
opens no connection (``resources`` are per pid), so nothing is shared with the children.

RQ holds its registry-cleaning lock for 899 s and releases it when done; a worker
SIGKILLed while cleaning would stop all cleaning for 15 minutes, so
:class:`IngestQueue` holds it for a minute only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from rq import Queue, worker_registration
from rq.executions import Execution
from rq.job import Job
from rq.worker import Worker

from ..guards.quarantine import note_worker_death
from . import jobs  # noqa: F401  (preloaded, see the module docstring)

MAINTENANCE_LOCK_SECONDS = 60
# RQ's scheduler renews its lock to interval + 60 s every interval (1 s); a lock unrenewed this long
# belongs to a scheduler that died with its host, and would otherwise stop every retry for a minute.
SCHEDULER_SILENCE_SECONDS = 10


@cache
def _stale_scheduler_lock() -> str:
    return resources.files(__package__).joinpath("stale_scheduler_lock.lua").read_text(encoding="utf-8")


class IngestQueue(Queue):
    def acquire_maintenance_lock(self) -> bool:
        return bool(self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_SECONDS))


class IngestWorker(Worker):
    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(job.timeout - working_time, interval)
        return int(max(interval, 1)) + 2 * self.job_monitoring_interval

    def run_maintenance_tasks(self) -> None:
        """Free the scheduler lock of a dead scheduler first, so this worker's scheduler can take over now."""
        if self.scheduler is not None:
            free = self.connection.register_script(_stale_scheduler_lock())
            for queue in self.queues:
                if free(keys=[self.scheduler.get_locking_key(queue.name)],
                        args=[self.scheduler.interval + 60, SCHEDULER_SILENCE_SECONDS]):
                    self.log.warning("scheduler lock of %s freed: its holder stopped renewing it", queue.name)
        super().run_maintenance_tasks()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self.register_again_if_dropped()

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        super().maintain_heartbeats(job, execution)
        self.register_again_if_dropped()

    def register_again_if_dropped(self) -> None:
        """A worker whose host was cut off longer than its key's TTL was removed from RQ's registry by
        another worker's clean-up; RQ's heartbeat would only recreate a bare key, so the worker ran on
        unlisted (no ``ingest_workers``, no ``rq info``) until it restarted. Register it again."""
        if self.connection.sismember(worker_registration.REDIS_WORKER_KEYS, self.key):
            return
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        self.log.warning("worker %s was dropped from the registry (cut off from Redis?); registered again", self.name)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """The parent saw its work horse die (SIGKILL, OOM, a crash): count it, maybe quarantine."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if note_worker_death(job, self.connection):
            self.log.warning("job %s quarantined: %s", job.id, job.meta.get("quarantined"))
