"""The history of fetch jobs in PostgreSQL (``ingest_jobs``): written by the pipeline,
read by summaries. PostgreSQL, not Redis, so it survives a Redis restart."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions

from .connections import postgres_errors
from .models import Counts


@dataclass(frozen=True)
class SourceSummary:
    source: str
    jobs: int
    finished: int
    failed: int
    counts: Counts
    seconds: float
    errors: tuple[str, ...]


class JobHistory:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn

    def started(self, job_id: str, run_id: str, source: str) -> None:
        """Record an attempt of ``job_id`` (a retry of the same job counts attempts)."""
        self._write("INSERT INTO ingest_jobs (job_id, run_id, source, status) VALUES (%s, %s, %s, 'started') "
                    "ON CONFLICT (job_id) DO UPDATE SET status = 'started', attempts = ingest_jobs.attempts + 1, "
                    "started_at = now(), finished_at = NULL, error = NULL",
                    (job_id, run_id, source))

    def finished(self, job_id: str, counts: Counts) -> None:
        self._write("UPDATE ingest_jobs SET status = 'finished', fetched = %s, rejected = %s, duplicate = %s, "
                    "loaded = %s, finished_at = now() WHERE job_id = %s",
                    (counts.fetched, counts.rejected, counts.duplicate, counts.loaded, job_id))

    def failed(self, job_id: str, counts: Counts, error: str) -> None:
        self._write("UPDATE ingest_jobs SET status = 'failed', fetched = %s, rejected = %s, duplicate = %s, "
                    "loaded = %s, error = %s, finished_at = now() WHERE job_id = %s",
                    (counts.fetched, counts.rejected, counts.duplicate, counts.loaded, error[:2000], job_id))

    def abandoned(self, job_ids: list[str], reason: str) -> None:
        """Mark as failed, with ``reason``, those of ``job_ids`` whose process was stopped while
        they ran (they could not record their own end)."""
        self._write("UPDATE ingest_jobs SET status = 'failed', error = %s, finished_at = now() "
                    "WHERE job_id = ANY(%s) AND status = 'started'", (reason[:2000], job_ids))

    def summarise(self, run_id: str) -> list[SourceSummary]:
        """Per source: jobs, their counts and errors, and the wall time from first start to last finish."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE status = 'finished'), "
                "count(*) FILTER (WHERE status = 'failed'), sum(fetched), sum(rejected), sum(duplicate), "
                "sum(loaded), extract(epoch FROM max(finished_at) - min(started_at)), "
                "array_remove(array_agg(DISTINCT error), NULL) "
                "FROM ingest_jobs WHERE run_id = %s GROUP BY source ORDER BY source", (run_id,))
            return [SourceSummary(source, jobs, finished, failed,
                                  Counts(int(f), int(r), int(d), int(lo)), float(seconds or 0.0), tuple(errors))
                    for source, jobs, finished, failed, f, r, d, lo, seconds, errors in cur.fetchall()]

    def _write(self, statement: str, params: tuple[object, ...]) -> None:
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, params)
