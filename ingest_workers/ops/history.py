"""The history of fetch jobs in PostgreSQL (``ingest_jobs``): written by the pipeline,
read by summaries. PostgreSQL, not Redis, so it survives a Redis restart."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from ..core.connections import postgres_errors
from ..core.models import Counts


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
                    "loaded = %s, updated = %s, finished_at = now() WHERE job_id = %s",
                    (counts.fetched, counts.rejected, counts.duplicate, counts.loaded, counts.updated, job_id))

    def failed(self, job_id: str, counts: Counts, error: str) -> None:
        self._write("UPDATE ingest_jobs SET status = 'failed', fetched = %s, rejected = %s, duplicate = %s, "
                    "loaded = %s, updated = %s, error = %s, finished_at = now() WHERE job_id = %s",
                    (counts.fetched, counts.rejected, counts.duplicate, counts.loaded, counts.updated, error[:2000],
                     job_id))

    def abandoned(self, job_id: str, source: str, table: str, reason: str) -> None:
        """Mark ``job_id`` failed with ``reason`` if its process was stopped while it ran (it could
        not record its end), with the counts of what it committed: rows in ``table`` and rejections."""
        statement = sql.SQL(
            "UPDATE ingest_jobs SET status = 'failed', error = %(reason)s, finished_at = now(), duplicate = 0, "
            "updated = 0, "
            "loaded = (SELECT count(*) FROM {table} WHERE source = %(source)s AND job_id = %(job)s), "
            "rejected = (SELECT count(*) FROM rejected_records WHERE source = %(source)s AND job_id = %(job)s) "
            "WHERE job_id = %(job)s AND status = 'started'").format(table=sql.Identifier(table))
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, {"reason": reason[:2000], "source": source, "job": job_id})
            cur.execute("UPDATE ingest_jobs SET fetched = loaded + rejected WHERE job_id = %s AND error = %s",
                        (job_id, reason[:2000]))

    def attempts(self, job_ids: list[str]) -> dict[str, int]:
        """How many times each of ``job_ids`` started (jobs never started are absent)."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT job_id, attempts FROM ingest_jobs WHERE job_id = ANY(%s)", (list(job_ids),))
            return {job_id: int(attempts) for job_id, attempts in cur.fetchall()}

    def summarise(self, run_id: str) -> list[SourceSummary]:
        """Per source: jobs, their counts and errors, and the wall time from first start to last finish."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE status = 'finished'), "
                "count(*) FILTER (WHERE status = 'failed'), sum(fetched), sum(rejected), sum(duplicate), "
                "sum(loaded), sum(updated), extract(epoch FROM max(finished_at) - min(started_at)), "
                "array_remove(array_agg(DISTINCT error), NULL) "
                "FROM ingest_jobs WHERE run_id = %s GROUP BY source ORDER BY source", (run_id,))
            return [SourceSummary(source, jobs, finished, failed,
                                  Counts(int(f), int(r), int(d), int(lo), int(up)), float(seconds or 0.0),
                                  tuple(errors))
                    for source, jobs, finished, failed, f, r, d, lo, up, seconds, errors in cur.fetchall()]

    def _write(self, statement: str, params: tuple[object, ...]) -> None:
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, params)
