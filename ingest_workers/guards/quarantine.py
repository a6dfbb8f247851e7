"""Jobs whose worker died under them: run them again, but not forever.

A job is "abandoned" when its worker process vanished mid-job (SIGKILL, OOM
killer, a lost host). RQ notices in two ways and both end here:

* the forking worker's parent sees its work horse die at once
  (:meth:`ingest_workers.runtime.worker.IngestWorker.handle_work_horse_killed`);
* if the whole worker died, ``StartedJobRegistry.cleanup`` finds the job's
  heartbeat expired and calls the job's failure callback with ``AbandonedJobError``.

Each death is counted in Redis per job id, and the count is cleared whenever the
job gets past the page it had reached before (:mod:`progress`): what is counted
is deaths without progress. Below ``max_kills`` the job gets one more run (a
death is not the job's fault, so it does not use up the retries meant for
transient errors); at ``max_kills`` it is quarantined: failed with its reason,
for ``ingest failed list`` to show, instead of looping.
"""

from __future__ import annotations

from typing import Any

import redis

DEATHS_PREFIX = "ingest:deaths:"
DEFAULT_MAX_KILLS = 3
DEATHS_TTL = 7 * 86400


def note_worker_death(job: Any, connection: redis.Redis) -> bool:
    """Count one death of ``job``'s worker and set its retries accordingly; True when quarantined.

    ``job`` is an ``rq.job.Job``; its ``retries_left`` decides what RQ does next.
    """
    key = DEATHS_PREFIX + job.id
    pipe = connection.pipeline()
    pipe.incr(key)
    pipe.expire(key, DEATHS_TTL)
    deaths = int(pipe.execute()[0])
    max_kills = int(job.meta.get("max_kills", DEFAULT_MAX_KILLS))
    if deaths >= max_kills:
        job.retries_left = 0
        job.meta["quarantined"] = (f"quarantined: its worker died {deaths} times without progress "
                                   f"(max_kills={max_kills})")
        job.save_meta()
        return True
    job.retries_left = (job.retries_left or 0) + 1  # RQ takes one back when it re-runs the job
    return False


def deaths(connection: redis.Redis, job_id: str) -> int:
    return int(connection.get(DEATHS_PREFIX + job_id) or 0)
