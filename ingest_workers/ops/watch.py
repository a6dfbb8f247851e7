"""Wait for a run's jobs, and report what they did (table and ``summary.json``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.queue import Queue

from ..core.config import SERVICE_WAIT
from ..core.errors import ServiceUnavailable
from .history import SourceSummary
from .metrics import RECORDS, read_counters

log = logging.getLogger(__name__)
DONE = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


@dataclass(frozen=True)
class JobState:
    done: int
    total: int
    failed: int
    missing: tuple[str, ...] = ()  # ids Redis does not know (counted done: expired, or lost)


def job_states(queue: Queue, job_ids: Sequence[str]) -> JobState:
    """How many of ``job_ids`` reached an end (a job being retried has not)."""
    jobs = Job.fetch_many(list(job_ids), connection=queue.connection, serializer=queue.serializer)
    statuses = [job.get_status(refresh=False) if job else JobStatus.CANCELED for job in jobs]
    return JobState(done=sum(s in DONE for s in statuses), total=len(job_ids),
                    failed=sum(s != JobStatus.FINISHED for s in statuses if s in DONE),
                    missing=tuple(job_id for job_id, job in zip(job_ids, jobs) if job is None))


class RecordProgress:
    """Records fetched from some sources since this object was made, read from the metrics
    hash in Redis (the workers publish them batch by batch), and the rate."""

    def __init__(self, client: redis.Redis, sources: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._labels = [(source, "fetch", "fetched") for source in sources]
        self._clock = clock
        self._start, self._started = self._fetched(), clock()

    def _fetched(self) -> float:
        return sum(read_counters(self._client, RECORDS, self._labels))

    def elapsed(self) -> float:
        """Seconds since this object was made (the start of the run it watches)."""
        return self._clock() - self._started

    def describe(self) -> str:
        records = max(0, int(self._fetched() - self._start))  # a Redis that lost its counters restarts them
        return f"{records:,} records fetched ({records / max(self.elapsed(), 1e-9):,.0f}/s)"


def progress_line(state: JobState, records: str, elapsed: float) -> str:
    """One line of progress for logs: ``jobs 3/9 done, 45,000 records fetched (9,000/s), ETA 12s``
    (the ETA from the pace of the jobs done so far)."""
    if state.done == 0:
        eta = "unknown"
    else:
        eta = f"{elapsed / state.done * (state.total - state.done):.0f}s"
    failed = f" ({state.failed} failed)" if state.failed else ""
    return f"jobs {state.done}/{state.total} done{failed}, {records}, ETA {eta}"


class RedisOutage:
    """Redis not answering while a run is watched: logged once when it starts and once when it ends
    (not at every poll); :class:`ServiceUnavailable` once it has lasted ``limit`` seconds."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._since: float | None = None

    def failed(self, exc: redis.RedisError) -> None:
        """Redis did not answer a poll; raise :class:`ServiceUnavailable` if that has gone on too long."""
        now = self._clock()
        if self._since is None:
            self._since = now
            log.warning("Redis does not answer (%s); waiting up to %g s for it", exc, self.limit)
        if now - self._since >= self.limit:
            raise ServiceUnavailable(f"Redis did not answer for {now - self._since:.0f} s while waiting for the "
                                     f"run's jobs (limit {self.limit:g} s): {exc}") from exc

    def answered(self) -> None:
        """Redis answered a poll: an outage in progress is over."""
        if self._since is not None:
            log.warning("Redis answers again after %.1f s", self._clock() - self._since)
            self._since = None


def wait_for_jobs(queue: Queue, job_ids: Sequence[str], on_progress: Callable[[JobState], None],
                  timeout: float | None = None, poll: float = 0.25,
                  recover: Callable[[], Sequence[str]] | None = None,
                  outage_limit: float = SERVICE_WAIT,
                  listed: Callable[[], Sequence[str]] | None = None) -> JobState:
    """Poll until every job ended or ``timeout`` seconds passed; return the last state.

    ``listed`` (if given) returns the run's whole job list as PostgreSQL has it: the child jobs
    that jobs fan out during the run are waited for too. It is read again once all the jobs known
    seem done, so a job that listed children just before it ended is not taken as the last one.

    When a job is missing from Redis, ``recover`` (if given) enqueues again what Redis lost
    and returns those ids. While Redis does not answer (a failover, a restart), keep polling
    for up to ``outage_limit`` seconds (the commands pass ``INGEST_SERVICE_WAIT``), then raise
    :class:`ServiceUnavailable` (the jobs may still run: only the watching stopped).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    job_ids = list(job_ids)
    state = JobState(done=0, total=len(job_ids), failed=0)
    outage = RedisOutage(outage_limit)
    while True:
        try:
            state = job_states(queue, job_ids)
            if state.missing and recover is not None and recover():
                continue  # enqueued again: look at them once more
            if state.done == state.total and listed is not None and _listed_more(job_ids, listed):
                continue  # child jobs listed meanwhile: wait for them too
            on_progress(state)
            outage.answered()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            outage.failed(exc)  # the next poll may reach Redis again, or the promoted replica
        if state.done == state.total or (deadline is not None and time.monotonic() >= deadline):
            return state
        time.sleep(poll)


def _listed_more(job_ids: list[str], listed: Callable[[], Sequence[str]]) -> bool:
    """Add to ``job_ids`` the run's jobs listed since; True if there were any."""
    known = set(job_ids)
    more = [job_id for job_id in listed() if job_id not in known]
    job_ids.extend(more)
    return bool(more)


