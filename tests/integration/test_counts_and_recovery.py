"""Counting and recovery: each outcome is counted where it happens and a job's counts must add up;
a split batch replayed after a lost connection counts and hands on what it had committed; the job
history records each attempt and the job's outcome once; a job that will run again is waiting,
not failed; the bookkeeping of a failed job never replaces its error."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest
import redis

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import CircuitOpen, CountMismatch, PermanentError, ServiceUnavailable
from ingest_workers.core.models import Counts, Lineage, Record, SourceSpec
from ingest_workers.datasets import PRODUCTS
from ingest_workers.ops.console.queries import source_runs
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.history_writer import HistoryWriter
from ingest_workers.ops.metrics import MetricsRecorder
from ingest_workers.pipeline.job import JobRun
from ingest_workers.runtime.resources import Resources
from ingest_workers.testing.chaos import dsn_through, postgres_address
from ingest_workers.testing.tcpproxy import CuttableProxy
from tests.helpers import scalar

pytestmark = pytest.mark.integration
LINEAGE = Lineage("cut_shop", "run-1", "job-1", "2026-01-01T00:00:00+00:00")


def posts(count: int, **changes: Any) -> SourceSpec:
    values: dict[str, Any] = {"name": "plugin_posts", "kind": "tests.plugins:CountingSource", "dataset": "posts",
                              "fields": {"post_id": "id", "user_id": "userId"}, "options": {"count": count}, **changes}
    return SourceSpec(**values)


@pytest.fixture
def res(services: Any, settings: Settings) -> Iterator[Resources]:
    resources = Resources(settings, {})
    yield resources
    resources.close()


def job_row(pg: psycopg2.extensions.connection, job_id: str) -> tuple[Any, ...]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, fetched, rejected, duplicate, loaded, updated, error FROM ingest_jobs "
                    "WHERE job_id = %s", (job_id,))
        return cur.fetchone()


def test_a_stage_that_loses_records_fails_the_job_in_strict_mode_and_is_logged_otherwise(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        caplog: pytest.LogCaptureFixture) -> None:
    """A planted miscount: a buggy plugin stage drops every third of 30 records without rejecting them."""
    spec = posts(30, stages=["tests.plugins:LosesRecords"])
    strict = Resources(settings, {})
    try:
        with pytest.raises(CountMismatch, match=r"-?10 records fetched but not counted"):
            pipeline.run_fetch_job(spec, "run-1", "run-1-posts", "inline", strict)
    finally:
        strict.close()
    status, fetched, _, _, loaded, _, error = job_row(pg, "run-1-posts")
    assert (status, fetched, loaded) == ("failed", 30, 20)
    assert error.startswith("CountMismatch: ")

    lax = Resources(dataclasses.replace(settings, strict_counts=False), {})
    try:
        with caplog.at_level(logging.ERROR, logger="ingest_workers.pipeline.job"):
            counts = pipeline.run_fetch_job(posts(30, stages=["tests.plugins:LosesRecords"], name="other_posts"),
                                            "run-2", "run-2-posts", "inline", lax)
    finally:
        lax.close()
    assert (counts.fetched, counts.loaded, counts.unaccounted()) == (30, 20, 10)
    assert job_row(pg, "run-2-posts")[0] == "finished"
    assert any("the counts do not add up" in r.getMessage() for r in caplog.records)


def test_every_count_is_taken_where_it_happens_and_adds_up(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, res: Resources) -> None:
    """30 records: the first run loads them; the second finds 30 the dedup filter drops; after Redis
    forgets them, the third finds 30 that PostgreSQL already holds (ON CONFLICT did nothing)."""
    first = pipeline.run_fetch_job(posts(30), "run-1", "job-1", "q", res)
    second = pipeline.run_fetch_job(posts(30), "run-2", "job-2", "q", res)
    redis_client.flushdb()
    third = pipeline.run_fetch_job(posts(30), "run-3", "job-3", "q", res)
    assert first.to_dict() == {"fetched": 30, "rejected": 0, "duplicate": 0, "loaded": 30, "updated": 0, "deleted": 0}
    assert second.to_dict() == third.to_dict() == {"fetched": 30, "rejected": 0, "duplicate": 30, "loaded": 0,
                                                   "updated": 0, "deleted": 0}


class CutDuringSecondWrite:
    """A transactional sink that cuts PostgreSQL's connection inside the second transaction that
    writes rows (the batch is being split), and lets it back 0.3 s later."""

    in_transaction = True

    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy, self.calls = proxy, 0

    def consume(self, rows: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            self.proxy.cut()
            threading.Timer(0.3, self.proxy.restore).start()


class Remember:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def consume(self, rows: Any) -> None:
        self.rows.extend(row["product_id"] for row in rows)


def product(pid: str, price: str = "1.00") -> dict[str, Any]:
    return {"product_id": pid, "name": pid, "price": Decimal(price), "currency": "USD", "category": None,
            "in_stock": None, "updated_at": None, "source": LINEAGE.source, "run_id": "run-1", "job_id": "job-1",
            "fetched_at": LINEAGE.fetched_at, "raw": {"id": pid}}


def test_a_split_batch_replayed_after_a_lost_connection_counts_what_it_had_committed(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings) -> None:
    """8 rows, P6's price overflows numeric(12,2): the loader splits the batch; P0-P3 commit on their
    own, then the connection is cut while P4-P5 are written. PostgresRetry replays the batch: P0-P3
    are loaded (not duplicates) and reach the after-commit sink once, with the others."""
    proxy = CuttableProxy(postgres_address(settings.database_url)).start()
    settings = dataclasses.replace(settings, database_url=dsn_through(settings.database_url, proxy.address),
                                   pg_retry_seconds=20)
    cutter, after = CutDuringSecondWrite(proxy), Remember()
    res = Resources(settings, {})
    try:
        loader = pipeline.BatchLoader(PRODUCTS, LINEAGE, res, MetricsRecorder(), pipeline.postgres_retry(res),
                                      sinks=[cutter, after])
        batch = [Record({"id": f"P{i}"}, product(f"P{i}", "123456789012.00" if i == 6 else "1.00")) for i in range(8)]
        outcome = loader.load(list(batch))
    finally:
        proxy.close()
        res.close()
    assert proxy.cuts >= 1 and cutter.calls >= 4  # the cut came, and the replay wrote again
    assert (outcome.loaded, outcome.duplicate, outcome.rejected, outcome.taken) == (7, 0, 1, 8)
    assert sorted(after.rows) == ["P0", "P1", "P2", "P3", "P4", "P5", "P7"]
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'cut_shop'") == 7
    assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = 'cut_shop' AND stage = 'load'") == 1


def test_the_job_row_holds_the_jobs_outcome_and_each_attempt_is_kept(pg: psycopg2.extensions.connection) -> None:
    """Attempt 1 failed after loading 300; attempt 2 read the source again (1000 records: the 300 are
    duplicates now). Attempt 3 ran again and continued from a saved page: its counts add to the job's."""
    history = JobHistory(pg)
    history.started("job-1", "run-1", "src")
    history.failed("job-1", Counts(fetched=400, rejected=10, duplicate=90, loaded=300), "TransientError: down")
    history.started("job-1", "run-1", "src")
    history.ended("job-1", "retrying", Counts(fetched=600, rejected=10, duplicate=300, loaded=290), "TransientError")
    assert job_row(pg, "job-1")[:5] == ("retrying", 600, 10, 300, 290)
    history.started("job-1", "run-1", "src")
    history.finished("job-1", Counts(fetched=400, duplicate=10, loaded=390), continued=True)
    assert job_row(pg, "job-1")[:6] == ("finished", 1000, 10, 310, 680, 0)
    assert scalar(pg, "SELECT attempts FROM ingest_jobs WHERE job_id = 'job-1'") == 3
    with pg, pg.cursor() as cur:
        cur.execute("SELECT attempt_counts FROM ingest_jobs WHERE job_id = 'job-1'")
        [attempts] = cur.fetchone()
    assert [(a["attempt"], a["status"], a["loaded"]) for a in attempts] == [
        (1, "failed", 300), (2, "retrying", 290), (3, "finished", 390)]
    assert scalar(pg, "SELECT sum((e->>'loaded')::int) FROM ingest_jobs, jsonb_array_elements(attempt_counts) e "
                      "WHERE job_id = 'job-1'") == 980
    [summary] = history.summarise("run-1")
    assert (summary.jobs, summary.finished, summary.failed) == (1, 1, 0)
    assert summary.counts.to_dict() == {"fetched": 1000, "rejected": 10, "duplicate": 310, "loaded": 680, "updated": 0,
                                        "deleted": 0}


