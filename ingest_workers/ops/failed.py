"""Failed fetch jobs, as RQ keeps them (the queue's ``FailedJobRegistry``): list them
with their source, error and attempts, put them back on the queue, or purge them."""

from __future__ import annotations

from dataclasses import dataclass

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from ..guards.quarantine import DEATHS_PREFIX


@dataclass(frozen=True)
class FailedJob:
    job_id: str
    source: str
    run_id: str
    error: str  # the quarantine reason, or the last line of the error
    deaths: int  # times its worker died under it


class FailedJobs:
    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._registry = FailedJobRegistry(queue=queue)

    def list(self) -> list[FailedJob]:
        jobs = Job.fetch_many(self._registry.get_job_ids(), connection=self._queue.connection,
                              serializer=self._queue.serializer)
        return [self._describe(job) for job in jobs if job is not None]

    def retry(self, job_ids: list[str], retries: int) -> list[str]:
        """Requeue these failed jobs with ``retries`` transient retries and a clean death count."""
        done = []
        for job_id in job_ids:
            job = self._queue.fetch_job(job_id)
            if job is None or job_id not in self._registry:
                continue
            job.meta.pop("quarantined", None)
            job.retries_left = retries or None
            job.save()
            self._queue.connection.delete(DEATHS_PREFIX + job_id)
            self._registry.requeue(job)
            done.append(job_id)
        return done

    def purge(self) -> int:
        """Delete every failed job (and its record in Redis); return how many."""
        job_ids = self._registry.get_job_ids()
        for job_id in job_ids:
            self._registry.remove(job_id, delete_job=True)
            self._queue.connection.delete(DEATHS_PREFIX + job_id)
        return len(job_ids)

    def _describe(self, job: Job) -> FailedJob:
        deaths = int(self._queue.connection.get(DEATHS_PREFIX + job.id) or 0)
        error = job.meta.get("quarantined") or _last_line(job)
        return FailedJob(job.id, str(job.meta.get("source", "?")), str(job.meta.get("run_id", "?")), error, deaths)


def _last_line(job: Job) -> str:
    """The job's error as one line: the exception line of its traceback (``ErrorType: message``),
    not the traceback's last line, which for a PostgreSQL error is the ``^`` under the query."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or ""
    return exception_line(text) or ("deferred too often: circuit open" if job.number_of_retries else "unknown")


def exception_line(traceback_text: str) -> str:
    """The first line after the last frame of a Python traceback (the last non-blank line when
    the text is no traceback), at most 300 characters."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    start = frames[-1] + 1 if frames else len(lines) - 1
    while frames and start < len(lines) - 1 and lines[start].startswith(" "):
        start += 1  # the frame's source line, and its ~~~^^^ markers
    return lines[start].strip()[:300] if lines else ""
