"""Wait for a run's jobs, and report what they did (table and ``summary.json``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.queue import Queue

from .history import SourceSummary
from .metrics import RECORDS, read_counters

DONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


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


def wait_for_jobs(queue: Queue, job_ids: Sequence[str], on_progress: Callable[[JobState], None],
                  timeout: float | None = None, poll: float = 0.25,
                  recover: Callable[[], Sequence[str]] | None = None) -> JobState:
    """Poll until every job ended or ``timeout`` seconds passed; return the last state.

    When a job is missing from Redis, ``recover`` (if given) enqueues again what Redis lost
    and returns those ids. While Redis does not answer (a failover, a restart), keep polling.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    state = JobState(done=0, total=len(job_ids), failed=0)
    while True:
        try:
            state = job_states(queue, job_ids)
            if state.missing and recover is not None and recover():
                continue  # enqueued again: look at them once more
            on_progress(state)
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the next poll reaches Redis again, or the promoted replica
        if state.done == state.total or (deadline is not None and time.monotonic() >= deadline):
            return state
        time.sleep(poll)


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
        sources[s.source] = {**s.counts.to_dict(), "jobs": s.jobs, "failed_jobs": s.failed, "partial_jobs": s.partial,
                             "duration_seconds": round(s.seconds, 3), "success_rate": round(rate, 4),
                             "health": health(rate), "errors": list(s.errors)}
    totals = {k: sum(v[k] for v in sources.values()) for k in ("fetched", "rejected", "duplicate", "loaded", "updated",
                                                                 "jobs", "failed_jobs", "partial_jobs")}
    return {"run_id": run_id, "duration_seconds": round(elapsed, 3), "sources": sources, "totals": totals,
            "unfinished": dict(unfinished or {}),
            # a partial job lost pages: the run did not load all of its sources
            "ok": totals["failed_jobs"] == 0 and totals["partial_jobs"] == 0 and totals["jobs"] > 0
            and not unfinished}


def format_table(document: dict[str, Any]) -> str:
    header = ("source", "fetched", "rejected", "duplicate", "loaded", "updated", "seconds", "success", "health")
    rows = [header]
    for name, s in document["sources"].items():
        rows.append((name, s["fetched"], s["rejected"], s["duplicate"], s["loaded"], s.get("updated", 0),
                     f"{s['duration_seconds']:.1f}", f"{s['success_rate']:.0%}", s["health"]))
    t = document["totals"]
    rows.append(("total", t["fetched"], t["rejected"], t["duplicate"], t["loaded"], t.get("updated", 0),
                 f"{document['duration_seconds']:.1f}", "", ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    for name, s in document["sources"].items():
        for error in s["errors"]:
            lines.append(f"{name}: {error}")
    for name, reason in document.get("unfinished", {}).items():
        lines.append(f"{name}: did not finish: {reason}")
    return "\n".join(lines)


def write_summary(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
