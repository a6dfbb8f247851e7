"""Slow sources: one job against ``ingest mock-sources --latency`` at several fetch concurrencies,
and the same job held by its source's rate limit (issue 15's benchmark 1)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
import redis

from ingest_workers.ops.metrics import FETCH_REQUESTS, read_counters
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session

from . import runs
from .profiling import Profile, profile_job
from .services import Bench, mock_server

LEVELS = (1, 4, 8, 16)


@dataclass(frozen=True)
class Limited:
    """The rate-limited run: records/s, and requests/s over the job's own span against the limit."""

    result: runs.RunResult
    requests: int
    job_seconds: float
    limit: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.job_seconds


def by_concurrency(bench: Bench, worker_class: str, records: int, latency: float, rounds: int,
                   rate_limit: float, limited_concurrency: int = 8
                   ) -> tuple[dict[int, runs.RunResult], Limited, Profile]:
    """Records/s of one plain job (one worker) at each of :data:`LEVELS`, best of ``rounds``
    (round after round, so drift hits every level alike); then one run at
    ``limited_concurrency`` under a ``rate_limit`` lower than what it could fetch; and the profile
    of the job at concurrency 8."""
    best: dict[int, runs.RunResult] = {}
    with mock_server(records, cache_mb=64, latency=latency) as url:
        slow = bench.with_mock(url).with_records(records)
        _warm(slow)
        for round_number in range(1, rounds + 1):
            for level in LEVELS:
                result = runs.run_plain(slow.with_settings(fetch_concurrency=level), worker_class,
                                        f"slow-{round_number}-{level}")
                if level not in best or result.seconds < best[level].seconds:
                    best[level] = result
        limited = slow.with_settings(fetch_concurrency=limited_concurrency).with_spec(rate_limit=rate_limit)
        result = runs.run_plain(limited, worker_class, "slow-limited")
        requests, job_seconds = _requests_and_span(limited, "slow-limited")
        profile = profile_job(slow.with_settings(fetch_concurrency=8))
    return best, Limited(result, requests, job_seconds, rate_limit), profile


def _warm(bench: Bench) -> None:
    """Ask the mock for every page of a plain job once (fills its page cache), 16 at a time."""
    client = HttpClient(make_session(), timeout=(5, 60), policy=RetryPolicy())
    for _ in make_source(bench.spec, SourceContext(client, fetch_concurrency=16)).stream():
        pass


def _requests_and_span(bench: Bench, run_id: str) -> tuple[int, float]:
    """The HTTP requests the run's job made (its metrics) and its span from start to finish (``ingest_jobs``)."""
    client = redis.Redis.from_url(bench.settings.redis_url)
    requests = int(sum(read_counters(client, FETCH_REQUESTS, [(bench.spec.name, c) for c in ("2xx", "4xx", "5xx",
                                                                                             "error")])))
    client.close()
    conn = psycopg2.connect(bench.settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM finished_at - started_at) FROM ingest_jobs WHERE run_id = %s",
                    (run_id,))
        seconds = float(cur.fetchone()[0])
    conn.close()
    return requests, seconds
