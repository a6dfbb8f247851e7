"""A job that meets a database without the ingest schema: one sentence naming the fix, and an
error RQ retries (a migration may come first), never a psycopg2 traceback that fails it for good."""

from __future__ import annotations

import pytest

from ingest_workers.core.config import Settings
from ingest_workers.core.errors import SchemaMissing
from ingest_workers.ops.history_writer import HistoryWriter
from ingest_workers.pipeline import postgres_retry
from ingest_workers.runtime.jobs import RETRYABLE
from ingest_workers.runtime.resources import Resources

pytestmark = pytest.mark.integration


def test_a_job_on_a_database_never_migrated_fails_in_one_retryable_sentence(empty_database: str) -> None:
    res = Resources(Settings(database_url=empty_database, pg_retry_seconds=1), {})
    try:
        with pytest.raises(SchemaMissing) as caught:
            HistoryWriter(postgres_retry(res)).started("run-1-shop", "run-1", "shop")
    finally:
        res.close()
    assert str(caught.value).startswith("the database has no ingest schema: run ingest db migrate (")
    assert isinstance(caught.value, RETRYABLE)
