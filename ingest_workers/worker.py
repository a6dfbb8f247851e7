"""The RQ worker class to run: RQ's forking ``Worker`` with a shorter abandoned-job
deadline and worker deaths counted towards quarantine.

Run it with ``rq worker --worker-class ingest_workers.worker.IngestWorker
--job-monitoring-interval 5 --maintenance-interval 10 ...`` (see
:func:`ingest_workers.workerpool.worker_command`).

Why RQ's own mechanism: the parent process already heartbeats every
``job_monitoring_interval`` and extends the job's entry in the
``StartedJobRegistry``; ``clean_registries`` (every ``maintenance_interval``)
retries or fails entries whose deadline passed. RQ adds a fixed 60 s of grace
to each heartbeat, so a dead worker's job waits at least 60 s plus the
maintenance interval (10 min by default). Here the grace is two monitoring
intervals: a job is taken over after ``3 * job_monitoring_interval +
maintenance_interval`` at most.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.worker import Worker

from .quarantine import note_worker_death


class IngestWorker(Worker):
    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(job.timeout - working_time, interval)
        return int(max(interval, 1)) + 2 * self.job_monitoring_interval

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if note_worker_death(job, self.connection):
            self.log.warning("job %s quarantined: %s", job.id, job.meta.get("quarantined"))