@pytest.mark.parametrize(("error", "runs_again", "status"), [
    (CircuitOpen("circuit open", retry_after=5), True, "deferred"),
    (CircuitOpen("circuit open", retry_after=5), False, "failed"),
    (ServiceUnavailable("PostgreSQL down"), True, "retrying"),
    (PermanentError("HTTP 404"), False, "failed"),
])
def test_a_job_that_will_run_again_is_waiting_not_failed(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, res: Resources,
        monkeypatch: pytest.MonkeyPatch, error: Exception, runs_again: bool, status: str) -> None:
    def fail(*args: Any, **kwargs: Any) -> Iterator[Counts]:
        raise error
        yield Counts()  # a generator, like ingest

    monkeypatch.setattr("ingest_workers.pipeline.job.ingest", fail)
    with pytest.raises(type(error)):
        pipeline.run_fetch_job(posts(3), "run-1", "run-1-posts", "q", res, runs_again=lambda exc: runs_again)
    assert job_row(pg, "run-1-posts")[0] == status
    with pg, pg.cursor() as cur:  # as if the producer had listed it (unfinished lists only listed jobs)
        cur.execute("UPDATE ingest_jobs SET job_args = '[]' WHERE job_id = 'run-1-posts'")
    unfinished = [job.job_id for job in JobHistory(pg).unfinished("run-1")]
    assert unfinished == (["run-1-posts"] if status in ("deferred", "retrying") else [])


