"""The two ways ``ingest run`` executes a run on this machine, and its time limit.

- Inline (``--workers 0``): every job runs in this process through RQ's synchronous
  mode (``Queue(is_async=False)``): the same job function, callbacks and bookkeeping in
  Redis as under a worker, so a breakpoint in a source or a stage stops right here.
- N local workers: the jobs are enqueued and ``rq worker`` processes take them; when
  the time limit passes, :func:`stop_unfinished` cancels the jobs not started yet and
  stops the running ones with RQ's stop-job command.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import EnqueueData, Queue
from rq.timeouts import JobTimeoutException

from ..core.config import Settings
from ..core.models import SourceSpec
from ..ops.watch import DONE
from .producer import Enqueued, PlannedJob, check_run_id, claim_jobs, job_id_for
from .rq_compat import create_job_kwargs


@dataclass(frozen=True)
class RunOutcome:
    """What a run on this machine did: its jobs and, by job id, what happened to those that did
    not finish (``unfinished``) and why (``why``, e.g. the time limit, Ctrl+C)."""

    run_id: str
    enqueued: list[Enqueued]
    unfinished: dict[str, str] = field(default_factory=dict)
    why: str = ""

    def unfinished_sources(self) -> dict[str, str]:
        """What happened to the jobs that did not finish, by source, with why."""
        sources = {item.job_id: item.source for item in self.enqueued}
        return {sources[job_id]: f"{what} ({self.why})" if self.why else what
                for job_id, what in self.unfinished.items()}


NOT_STARTED = "cancelled before it started"
WAITING = "cancelled while it waited to run again"  # a retry, or deferred while its circuit is open
STOPPED = "stopped while running"
INTERRUPTED = "interrupted (Ctrl+C)"


def run_inline(queue: Queue, settings: Settings, specs: Sequence[SourceSpec], run_id: str,
               deadline: float | None = None,
               on_job: Callable[[int, int, Enqueued], None] = lambda index, total, item: None,
               ) -> tuple[list[Enqueued], dict[str, str]]:
    """Run one job per source of ``specs`` now, one after the other, in this process.

    ``queue`` must be synchronous. ``deadline`` (``time.monotonic()``) stops the job
    running when it passes and leaves the rest unrun. Returns the jobs and, by job id,
    what happened to those that did not finish.
    """
    check_run_id(run_id)
    enqueued, datas = claim_jobs(queue, settings, run_id,
                                 [PlannedJob(spec, job_id_for(run_id, spec.name)) for spec in specs])
    by_id = {item.job_id: item for item in enqueued}
    unfinished: dict[str, str] = {}
    with _interruptible() as interrupted:
        for index, data in enumerate(datas):
            remaining = None if deadline is None else deadline - time.monotonic()
            if interrupted or (remaining is not None and remaining <= 0):
                unfinished.update((d.job_id, NOT_STARTED) for d in datas[index:])
                break
            on_job(index, len(datas), by_id[data.job_id])
            try:
                in_time = _run_one(queue, data, remaining)
            except KeyboardInterrupt:  # it came between RQ's steps, outside the job
                in_time = True
            if interrupted:
                unfinished[data.job_id] = INTERRUPTED
            elif not in_time:
                unfinished[data.job_id] = STOPPED
    return enqueued, unfinished


def _run_one(queue: Queue, data: EnqueueData, remaining: float | None) -> bool:
    """Enqueue one job on the synchronous queue (which runs it); False if the time limit
    stopped it. One at a time, not ``enqueue_many``: that writes each job's hash after
    running it, over its end state."""
    # No RQ retry inline: nothing would run the retry later (HTTP requests still retry).
    job = queue.create_job(**create_job_kwargs(data._replace(retry=None)))
    if remaining is None:
        queue.enqueue_job(job)
        return True
    started = time.monotonic()
    try:
        with _time_limit(remaining):
            queue.enqueue_job(job)
    except JobTimeoutException:
        pass  # the alarm rang after the job itself, in RQ's bookkeeping
    return time.monotonic() - started < remaining or job.get_status(refresh=True) == JobStatus.FINISHED


@contextmanager
def _interruptible() -> Iterator[list[bool]]:
    """Ctrl+C ends the inline run after the job in hand (RQ's synchronous mode records the
    interrupt as the job's failure and would go on with the next job). The list is true once
    interrupted."""
    interrupted: list[bool] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`JobTimeoutException` in the block after ``seconds`` (RQ's own death penalty
    counts whole seconds), as a worker does in its job; the job records it as its failure."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise JobTimeoutException("stopped: the run's time limit passed")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def stop_unfinished(queue: Queue, job_ids: Sequence[str], stop_running: bool = True) -> dict[str, str]:
    """Cancel the jobs of ``job_ids`` not started yet (queued, or waiting for a retry) and,
    with ``stop_running``, stop the running ones (RQ's stop-job command: the worker kills the
    job's process, so its uncommitted batch rolls back). Returns what happened to each, by job id."""
    outcome: dict[str, str] = {}
    # Looked at again after a moment: a worker may have taken a job between our look and our
    # cancel, or may still be scheduling a failed job's retry (RQ sets the status first).
    for pause in (0.0, 0.5, 0.5):
        time.sleep(pause)
        for job in Job.fetch_many(list(job_ids), connection=queue.connection, serializer=queue.serializer):
            if job is None or outcome.get(job.id) == STOPPED:
                continue
            status = job.get_status(refresh=False)
            try:
                if status == JobStatus.STARTED and not stop_running:
                    continue
                if status == JobStatus.STARTED:
                    send_stop_job_command(queue.connection, job.id, serializer=queue.serializer)
                    outcome[job.id] = STOPPED
                elif status not in DONE:
                    job.cancel()
                    outcome[job.id] = WAITING if status == JobStatus.SCHEDULED else NOT_STARTED
            except (InvalidJobOperation, NoSuchJobError):
                continue  # it ended or was cancelled meanwhile
    return outcome
