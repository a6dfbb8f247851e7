"""``ingest schedule``: enqueue each source every ``interval_seconds``, or at the times of its
``schedule`` (five-field cron, UTC), as its catalog entry says (one or the other).

Time is cut into slots (:mod:`..core.schedules`): of a source's interval, counted from the Unix
epoch, or from one time its cron expression names to the next; so every scheduler on every
host agrees on them. Per source and tick, under a short Redis lock
(``ingest:schedule:lock:SOURCE``), a scheduler enqueues the current slot's run only if

* no scheduler has fired this slot yet (``ingest:schedule:SOURCE`` remembers the start of the
  last slot fired, in seconds: a slot is due when it starts later, so a changed
  ``interval_seconds`` fires at the next slot of the new interval instead of stalling), and
* the source's last scheduled job has ended, and every job it fanned out (child jobs, and
  theirs, in ``ingest_jobs``) too (one run in flight per source at most; a
  slot that passes while a run is still going is skipped, not queued up, and counted once
  across schedulers: ``skipped`` in that hash and ``ingest_schedule_slots_skipped_total``).

A slot's run is enqueued as ``ingest enqueue`` makes it (``runtime.fanout_plans``): its jobs listed in
the run's job list first; a partitioned source, or a child source with a schedule of its own (run
from its parent's stored records), has its child jobs planned in the outbox.

A scheduler that starts after a slot began (it was down at 03:00) fires that slot at once:
the latest missed slot is made up, once, never the ones before it.

The run id of a slot is deterministic (``sched-20261122T001500Z``), so even a scheduler
that dies between enqueueing and remembering cannot double-fire on restart: the
producer's ``SET NX`` claim on the job id refuses a second job for the same slot.

Why not RQ's own facilities: ``rq.cron.CronScheduler`` (rq 3.0) enqueues through a
``Queue`` without a serializer (pickle; our queues are JSON only), keeps the last run
time in process memory (two schedulers both fire, a restarted one fires again at once)
and knows nothing of runs in flight. ``rq.scheduler.RQScheduler`` only moves jobs that
were already scheduled (``enqueue_in``, ``Retry`` intervals) when due; our workers run
it with ``--with-scheduler`` for retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import LockError
from rq.job import Job
from rq.queue import Queue

from ..core.config import Settings
from ..core.connections import connect_postgres, redis_errors
from ..core.errors import ConfigError, ServiceUnavailable, TransientError
from ..core.models import SourceSpec
from ..core.schedules import describe, is_scheduled, slot_start
from ..ops.history import JobHistory
from ..ops.metrics import count_skipped_slot
from ..ops.watch import DONE
from .fanout_plans import enqueue_with_fan_out
from .producer import Enqueued

log = logging.getLogger(__name__)

STATE_PREFIX = "ingest:schedule:"
LOCK_PREFIX = "ingest:schedule:lock:"
LOCK_TIMEOUT = 30  # seconds; a decision takes milliseconds, this only frees the lock of a dead scheduler


@dataclass(frozen=True)
class Fired:
    source: str
    slot_start: datetime
    job_id: str
    created: bool  # False: the job of this slot existed already (a scheduler died after enqueueing it)


def slot_run_id(slot_start: datetime) -> str:
    return f"sched-{slot_start:%Y%m%dT%H%M%SZ}"


class SourceScheduler:
    """Decides, tick by tick, which scheduled sources are due, and enqueues them."""

    def __init__(self, queue: Queue, settings: Settings, specs: Sequence[SourceSpec],
                 clock: Callable[[], float] = time.time, sources: Mapping[str, SourceSpec] | None = None) -> None:
        self._queue = queue
        self._client = queue.connection
        self._settings = settings
        self._specs = [spec for spec in specs if is_scheduled(spec)]
        # the catalog's: where a child source with a schedule of its own finds its parent's stored records
        self._sources = dict(sources) if sources is not None else {spec.name: spec for spec in specs}
        if not self._specs:
            raise ConfigError("no selected source has interval_seconds or schedule in the catalog; "
                              "nothing to schedule")
        self._clock = clock
        self._waiting: dict[str, int] = {}  # source -> slot already reported as waiting for a run in flight

    @property
    def specs(self) -> list[SourceSpec]:
        return list(self._specs)

    def tick(self) -> list[Fired]:
        """Enqueue every source whose slot is due; return what was enqueued now."""
        moment = self._clock()
        with redis_errors():
            return [fired for spec in self._specs if (fired := self._fire_if_due(spec, moment))]

    def _fire_if_due(self, spec: SourceSpec, moment: float) -> Fired | None:
        slot = slot_start_seconds = slot_start(spec, moment)
        lock = self._client.lock(LOCK_PREFIX + spec.name, timeout=LOCK_TIMEOUT)
        if not lock.acquire(blocking=False):
            return None  # another scheduler is deciding for this source right now
        try:
            last_start, last_job, skipped = self._client.hmget(STATE_PREFIX + spec.name, "slot_start", "job_id",
                                                               "skipped_slot")
            if last_start is not None and int(last_start) >= slot_start_seconds:
                return None
            if last_job is not None and self._in_flight(spec, int(last_start or 0), last_job.decode()):
                self._skip(spec, slot, last_job.decode(), skipped)
                return None
            slot_time = datetime.fromtimestamp(slot_start_seconds, UTC)
            enqueued = self._enqueue(spec, slot_run_id(slot_time))
            self._client.hset(STATE_PREFIX + spec.name,
                              mapping={"slot_start": slot_start_seconds, "job_id": enqueued.job_id})
        finally:
            try:
                lock.release()
            except LockError:
                log.warning("source %s: the schedule lock expired while deciding", spec.name)
        if enqueued.created:
            log.info("source %s: enqueued job %s for the slot starting %s", spec.name, enqueued.job_id,
                     slot_time.isoformat())
        return Fired(spec.name, slot_time, enqueued.job_id, enqueued.created)

    def _skip(self, spec: SourceSpec, slot: int, last_job: str, skipped: bytes | None) -> None:
        """Count a slot passed over for a run in flight, once whichever scheduler sees it (under the lock)."""
        if skipped is None or int(skipped) != slot:
            self._client.hset(STATE_PREFIX + spec.name, "skipped_slot", slot)
            self._client.hincrby(STATE_PREFIX + spec.name, "skipped", 1)
            count_skipped_slot(self._client, spec.name)
        if self._waiting.get(spec.name) != slot:
            log.info("source %s: skipping this slot, its last run (job %s) is still in flight", spec.name, last_job)
            self._waiting[spec.name] = slot

    def _enqueue(self, spec: SourceSpec, run_id: str) -> Enqueued:
        """The slot's run of ``spec``, as ``ingest enqueue`` makes it (listed in the run's job list; a
        partitioned source or a child source: its child jobs planned in the outbox); its first job."""
        with closing(connect_postgres(self._settings.database_url)) as conn:
            enqueued = enqueue_with_fan_out(self._queue, self._settings, conn, [spec], run_id, self._sources)
        return enqueued[0] if enqueued else Enqueued(spec.name, "", False)  # a child with no parent stored yet

    def _in_flight(self, spec: SourceSpec, slot_start_seconds: int, job_id: str) -> bool:
        """Whether the source's last run goes on: its job, or a job it fanned out (child jobs and theirs)."""
        job = Job.fetch_many([job_id], connection=self._client, serializer=self._queue.serializer)[0] \
            if job_id else None
        if job is not None and job.get_status(refresh=False) not in DONE:
            return True
        if not (spec.children or spec.partitions or spec.parent):
            return False
        run_id = slot_run_id(datetime.fromtimestamp(slot_start_seconds, UTC))
        with closing(connect_postgres(self._settings.database_url)) as conn:
            return JobHistory(conn).fan_out_in_flight(run_id, spec.name, job_id)


def run_schedule(scheduler: SourceScheduler, stop: threading.Event, poll: float = 1.0) -> None:
    """Tick every ``poll`` seconds until ``stop`` is set. Redis trouble is logged and retried."""
    for spec in scheduler.specs:
        log.info("scheduling source %s %s", spec.name, describe(spec))
    while not stop.is_set():
        try:
            scheduler.tick()
        except (TransientError, ServiceUnavailable) as exc:
            log.warning("scheduler: %s; trying again", exc)
        stop.wait(poll)
