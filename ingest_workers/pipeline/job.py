"""One fetch job's run and its outcome: the job history (``ingest_jobs``), the job metrics, and
the check that its counts add up.

Outcomes: ``finished``; ``partial`` (pages lost: what was read is loaded, not all of the source);
``deferred`` (the source's circuit is open: RQ runs the job again after the cool-down);
``retrying`` (a transient error RQ will retry); ``failed``. The bookkeeping of an error path
(Redis metrics, the history row) never replaces the job's own error: a failure there is logged,
and the real error is raised, so RQ still sees what decides a retry or a deferral.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property

from ..core.connections import redis_errors
from ..core.errors import CountMismatch, Deferral
from ..core.models import Counts, Lineage, SourceSpec, Window
from ..core.redact import redact
from ..core.schedules import period
from ..datasets import Dataset, dataset_of
from ..ops.drift_history import record_drift
from ..ops.history_writer import HistoryWriter
from ..ops.metrics import (
    JOB_DURATION,
    JOBS,
    JOBS_DEFERRED,
    LAST_SUCCESS,
    REPLACE_DELETED,
    MetricsRecorder,
    announce_job,
)
from .clients import postgres_retry
from .fan_out import Handoff
from .replace_end import switch_replaced_rows
from .resources import Resources
from .stream import Tally, ingest

log = logging.getLogger(__name__)


def run_fetch_job(spec: SourceSpec, run_id: str, job_id: str, queue: str, res: Resources,
                  window: Window | None = None,
                  runs_again: Callable[[BaseException], bool] = lambda error: False,
                  handoff: Handoff | None = None) -> Counts:
    """Ingest ``spec`` for ``run_id`` (only ``window``, for a backfill job); record the job
    in ``ingest_jobs`` and in metrics.

    Any exception is recorded and re-raised, so RQ marks the job failed (or retries it);
    ``runs_again(error)`` says whether RQ will run the job again after ``error`` (a retry, or a
    deferral of an open circuit): the job is then recorded as waiting, not failed.
    """
    job = JobRun(spec, run_id, job_id, queue, res)

    def read(lineage: Lineage) -> Sequence[str]:
        for batch_counts in ingest(spec, lineage, res, job.recorder, window, job.tally, handoff):
            job.counts.add(batch_counts)
        return ()

    return job.attempt("source", read, runs_again)


def lost_pages_reason(lost: Sequence[str], shown: int = 10) -> str:
    """``lost 2 pages: page 3: the body is not JSON; page 9: ...`` (the first ``shown`` of them)."""
    more = f"; and {len(lost) - shown} more" if len(lost) > shown else ""
    return f"lost {len(lost)} page{'s' if len(lost) != 1 else ''}: {'; '.join(lost[:shown])}{more}"


class JobRun:
    """One attempt of a job: its counts so far, its metrics, and how it is recorded when it ends."""

    def __init__(self, spec: SourceSpec, run_id: str, job_id: str, queue: str, res: Resources) -> None:
        self.spec, self.run_id, self.job_id, self.queue, self.res = spec, run_id, job_id, queue, res
        self.history = HistoryWriter(postgres_retry(res))
        self.recorder, self.counts, self.tally = MetricsRecorder(), Counts(), Tally()
        self.started = time.monotonic()

    def attempt(self, what: str, read: Callable[[Lineage], Sequence[str]],
                runs_again: Callable[[BaseException], bool]) -> Counts:
        """Record the attempt's start, ``read`` the source (given the lineage its rows carry; it
        returns why part of it was not read), check the counts and record the end: waiting on a
        deferral or an error RQ will run again after (``runs_again``), failed on any other error
        (re-raised), else finished or partial."""
        spec, job_id, run_id = self.spec, self.job_id, self.run_id
        self.history.started(job_id, run_id, spec.name)
        with redis_errors():
            announce_job(self.res.redis, spec.name, period(spec, time.time()), time.time())
        lineage = Lineage(spec.name, run_id, job_id, datetime.now(UTC).isoformat())
        log.info("job %s: fetching %s %s (run %s)", job_id, what, spec.name, run_id)
        try:
            with redis_errors():  # the breaker and the rate limit talk to Redis too
                unfinished = read(lineage)
            self.check_counts()
        except Deferral as exc:  # the circuit is open, or the server asked for a long wait
            self.deferred(exc, runs_again(exc))
            raise
        except Exception as exc:
            self.failed(exc, runs_again(exc))
            raise
        return self.ended(unfinished)

    @cached_property
    def dataset(self) -> Dataset:
        """The job's dataset, parsed once from the declaration it carries."""
        return dataset_of(self.spec.dataset, self.spec.declaration)

    def _switch(self, finishing: str | None = None) -> None:
        """A replace dataset: switch its source's rows if this was the run's last job of it."""
        done = switch_replaced_rows(self.spec.name, self.dataset, self.run_id, self.res, finishing)
        if done is not None and done.deleted:  # flushed with the job's end (every path calls _finish after)
            self.recorder.inc(REPLACE_DELETED, self.spec.name, amount=done.deleted)

    def check_counts(self) -> None:
        """Every record fetched became exactly one of rejected, duplicate, loaded, updated or deleted: each is
        counted where it happens, so a difference is a counting bug. It fails the job with
        ``strict_counts`` (tests); otherwise it is logged as an error."""
        unaccounted = self.counts.unaccounted()
        if unaccounted == 0:
            return
        message = (f"job {self.job_id}: source {self.spec.name}: the counts do not add up: {self.counts.to_dict()} "
                   f"({unaccounted:+d} records fetched but not counted as rejected, duplicate, loaded, updated or "
                   "deleted)")
        if self.res.settings.strict_counts:
            raise CountMismatch(message)
        log.error("%s", message)

    def ended(self, unfinished: Sequence[str] = ()) -> Counts:
        """The job read its source: ``partial`` if it lost pages (or ``unfinished`` says why part of it
        was not read: a child job's failed parents, each named by its key), else ``finished``."""
        spec, counts, continued = self.spec, self.counts, self.tally.continued
        if self.tally.drift is not None:
            drift = self.tally.drift.to_dict()
            postgres_retry(self.res).run(lambda conn: record_drift(conn, self.job_id, drift))
        reasons = [*([lost_pages_reason(counts.lost_pages)] if counts.lost_pages else []), *unfinished]
        if reasons:  # what was read is loaded, but not all of the source: never a success
            reason = "; ".join(reasons)
            log.error("job %s: source %s partial: %s; %s", self.job_id, spec.name, reason, counts.to_dict())
            self.history.partial(self.job_id, counts, reason, continued)
            self._switch()  # a partial run replaces nothing, and says so
            self._finish("partial")
            return counts
        # replace: switch first if this job is the source's last in the run (a kill between its end and
        # the switch would leave the run unswitched), and again once its end is recorded (jobs ending at once)
        self._switch(finishing=self.job_id)
        self.history.finished(self.job_id, counts, continued)
        self._switch()
        self.history.record_stats(self.job_id, self.dataset, spec.name, self.run_id)
        self.recorder.set(LAST_SUCCESS, time.time(), spec.name)
        self._finish("success")
        log.info("job %s: source %s done: %s", self.job_id, spec.name, counts.to_dict())
        return counts

    def deferred(self, error: Deferral, runs_again: bool) -> None:
        """The source's circuit is open, or its server asked for a wait beyond the back-off cap: RQ runs
        the job again after it (``runs_again``)."""
        log.warning("job %s: %s; deferring after %s", self.job_id, error, self.counts.to_dict())
        self.recorder.inc(JOBS_DEFERRED, self.spec.name)
        self._bookkeep(lambda: self._finish("deferred"), "its metrics")
        status = "deferred" if runs_again else "failed"
        self._bookkeep(lambda: self.history.ended(self.job_id, status, self.counts, redact(f"deferred: {error}"),
                                                  self.tally.continued), "its end in the job history")
        if not runs_again:  # a failed run replaces nothing, and says so
            self._bookkeep(self._switch, "its replace switch")

    def failed(self, error: Exception, runs_again: bool) -> None:
        """The job failed; ``runs_again``: RQ retries it (it is then recorded as ``retrying``)."""
        log.error("job %s: source %s failed after %s: %s", self.job_id, self.spec.name, self.counts.to_dict(), error)
        self._bookkeep(lambda: self._finish("failure"), "its metrics")
        status = "retrying" if runs_again else "failed"
        self._bookkeep(lambda: self.history.ended(self.job_id, status, self.counts,
                                                  redact(f"{type(error).__name__}: {error}"), self.tally.continued),
                       "its end in the job history")
        if not runs_again:  # a failed run replaces nothing, and says so
            self._bookkeep(self._switch, "its replace switch")

    def _finish(self, outcome: str) -> None:
        self.tally.meter()
        self.recorder.inc(JOBS, self.spec.name, outcome)
        self.recorder.observe(JOB_DURATION, time.monotonic() - self.started, self.queue, outcome)
        with redis_errors():
            pipe = self.res.redis.pipeline(transaction=False)
            self.recorder.flush_to(pipe)
            pipe.execute()

    def _bookkeep(self, write: Callable[[], None], what: str) -> None:
        """Record something on the way out of a failed job. The job's own error is what RQ must see
        (it decides a retry or a deferral), so a failure here (Redis or PostgreSQL down too, or any
        bug) is logged and swallowed: the caller re-raises the real error right after."""
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - see the docstring: the job's error is raised instead
            log.error("job %s: could not record %s: %s: %s", self.job_id, what, type(exc).__name__, redact(str(exc)))
