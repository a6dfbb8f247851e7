"""The two ways ``ingest run`` executes a run on this machine, and its time limit.

- Inline (``--workers 0``): every job runs in this process through RQ's synchronous
  mode (``Queue(is_async=False)``): the same job function, callbacks and bookkeeping in
  Redis as under a worker, so a breakpoint in a source or a stage stops right here. Fan-out's
  child jobs never go to Redis then: once the sources' jobs ran, the run takes the child jobs
  listed in its job list (:func:`listed_children`), wave after wave, until none is left.
- N local workers: the jobs are enqueued and ``rq worker`` processes take them; when
  the time limit passes, :func:`stop_unfinished` cancels the jobs not started yet and
  stops the running ones with RQ's stop-job command.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

import psycopg2.extensions
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import EnqueueData, Queue
from rq.timeouts import JobTimeoutException

from ..core.config import Settings
from ..core.models import SourceSpec
from ..ops.history import JobHistory
from ..ops.watch import DONE
from .fanout_plans import plan_fan_out, split_fan_out
from .producer import Enqueued, PlannedJob, check_run_id, claim_ids, claim_jobs, is_child_job, job_data, job_id_for
from .rq_compat import create_job_kwargs

Wave = list[tuple[Enqueued, EnqueueData]]  # jobs an inline run takes in turn, ready to run


@dataclass(frozen=True)
class RunOutcome:
    """What a run on this machine did: its jobs and, by job id, what happened to those that did
    not finish (``unfinished``) and why (``why``, e.g. the time limit, Ctrl+C)."""

    run_id: str
    enqueued: list[Enqueued]
    unfinished: dict[str, str] = field(default_factory=dict)
    why: str = ""

    def unfinished_sources(self) -> dict[str, str]:
        """What happened to the jobs that did not finish, by source (a child job of a fan-out: by its
        id, which names its source), with why."""
        sources = {item.job_id: item.source for item in self.enqueued}
        return {sources.get(job_id, job_id): f"{what} ({self.why})" if self.why else what
                for job_id, what in self.unfinished.items()}


NOT_STARTED = "cancelled before it started"
WAITING = "cancelled while it waited to run again"  # a retry, or deferred while its circuit is open
STOPPED = "stopped while running"
INTERRUPTED = "interrupted (Ctrl+C)"


def run_inline(queue: Queue, settings: Settings, specs: Sequence[SourceSpec], run_id: str,
               deadline: float | None = None,
               on_job: Callable[[int, int, Enqueued], None] = lambda index, total, item: None,
               children: Callable[[], Wave] = lambda: [],
               ) -> tuple[list[Enqueued], dict[str, str]]:
    """Run one job per source of ``specs`` now, one after the other, in this process; then, wave
    after wave, the child jobs ``children`` returns (those the jobs run so far planned), until it
    returns none.

    ``queue`` must be synchronous. ``deadline`` (``time.monotonic()``) stops the job
    running when it passes and leaves the rest unrun. Returns the jobs and, by job id,
    what happened to those that did not finish.
    """
    check_run_id(run_id)
    enqueued, datas = claim_jobs(queue, settings, run_id,
                                 [PlannedJob(spec, job_id_for(run_id, spec.name)) for spec in specs])
    by_id = {item.job_id: item for item in enqueued}
    unfinished: dict[str, str] = {}
    wave: Wave = [(by_id[data.job_id], data) for data in datas]
    with _interruptible() as interrupted:
        in_time = _run_wave(queue, wave, deadline, interrupted, unfinished, on_job)
        while in_time and (wave := children()):
            enqueued += [item for item, _ in wave]
            in_time = _run_wave(queue, wave, deadline, interrupted, unfinished, on_job)
        left = children()  # planned by the jobs that ran, never started
        enqueued += [item for item, _ in left]
        unfinished.update((item.job_id, NOT_STARTED) for item, _ in left)
    return enqueued, unfinished


def _run_wave(queue: Queue, wave: Wave, deadline: float | None, interrupted: list[bool], unfinished: dict[str, str],
              on_job: Callable[[int, int, Enqueued], None]) -> bool:
    """Run the jobs of ``wave`` in order; False if the time limit or Ctrl+C left some unrun."""
    for index, (item, data) in enumerate(wave):
        remaining = None if deadline is None else deadline - time.monotonic()
        if interrupted or (remaining is not None and remaining <= 0):
            unfinished.update((later.job_id, NOT_STARTED) for later, _ in wave[index:])
            return False
        on_job(index, len(wave), item)
        try:
            in_time = _run_one(queue, data, remaining)
        except KeyboardInterrupt:  # it came between RQ's steps, outside the job
            in_time = True
        if interrupted:
            unfinished[item.job_id] = INTERRUPTED
        elif not in_time:
            unfinished[item.job_id] = STOPPED
    return not interrupted and (deadline is None or time.monotonic() < deadline)


def listed_children(conn: psycopg2.extensions.connection, queue: Queue, settings: Settings,
                    run_id: str) -> Callable[[], Wave]:
    """For an inline run: the child jobs of ``run_id`` listed in ``ingest_jobs`` (planned with their
    parents in the outbox, by a parent's batch or by :func:`.fanout_plans.plan_fan_out`) and not taken
    yet, each claimed (``SET NX``, as the relay does) so nothing else runs it too."""
    taken: set[str] = set()

    def take() -> Wave:
        jobs = [job for job in JobHistory(conn).unfinished(run_id)
                if is_child_job(job.args) and job.job_id not in taken]
        taken.update(job.job_id for job in jobs)
        claimed = claim_ids(queue.connection, settings, run_id, [job.job_id for job in jobs])
        return [(Enqueued(job.source, job.job_id, True), job_data(settings, job.job_id, job.source, run_id, job.args))
                for job, ok in zip(jobs, claimed) if ok]
    return take


def run_inline_with_fan_out(queue: Queue, settings: Settings, conn: psycopg2.extensions.connection,
                            specs: Sequence[SourceSpec], run_id: str, sources: Mapping[str, SourceSpec],
                            deadline: float | None = None,
                            on_job: Callable[[int, int, Enqueued], None] = lambda index, total, item: None,
                            ) -> tuple[list[Enqueued], dict[str, str]]:
    """:func:`run_inline` for a run with fan-out: the child jobs of partitioned sources and of child
    sources named alone are planned first (``conn``); every child job planned, by them or by a parent's
    batch, then runs here, wave after wave, taking its parents from the outbox like a worker's."""
    plain, partitioned, children = split_fan_out(specs, sources)
    for _planned in plan_fan_out(conn, settings, run_id, partitioned, children, sources):
        pass  # listed in ingest_jobs: listed_children takes them
    return run_inline(queue, settings, plain, run_id, deadline, on_job, listed_children(conn, queue, settings, run_id))


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
        jobs = [job for job in Job.fetch_many(list(job_ids), connection=queue.connection, serializer=queue.serializer)
                if job is not None and outcome.get(job.id) != STOPPED]
        # Cancel before stopping: a worker freed by a stop would otherwise take a queued job
        # of this run between the stop and its cancel, and run it to the end.
        for job in sorted(jobs, key=lambda job: job.get_status(refresh=False) == JobStatus.STARTED):
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
