"""Freshness: how long a small job takes from enqueue to its rows committed, on idle workers
(issue 15's benchmark 4). Each job is one backfill window of one page; the next is enqueued
only once the one before has ended, so every job finds the workers idle."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg2
import redis
from rq import Queue
from rq.queue import EnqueueData

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.producer import enqueue_backfill, job_data, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.testing.mock_sources.feed import EPOCH

from .runs import _ended, wait_for_workers
from .services import Bench, mock_server, reset_state, worker_environment

RECORDS_PER_JOB = 100  # one page (pages hold 500)


@dataclass(frozen=True)
class Latencies:
    seconds: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)


def one_page_jobs(bench: Bench, worker_class: str, jobs: int, workers: int = 2) -> tuple[Latencies, Latencies]:
    """``jobs`` one-page jobs one after another: enqueue (the producer ``ingest enqueue`` calls) ->
    rows committed (the job's ``ingest_jobs.finished_at``, written right after its last commit).
    Then, on the same workers, as many no-op RQ jobs: enqueue -> RQ saw it finished (the floor)."""
    with mock_server(jobs * RECORDS_PER_JOB, cache_mb=32) as url:
        fresh = bench.with_mock(url).with_records(jobs * RECORDS_PER_JOB)
        settings = fresh.settings
        _warm(fresh, jobs)
        reset_state(settings)
        client = redis.Redis.from_url(settings.redis_url)
        queue = make_queue(client, settings)
        conn = psycopg2.connect(settings.database_url)
        conn.autocommit = True
        ours, floor = [], []
        log = fresh.out / "workers.log"
        with local_workers(settings, workers, worker_environment(url), log, worker_class):
            wait_for_workers(client, queue, workers, log)
            for index in range(jobs):
                since = EPOCH + timedelta(seconds=index * RECORDS_PER_JOB)
                until = since + timedelta(seconds=RECORDS_PER_JOB)
                ended_before, enqueued_at = _ended(queue), time.time()
                _, planned = enqueue_backfill(queue, settings, [fresh.spec], since, until,
                                              timedelta(seconds=RECORDS_PER_JOB), f"fresh-{index}")
                _wait_for_end(queue, ended_before)
                ours.append(_finished_at(conn, planned[0].job_id) - enqueued_at)
            for index in range(jobs):
                ended_before, enqueued_at = _ended(queue), time.time()
                queue.enqueue_many([noop_job(settings, f"noop-{index}")])
                _wait_for_end(queue, ended_before)
                floor.append(time.time() - enqueued_at)
        conn.close()
        client.close()
    return Latencies(ours), Latencies(floor)


NOOP_SOURCE = SourceSpec(name="bench_noop", kind="synthetic", dataset="sensors", options={"records": 0},
                         rate_limit=0)


def noop_job(settings: Settings, job_id: str) -> EnqueueData:
    """A real job of this package that does nothing: ``fetch_source`` of a synthetic source of no
    records (its ``ingest_jobs`` row, its metrics, nothing fetched or loaded). ``IngestWorker`` runs
    only this package's jobs, so the floor is measured with one of them."""
    return job_data(settings, job_id, NOOP_SOURCE.name, job_id, [NOOP_SOURCE.to_dict(), job_id])


def _wait_for_end(queue: Queue, ended_before: int) -> None:
    """Until one more job is in RQ's finished or failed registry (polled every millisecond)."""
    deadline = time.monotonic() + 60
    while _ended(queue) <= ended_before:
        if time.monotonic() > deadline:
            raise SystemExit(f"a freshness job did not end within 60 s (queued: {queue.count}, workers: "
                             f"{len(queue.connection.smembers('rq:workers'))})")
        time.sleep(0.001)


def _finished_at(conn: psycopg2.extensions.connection, job_id: str) -> float:
    with conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM finished_at), error FROM ingest_jobs WHERE job_id = %s", (job_id,))
        row = cur.fetchone()
    if row is None or row[0] is None or row[1]:
        raise SystemExit(f"freshness job {job_id} did not finish: {row}")
    return float(row[0])


def _warm(bench: Bench, jobs: int) -> None:
    client = HttpClient(make_session(), timeout=(5, 60), policy=RetryPolicy())
    for index in range(jobs):
        since = EPOCH + timedelta(seconds=index * RECORDS_PER_JOB)
        context = SourceContext(client, since=since.isoformat(),
                                until=(since + timedelta(seconds=RECORDS_PER_JOB)).isoformat())
        for _ in make_source(bench.spec, context).stream():
            pass
