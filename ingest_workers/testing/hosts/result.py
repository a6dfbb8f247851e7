"""The hosts run's verdict: per key (:mod:`ingest_workers.testing.verdict`, shared with the chaos
run), the jobs other hosts took over, and what the rejoined host did with the job it held, read
from RQ's per-attempt results in Redis and the rows in PostgreSQL (never from a log)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg2
import redis
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from ..verdict import Expect, KeyVerdict, Outcome, judge, merge_expected, read_stored, served_keys
from .plan import HostsPlan
from .probes import host_of


@dataclass
class Takeover:
    """A job whose host was lost while it ran, and when (and by whom) it ran again."""

    host: str  # the host that lost the job
    job_id: str
    seconds: float | None = None  # until another attempt started (None: it never needed one)
    by: str = ""


@dataclass
class HostsResult:
    served: int = 0
    loaded: int = 0
    rejected: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # a valid record rejected, or a broken one loaded
    without_reason: int = 0  # rejections with an empty reason
    jobs: int = 0
    producer_status: int | None = None
    metrics_loaded: int | None = None
    takeovers: list[Takeover] = field(default_factory=list)
    rejoined: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.without_reason) and \
            self.producer_status == 0 and self.loaded + self.rejected == self.served

    def line(self) -> str:
        """The summary line (scripts and tests read it: keep its fields and their order)."""
        taken = ", ".join(f"{t.job_id} lost by {t.host}: " + (f"again after {t.seconds:.1f}s on {t.by or '?'}"
                                                              if t.seconds is not None else "never run again")
                          for t in self.takeovers) or "none"
        more = "".join(f" {name}={value}" for name, value in (("unexpected", self.unexpected),
                                                              ("rejections_without_reason", self.without_reason))
                       if value)
        return (f"hosts {'PASS' if self.ok else 'FAIL'}: served={self.served} loaded={self.loaded} "
                f"rejected={self.rejected} lost={self.lost} duplicated={self.duplicated}{more} jobs={self.jobs} "
                f"producer_exit={self.producer_status} metrics_loaded={self.metrics_loaded} "
                f"taken_over=[{taken}] rejoined=[{self.rejoined}] elapsed={self.elapsed:.1f}s")

    def take_verdict(self, verdict: KeyVerdict) -> None:
        self.served, self.loaded, self.rejected = verdict.served, verdict.rows, verdict.rejected
        self.lost, self.duplicated, self.unexpected = verdict.lost, verdict.duplicated, verdict.unexpected
        self.without_reason = verdict.without_reason


def expected_keys(plan: HostsPlan) -> dict[tuple[str, str], Expect]:
    """Every key the mock served each source: a valid product loaded, a broken one rejected."""
    return merge_expected(served_keys(name, plan.records, plan.invalid_every) for name in plan.source_names)


def check(database_url: str, plan: HostsPlan) -> KeyVerdict:
    """The per-key verdict of the run, from the fixture's keys and what PostgreSQL holds."""
    conn = psycopg2.connect(database_url, connect_timeout=5)
    try:
        return judge(expected_keys(plan), read_stored(conn, plan.source_names))
    finally:
        conn.close()


def source_outcome(verdict: KeyVerdict, source: str) -> str:
    """How the keys of one source ended, in words."""
    outcomes = [outcome for (name, _), outcome in verdict.outcomes.items() if name == source]
    if outcomes and all(outcome in (Outcome.LOADED, Outcome.REJECTED) for outcome in outcomes):
        return "every key of it loaded once"
    counted = ", ".join(f"{sum(o is outcome for o in outcomes)} {outcome.value}" for outcome in Outcome)
    return f"of its {len(outcomes)} keys: {counted}"


def attempts_on(client: redis.Redis, job_id: str, host: str) -> list[str]:
    """What each attempt of ``job_id`` that ended on ``host`` did, in words (RQ keeps one result
    per ended attempt, naming its worker)."""
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    ended = sorted((r for r in job.results() if host_of(r.worker_name or "") == host), key=lambda r: r.created_at)
    return [_attempt_words(result) for result in ended]


def _attempt_words(result: Result) -> str:
    if result.type == Result.Type.SUCCESSFUL:
        counts: dict[str, Any] = result.return_value if isinstance(result.return_value, dict) else {}
        return (f"an attempt committed {counts.get('loaded', '?')} new rows "
                f"({counts.get('duplicate', '?')} already there)")
    lines = [line for line in (result.exc_string or "").strip().splitlines() if line.strip()]
    error = lines[-1].strip()[:70] if lines else result.type.name.lower()
    return f"an attempt failed ({error}), the batch in flight rolled back"
