"""The run history in PostgreSQL (ops.history): what each attempt of a job did, and the sum."""

from __future__ import annotations

import psycopg2.extensions
import pytest

from ingest_workers.core.models import Counts
from ingest_workers.ops.history import JobHistory

pytestmark = pytest.mark.integration


def test_job_history_keeps_each_attempts_counts_and_the_jobs_outcome(pg: psycopg2.extensions.connection) -> None:
    """A job that failed after loading 300 records and was retried; the retry read the source again
    (it did not continue from a saved page), so its counts are the job's outcome."""
    history = JobHistory(pg)
    history.started("job-1", "run-1", "src")
    history.failed("job-1", Counts(fetched=400, rejected=10, duplicate=90, loaded=300), "TransientError: down")
    history.started("job-1", "run-1", "src")
    history.finished("job-1", Counts(fetched=1000, rejected=10, duplicate=290, loaded=700))
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, attempts, fetched, rejected, duplicate, loaded, attempt_counts FROM ingest_jobs")
        status, attempts, fetched, rejected, duplicate, loaded, per_attempt = cur.fetchone()
    assert (status, attempts) == ("finished", 2)
    assert (fetched, rejected, duplicate, loaded) == (1000, 10, 290, 700)
    assert per_attempt == [
        {"attempt": 1, "status": "failed", "fetched": 400, "rejected": 10, "duplicate": 90, "loaded": 300,
         "updated": 0, "deleted": 0},
        {"attempt": 2, "status": "finished", "fetched": 1000, "rejected": 10, "duplicate": 290, "loaded": 700,
         "updated": 0, "deleted": 0},
    ]
