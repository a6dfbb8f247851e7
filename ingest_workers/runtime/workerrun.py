"""``ingest run --workers N``: a run on N ``rq worker`` processes started for it, and how it stops.

- Every job ends: the workers get RQ's warm shutdown (they are idle: at once).
- The time limit passes: the jobs not started are cancelled, the running ones stopped
  (:func:`.localrun.stop_unfinished`).
- Ctrl+C (:mod:`.interrupt`), said at once: the jobs not started are cancelled and the
  running ones finish; a second Ctrl+C kills the workers (each work horse dies with its
  worker, :mod:`.lifeline`, so its uncommitted batch rolls back) and cancels the jobs it ran.

Whatever happens, no worker outlives the run, and the outcome names the jobs that did not finish.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue

from ..core.config import Settings
from ..core.connections import connect_postgres, redis_for
from ..core.models import SourceSpec
from ..datasets import dataset_of
from ..ops.history import JobHistory
from ..ops.watch import DONE, JobState
from .fanout_plans import enqueue_with_fan_out
from .interrupt import StopGently, StopNow, ctrl_c
from .localrun import NOT_STARTED, STOPPED, WAITING, RunOutcome, stop_unfinished
from .producer import Enqueued, is_child_job, make_queue, queues_of
from .reconcile import reconcile_run
from .workerpool import Process, Say, kill_workers, start_worker, stop_workers

# Shows the jobs' progress until they end, or the watch gives up (a time limit); ``recover``, when
# given, enqueues again what Redis lost. The CLI draws it (a bar, or lines); the demo narrates.
Watch = Callable[[Queue, Sequence[Enqueued], Callable[[], list[str]] | None], JobState]


@dataclass(frozen=True)
class GiveUp:
    """Why the run stops the jobs its watch returned before: in the summary (``short``, e.g.
    ``time limit 8s``) and as the error of each job stopped while running (``full``)."""

    short: str
    full: str


@dataclass(frozen=True)
class Pool:
    """The workers a run starts: how many, their class (None: IngestWorker), their log."""

    count: int
    worker_class: str | None
    log_path: Path
    env: Mapping[str, str]


def run_on_workers(settings: Settings, specs: Sequence[SourceSpec], run_id: str, pool: Pool, watch: Watch,
                   give_up: GiveUp, say: Say, sources: Mapping[str, SourceSpec] | None = None) -> RunOutcome:
    """Run one job per source of ``specs`` on the workers of ``pool`` until every job ended, the
    ``watch`` gave up (then the rest are stopped, ``give_up`` says why), or Ctrl+C; stop the workers
    (nothing is left running) and return what happened. ``say`` tells the user, at once, what a
    stop is doing. ``sources``: the catalog's, where a child source named alone finds its parent
    (fan-out: :mod:`.fanout_plans`)."""
    queue = make_queue(redis_for(settings), settings)
    pool.log_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect_postgres(settings.database_url)) as conn, pool.log_path.open("ab") as log:
        processes = [start_worker(settings, i, pool.env, log, pool.worker_class, queues_of(settings, specs))
                     for i in range(pool.count)]
        try:
            job_list = JobHistory(conn)
            outcome = RunOutcome(run_id, enqueue_with_fan_out(queue, settings, conn, specs, run_id,
                                                              sources or {spec.name: spec for spec in specs}))
            say(f"run {run_id}: {len(outcome.enqueued)} job(s) on {pool.count} worker(s); worker logs in "
                f"{pool.log_path}")
            outcome, reason = _until_stopped(queue, settings, processes, outcome, watch, give_up, say, job_list)
        finally:
            kill_workers(processes)  # only those still running: after an error, or a KeyboardInterrupt
    record_stopped(settings, outcome, reason)
    return outcome


def _until_stopped(queue: Queue, settings: Settings, processes: list[Process], outcome: RunOutcome,
                   watch: Watch, give_up: GiveUp, say: Say, job_list: JobHistory) -> tuple[RunOutcome, str]:
    """Wait for the jobs, stop the workers; the outcome, and why the unfinished jobs were stopped."""
    job_ids = [item.job_id for item in outcome.enqueued]
    unfinished: dict[str, str] = {}
    why = reason = ""
    try:
        with ctrl_c(say):
            try:
                state = watch(queue, outcome.enqueued, _recoverer(queue, settings, job_list, outcome.run_id, say))
                if state.done < state.total:
                    why, reason = give_up.short, give_up.full
                    unfinished.update(stop_unfinished(queue, _every_job(job_ids, job_list, outcome.run_id)))
                stop_workers(processes, 10 if unfinished else 30, say)
            except StopGently:
                why = reason = "Ctrl+C"
                if _finish_in_hand(queue, outcome, _every_job(job_ids, job_list, outcome.run_id), watch,
                                   unfinished, say):
                    why, reason = f"Ctrl+C, then {give_up.short}", give_up.full
                stop_workers(processes, 30, say)
    except StopNow:
        why = reason = "Ctrl+C"
        kill_workers(processes)
        unfinished.update(_cancel_the_rest(queue, _every_job(job_ids, job_list, outcome.run_id)))
    return RunOutcome(outcome.run_id, outcome.enqueued, unfinished, why if unfinished else ""), reason


def _every_job(job_ids: Sequence[str], job_list: JobHistory, run_id: str) -> list[str]:
    """``job_ids`` and every other job listed for the run: the child jobs fanned out too."""
    return list(dict.fromkeys([*job_ids, *job_list.job_ids(run_id)]))


def _finish_in_hand(queue: Queue, outcome: RunOutcome, every_job: Sequence[str], watch: Watch,
                    unfinished: dict[str, str], say: Say) -> bool:
    """The first Ctrl+C: cancel the jobs not started (of ``every_job``, child jobs too), name the running
    ones and wait for them; True if the watch gave up on them meanwhile (they were stopped)."""
    unfinished.update(stop_unfinished(queue, every_job, stop_running=False))
    cancelled = [item.source for item in outcome.enqueued if item.job_id in unfinished]
    running = [item for item in outcome.enqueued
               if item.job_id not in unfinished and _status(queue, item.job_id) not in DONE]
    say(f"cancelled {len(cancelled)} job(s) not started ({', '.join(cancelled) or 'none'}); waiting for the "
        f"{len(running)} running ({', '.join(item.source for item in running) or 'none'}) to finish; "
        "Ctrl+C again stops them now")
    state = watch(queue, running, None)
    if state.done < state.total:
        unfinished.update(stop_unfinished(queue, [item.job_id for item in running]))
        return True
    return False


def _cancel_the_rest(queue: Queue, job_ids: list[str]) -> dict[str, str]:
    """After the workers were killed: cancel every job of the run that did not end, so that no
    worker takes it up later (RQ would hand a running job back as abandoned). By job id, what
    happened to each."""
    outcome: dict[str, str] = {}
    for job in Job.fetch_many(job_ids, connection=queue.connection, serializer=queue.serializer):
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status in DONE:
            continue
        try:
            job.cancel()
        except (InvalidJobOperation, NoSuchJobError):
            continue
        outcome[job.id] = {JobStatus.STARTED: STOPPED, JobStatus.SCHEDULED: WAITING}.get(status, NOT_STARTED)
    return outcome


def _status(queue: Queue, job_id: str) -> JobStatus | None:
    try:
        return Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer).get_status()
    except NoSuchJobError:
        return None


def _recoverer(queue: Queue, settings: Settings, job_list: JobHistory, run_id: str, say: Say
               ) -> Callable[[], list[str]]:
    """For the watch: enqueue again the jobs of the run that Redis lost, and say so."""
    def recover() -> list[str]:
        again = reconcile_run(queue, settings, job_list, run_id)
        for job_id in again:
            say(f"Redis lost job {job_id}; enqueued it again")
        return again
    return recover


def record_stopped(settings: Settings, outcome: RunOutcome, reason: str) -> None:
    """Record the end of the jobs of the run that did not finish, child jobs included: a fetch job
    cancelled before it started leaves the run's list (nothing is to enqueue it again); a job stopped
    while running is marked failed with ``reason`` (its process could not say so), with what it
    committed; a child job that never started, and a job waiting to run again, are marked failed
    too (a child job's parents stay pending in the outbox: the summary shows them not reached)."""
    if not outcome.unfinished:
        return
    with closing(connect_postgres(settings.database_url)) as conn:
        history = JobHistory(conn)
        listed = {job.job_id: job for job in history.unfinished(outcome.run_id)}
        history.unlist([job_id for job_id, what in outcome.unfinished.items()
                        if what == NOT_STARTED and job_id in listed and not is_child_job(listed[job_id].args)])
        for job_id, what in outcome.unfinished.items():
            job = listed.get(job_id)
            if job is None:
                continue
            if what == STOPPED:
                spec = SourceSpec.from_dict(job.args[0])
                history.abandoned(job_id, job.source, dataset_of(spec.dataset, spec.declaration).table,
                                  f"stopped: {reason}")
            history.cancelled(job_id, f"{what}: {reason}")  # not started, or waiting (a stopped one: ended)