def health(success_rate: float) -> str:
    """The design notes' thresholds: healthy above 95%, degraded from 80%, unhealthy below."""
    if success_rate > 0.95:
        return "healthy"
    return "degraded" if success_rate >= 0.80 else "unhealthy"


def summary_document(run_id: str, summaries: Sequence[SourceSummary], elapsed: float,
                     unfinished: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's summary; ``unfinished`` names, by source, the jobs that did not finish and why."""
    sources = {}
    for s in summaries:
        rate = s.finished / s.jobs if s.jobs else 0.0
        # deleted: the records flagged deleted and the rows a replace switch removed (its part: replace.deleted)
        sources[s.source] = {**s.counts.to_dict(), "deleted": s.deleted, "jobs": s.jobs, "failed_jobs": s.failed,
                             "partial_jobs": s.partial,
                             "duration_seconds": round(s.seconds, 3), "success_rate": round(rate, 4),
                             "health": health(rate), "errors": list(s.errors), "column_stats": s.column_stats,
                             "new_fields": list(s.new_fields), **_fan_out_counts(s)}
        if s.counts.nested:  # items of nested datasets: apart from fetched = rejected + duplicate + ...
            sources[s.source]["nested"] = s.counts.nested
        if s.switch is not None:  # a replace source: rows gone since the last complete run are no fetched records,
            # so fetched = rejected + duplicate + loaded + updated + (deleted - replace.deleted)
            sources[s.source]["replace"] = {"switch": s.switch.detail, "deleted": s.switch.deleted}
    totals = {k: sum(v[k] for v in sources.values()) for k in ("fetched", "rejected", "duplicate", "loaded", "updated",
                                                                 "deleted", "jobs", "failed_jobs", "partial_jobs")}
    return {"run_id": run_id, "duration_seconds": round(elapsed, 3), "sources": sources, "totals": totals,
            "unfinished": dict(unfinished or {}),
            # a partial job lost pages: the run did not load all of its sources
            "ok": totals["failed_jobs"] == 0 and totals["partial_jobs"] == 0 and totals["jobs"] > 0
            and not unfinished}


def _fan_out_counts(summary: SourceSummary) -> dict[str, int]:
    """A child source's parents (done, failed, never reached) and its skipped requests; nothing for others."""
    if summary.parents is None:
        return {"skipped": summary.skipped} if summary.skipped else {}
    tally = summary.parents
    return {"parents": tally.done + tally.skipped, "parents_failed": tally.failed,
            "parents_pending": tally.pending, "skipped": summary.skipped}


def format_table(document: dict[str, Any]) -> str:
    header = ("source", "fetched", "rejected", "duplicate", "loaded", "updated", "deleted", "seconds", "success",
              "health")
    rows = [header]
    for name, s in document["sources"].items():
        rows.append((name, s["fetched"], s["rejected"], s["duplicate"], s["loaded"], s.get("updated", 0),
                     s.get("deleted", 0), f"{s['duration_seconds']:.1f}", f"{s['success_rate']:.0%}", s["health"]))
    t = document["totals"]
    rows.append(("total", t["fetched"], t["rejected"], t["duplicate"], t["loaded"], t.get("updated", 0),
                 t.get("deleted", 0), f"{document['duration_seconds']:.1f}", "", ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    for name, s in document["sources"].items():
        for dataset, n in s.get("nested", {}).items():
            lines.append(f"{name}: nested {dataset}: loaded {n['loaded']}, updated {n['updated']}, "
                         f"deleted {n['deleted']}, rejected {n['rejected']}")
        if "parents" in s:
            lines.append(f"{name}: parents processed {s['parents']}, failed {s['parents_failed']}, "
                         f"not reached {s['parents_pending']}; requests skipped {s['skipped']}")
    for name, s in document["sources"].items():
        for error in s["errors"]:
            lines.append(f"{name}: {error}")
        lines += [f"{name}: {line}" for line in s.get("new_fields", [])]
        if "replace" in s:
            lines.append(f"{name}: {s['replace']['switch']}")
    for name, reason in document.get("unfinished", {}).items():
        lines.append(f"{name}: did not finish: {reason}")
    return "\n".join(lines)


def write_summary(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