@pytest.mark.parametrize("error", [PermanentError("HTTP 404: gone"), CircuitOpen("circuit open", retry_after=5)])
def test_failing_bookkeeping_never_replaces_the_jobs_error(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, res: Resources,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception) -> None:
    """The history and the metrics both fail (as with PostgreSQL and Redis down): RQ must still see
    the PermanentError (no retry) or the CircuitOpen (a deferral), not a retryable ServiceUnavailable."""
    def fail(*args: Any, **kwargs: Any) -> Iterator[Counts]:
        raise error
        yield Counts()

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise ServiceUnavailable("PostgreSQL at postgresql://...: connection refused")

    monkeypatch.setattr("ingest_workers.pipeline.job.ingest", fail)
    monkeypatch.setattr(HistoryWriter, "ended", unavailable)
    monkeypatch.setattr(JobRun, "_finish", unavailable)
    with caplog.at_level(logging.ERROR, logger="ingest_workers.pipeline.job"), pytest.raises(type(error)) as caught:
        pipeline.run_fetch_job(posts(3), "run-1", "run-1-posts", "q", res, runs_again=lambda exc: True)
    assert caught.value is error
    recorded = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert len(recorded) == 2 and all("ServiceUnavailable" in line for line in recorded)


@pytest.mark.parametrize(("status", "outcome"), [("deferred", "running"), ("retrying", "running"),
                                                  ("failed", "failed")])
def test_the_console_shows_a_run_with_a_waiting_job_as_running(
        pg: psycopg2.extensions.connection, status: str, outcome: str) -> None:
    history = JobHistory(pg)
    history.started("run-1-a", "run-1", "a")
    history.finished("run-1-a", Counts(fetched=1, loaded=1))
    history.started("run-1-b", "run-1", "a")
    history.ended("run-1-b", status, Counts(), "TransientError: HTTP 503")
    [run] = source_runs(pg, "a", days=1, limit=5)
    assert (run.run_id, run.jobs, run.outcome) == ("run-1", 2, outcome)
