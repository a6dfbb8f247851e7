"""The RQ worker and queue classes to run: RQ's forking ``Worker`` with a shorter
abandoned-job deadline, worker deaths counted towards quarantine, and only this
package's jobs run.

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
opens no connection: the worker's :class:`~.resources.Resources` are built where the first job is
performed (in each work horse, or once in a ``SimpleWorker``) and served to each job
(:func:`.resources.serving`), so nothing is shared with the children.

A job in Redis names the function RQ imports and calls, and its callbacks, by dotted path; the JSON
serializer stops pickle, not a job naming ``os.mkdir``. :class:`IngestWorker` (and
:class:`IngestSimpleWorker`, RQ's ``SimpleWorker`` with the same check) looks at those names before
anything is imported or run, and moves a job naming anything but :data:`~.jobs.JOB_FUNCTIONS` and
:data:`~.jobs.JOB_CALLBACKS` to the failed registry with the reason, without retrying it or calling
its callbacks. A plain ``rq worker`` without these classes has no such check.

RQ holds its registry-cleaning lock for 899 s and releases it when done; a worker
SIGKILLed while cleaning would stop all cleaning for 15 minutes, so
:class:`IngestQueue` holds it for a minute only.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from contextlib import suppress
from functools import cache, cached_property
from importlib import resources
from types import FrameType
from typing import Any

from redis import Redis
from rq import Queue, worker_registration
from rq.exceptions import DequeueTimeout, DeserializationError
from rq.executions import Execution
from rq.job import Job
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from ..guards.quarantine import note_worker_death
from ..ops.logs import redact_log_records
from . import jobs  # (also preloaded, see the module docstring)
from .lifeline import POOL_DIED, children_die_with_this_process
from .resources import Resources, serving
from .rq_compat import callback_names

MAINTENANCE_LOCK_SECONDS = 60
# RQ's scheduler renews its lock to interval + 60 s every interval (1 s); a lock unrenewed this long
# belongs to a scheduler that died with its host, and would otherwise stop every retry for a minute.
SCHEDULER_SILENCE_SECONDS = 10
# An idle worker of several queues waits on its first queue this long before it looks at the others again
# (a child job enqueued while every worker idles starts this much later at most; 1 s cost a fan-out test 16 s)
OTHER_QUEUES_EVERY = 0.25


@cache
def _stale_scheduler_lock() -> str:
    return resources.files(__package__).joinpath("stale_scheduler_lock.lua").read_text(encoding="utf-8")


class IngestQueue(Queue):
    def acquire_maintenance_lock(self) -> bool:
        return bool(self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_SECONDS))

    @classmethod
    def lpop(cls, queue_keys: Sequence[str], timeout: int | None, connection: Redis | None = None) -> Any:
        """A worker of several queues (its queue and its children queue) takes each job as RQ takes it from
        one queue: moved into that queue's intermediate list (``LMOVE``), where RQ's maintenance finds a job
        whose worker died before it started and runs it again. RQ's own ``BLPOP`` over several lists took the
        job out of every list: a worker SIGKILLed between that pop and the started registry lost the job for
        good (its hash said queued, no list held it; the chaos run found it). The queues are looked at in
        order; the first is waited on, the others looked at again every :data:`OTHER_QUEUES_EVERY` seconds."""
        assert connection is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for key in queue_keys:
                if (taken := cls.lmove(connection, key, None)) is not None:
                    return taken
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise DequeueTimeout(timeout, queue_keys)
            with suppress(DequeueTimeout):
                return cls.lmove(connection, queue_keys[0], min(OTHER_QUEUES_EVERY, left))  # type: ignore[arg-type]


def refusal(job: Job) -> str | None:
    """Why a worker must not run ``job`` (it names a function or callback that is not one of this
    package's jobs, or data that is not JSON), or None. Reads the names only: nothing is imported."""
    try:
        function, instance = job.func_name, job.instance
    except DeserializationError:  # e.g. pickled: the JSON serializer cannot read it, and must not try harder
        return "refused: the job's data is not JSON (DeserializationError); ingest workers never unpickle"
    if function not in jobs.JOB_FUNCTIONS or instance is not None:
        return f"refused: ingest workers only run ingest_workers jobs, not {function}"
    # RQ imports a callback when it is read through its property: look at the stored names.
    for callback in callback_names(job):
        if callback not in jobs.JOB_CALLBACKS:
            return f"refused: ingest workers only run ingest_workers jobs, not the callback {callback}"
    return None


class OnlyIngestJobs:
    """Refuse, before running it, any job :func:`refusal` refuses (mixed into an RQ worker class);
    every log line of the worker, RQ's own included, redacted (``ops.logs.redact_log_records``);
    the scheduler process and the work horses the worker forks die with it (:mod:`.lifeline`)."""

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        redact_log_records()
        # Before RQ forks its scheduler (after bootstrap) and any horse. SIGTERM: the scheduler
        # stops and releases its lock; a horse (SIGTERM at its default) ends, its batch rolls back.
        children_die_with_this_process()
        if signal.getsignal(POOL_DIED) is not signal.SIG_IGN:  # under nohup, a hang-up stays ignored
            signal.signal(POOL_DIED, self.pool_died)
        super().bootstrap(*args, **kwargs)  # type: ignore[misc]

    def pool_died(self, signum: int, frame: FrameType | None) -> None:
        """The pool that started this worker died without stopping it: cold shutdown (nothing
        supervises this worker any more). RQ's teardown then stops the scheduler and unregisters."""
        worker: Any = self
        worker.log.warning("Worker %s: the pool that started it died; cold shutdown", worker.name)
        if worker.horse_pid:
            worker.kill_horse()
            worker.wait_for_horse()
        raise SystemExit(1)

    def unsubscribe(self) -> None:
        """Stop the pubsub thread before unsubscribing, so that the unsubscribe reply wakes it to end.

        RQ unsubscribes first, then stops the thread and waits for it; when the thread read the
        reply before its running flag was cleared (often, in a worker that had just stopped its
        scheduler), redis-py's ``get_message`` waited up to the thread's 60 s for a subscription
        that never came, and the worker with it: ``ingest run`` stalled 30 s after its jobs, silent,
        until it killed the worker (7 runs of 20 here; none of 25 since)."""
        worker: Any = self
        thread = worker.pubsub_thread
        if thread is not None:
            try:
                thread.stop(timeout=0)  # redis-py 8: clear the flag, no wait
            except TypeError:
                thread.stop()  # redis-py 5 to 7: stop() only clears the flag
        super().unsubscribe()  # type: ignore[misc]

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's, but the job leaves its queue's intermediate list whatever the number of queues: every
        dequeue puts it there (:meth:`IngestQueue.lpop`), not only with one queue as in RQ."""
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)  # type: ignore[misc]

    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = refusal(job)
        if reason is None:
            super().execute_job(job, queue)  # type: ignore[misc]
            return
        worker: Any = self
        worker.log.warning("Worker %s: job %s %s", worker.name, job.id, reason)
        job.retries_left = 0  # final: neither RQ's retries nor the job's own callbacks run
        job.ended_at = now()
        worker.connection.lrem(queue.intermediate_queue_key, 1, job.id)  # dequeued, never started
        worker.handle_job_failure(job, queue, exc_string=reason)

    @cached_property
    def job_resources(self) -> Resources:
        """The clients and redactor this worker's jobs use, from its environment; built on first use
        (in the work horse when the worker forks, so the parent builds none)."""
        return Resources.from_environment()

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """RQ's ``perform_job`` (the job, its callbacks, RQ's lines about it) with this worker's
        resources served to the job (:func:`.resources.serving`)."""
        with serving(self.job_resources):
            return super().perform_job(job, queue, execution)  # type: ignore[misc,no-any-return]


class IngestSimpleWorker(OnlyIngestJobs, SimpleWorker):
    """RQ's ``SimpleWorker`` (jobs run in the worker process) that runs only this package's jobs."""


class IngestWorker(OnlyIngestJobs, Worker):
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
