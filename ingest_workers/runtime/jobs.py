"""RQ entry points. Their dotted paths are stored in Redis with every queued job:
renaming one breaks the jobs already queued. Each builds nothing itself."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from .. import pipeline
from ..catalog import NAME_PATTERN, parse_job
from ..core.errors import ConfigError, Deferral, Refused, ServiceUnavailable, TransientError
from ..core.models import Counts, SourceSpec, Window
from ..core.permissions import Permissions
from ..guards.quarantine import note_worker_death
from ..ops.history_writer import HistoryWriter
from ..ops.logs import configure_logging, job_context, redact_log_records
from ..ops.metrics import count_job_retry
from . import resources
from .relay import children_queue, relay
from .rq_compat import runs_synchronously

# What may pass if the job runs again later; anything else fails the job at once.
RETRYABLE = (TransientError, ServiceUnavailable, JobTimeoutException)
MAX_DEFERRALS = 50  # an open circuit defers a job at most this many times, then it fails
MAX_REFUSAL = 1000  # characters of a refused job's reason

# What a queued job may name, under this layout's paths and the previous layout's (``ingest_workers.jobs``,
# still resolved through the package's ``__getattr__``): ``IngestWorker`` refuses any other function or
# callback before running anything (a job's names are imported and called by RQ).
JOB_FUNCTIONS = frozenset({"ingest_workers.runtime.jobs.fetch_source", "ingest_workers.jobs.fetch_source",
                           "ingest_workers.runtime.jobs.fetch_children"})
JOB_CALLBACKS = frozenset({"ingest_workers.runtime.jobs.on_failure", "ingest_workers.jobs.on_failure"})


def fetch_source(spec: dict[str, Any], run_id: str, window: list[str] | None = None) -> dict[str, int] | Retry:
    """Ingest one source for one run (only ``window`` = [since, until] for a backfill job);
    return its counts (fetched, rejected, duplicate, loaded).

    Its clients and redactor are the ones the worker serves it (:func:`.resources.for_job`).
    While the source's circuit is open, or its server asked for a wait longer than the HTTP
    back-off cap (``Retry-After``), return an RQ ``Retry``: RQ's scheduler re-enqueues
    the job when the wait is over, and this worker moves on to other sources.
    """
    with resources.for_job() as res:
        _ensure_logging(res.settings.log_format)
        job = get_current_job()
        source = accepted(spec, run_id, window, res)
        job_id = job.id if job else f"{run_id}-{source.name}"
        queue = job.origin if job else "inline"
        with job_context(source.name, run_id, job_id):
            try:
                counts = pipeline.run_fetch_job(source, run_id, job_id, queue, res, Window(*window) if window else None,
                                                lambda error: runs_again(job, error), handoff(res, run_id, job))
            except Deferral as exc:
                return Retry(max=MAX_DEFERRALS, interval=max(1, math.ceil(exc.retry_after or 1)))
            except BaseException as exc:
                res.redactor.redact_exception(exc)  # RQ stores and logs its traceback: no job variable's value
                raise
    return counts.to_dict()


def fetch_children(spec: dict[str, Any], run_id: str, origin: dict[str, Any]) -> dict[str, int] | Retry:
    """A fan-out's child job: ingest the child source ``spec`` once per parent of this job's group,
    the parents read from PostgreSQL (``origin`` names the job that fanned it out, for people)."""
    with resources.for_job() as res:
        _ensure_logging(res.settings.log_format)
        job = get_current_job()
        source = accepted(spec, run_id, None, res)  # the one parser, like a fetch job's (``origin``: unused)
        job_id = job.id if job else f"{run_id}-{source.name}"
        queue = job.origin if job else "inline"
        with job_context(source.name, run_id, job_id):
            try:
                counts = pipeline.run_child_job(source, run_id, job_id, queue, res,
                                                lambda error: runs_again(job, error), handoff(res, run_id, job))
            except Deferral as exc:
                return Retry(max=MAX_DEFERRALS, interval=max(1, math.ceil(exc.retry_after or 1)))
            except BaseException as exc:
                res.redactor.redact_exception(exc)
                raise
    return counts.to_dict()


def handoff(res: resources.Resources, run_id: str, job: Job | None) -> pipeline.Handoff:
    """Where this job's child jobs go: the children queue of the child source's queue, through the relay;
    inline (RQ's synchronous mode) nowhere: the inline run takes them from the run's job list itself
    (``runtime.localrun``), in this process."""
    settings = res.settings

    def queue_for(child: Mapping[str, Any]) -> str:
        return children_queue(child.get("queue") or settings.queue)

    if runs_synchronously(job):
        return pipeline.Handoff(queue_for, lambda jobs: None)
    return pipeline.Handoff(queue_for, lambda jobs: relay(res.redis, settings, run_id, jobs))


def accepted(spec: Any, run_id: Any, window: Any, res: resources.Resources) -> SourceSpec:
    """The job's arguments, as read from Redis, checked before anything in them is used: the source
    by the catalog's own parser (:func:`~ingest_workers.catalog.parse_job`: its keys and types, its
    dataset declaration, its plugins against ``INGEST_PLUGINS``), the variables it names against
    ``INGEST_SOURCE_VARS``. Raises :class:`Refused` with one sentence (the job fails for good);
    a refused source with a usable name is recorded in ``ingest_jobs`` like any failed job."""
    permissions = Permissions.of(res.settings)
    try:
        if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
            raise ConfigError(f"the job's run id must be text, got {str(run_id)[:80]!r}")
        if window is not None and not (isinstance(window, list) and len(window) == 2
                                       and all(isinstance(moment, str) for moment in window)):
            raise ConfigError(f"the job's window must be [since, until], got {str(window)[:80]!r}")
        source = parse_job(spec, permissions.plugins)
        permissions.check_variables(source)
    except (ConfigError, Refused) as exc:
        text = str(exc)  # it may quote the job's values: keep the sentence short
        refused = Refused(text if len(text) <= MAX_REFUSAL else text[:MAX_REFUSAL] + " ...")
        _record_refusal(spec, run_id, refused, res)
        raise refused from None
    return source


def _record_refusal(spec: Any, run_id: Any, refused: Refused, res: resources.Resources) -> None:
    name = spec.get("name") if isinstance(spec, dict) else None
    job = get_current_job()
    if job is None or not isinstance(run_id, str) or not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return  # nothing that names a source of a run: the failed registry alone says why
    history = HistoryWriter(pipeline.postgres_retry(res))
    history.started(job.id, run_id, name)
    history.failed(job.id, Counts(), f"Refused: {refused}")  # no variable was read: nothing to hide


def runs_again(job: Job | None, error: BaseException) -> bool:
    """Whether RQ will run ``job`` again after ``error``: a deferral (an open circuit or a long
    ``Retry-After``, while deferrals are left), or a retry (an error that may pass, while retries
    are left). Never inline: RQ's synchronous mode (worker name ``sync``) runs a job once."""
    if job is None or job.worker_name == "sync":
        return False
    if isinstance(error, Deferral):
        return (job.number_of_retries or 0) < MAX_DEFERRALS
    return isinstance(error, RETRYABLE) and bool(job.retries_left)


def on_failure(job: Job, connection: Any, exc_type: type[BaseException], exc_value: BaseException,
               traceback: TracebackType | None) -> None:
    """RQ failure callback: keep RQ's retries for errors that may pass; fail the rest now.

    A job whose worker vanished (``AbandonedJobError``) runs again, up to ``max_kills`` times.
    """
    if isinstance(exc_value, AbandonedJobError):
        note_worker_death(job, connection)
    elif not isinstance(exc_value, RETRYABLE):
        job.retries_left = 0
    elif job.retries_left and "source" in job.meta:
        count_job_retry(connection, job.meta["source"])


def _ensure_logging(log_format: str) -> None:
    # `rq worker` sets up only its own logger; give ours the same destination (stderr).
    if not logging.getLogger().handlers:
        configure_logging("INFO", log_format)
    redact_log_records()  # RQ's lines about the job too
