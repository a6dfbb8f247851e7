"""A run's job list in PostgreSQL, and jobs that Redis lost enqueued again from it
(`ingest runs reconcile RUN_ID`, and `ingest enqueue --wait` by itself)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner
from rq.job import Job

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.connections import connect_postgres
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.breaker import BreakerPolicy, CircuitBreaker
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import CLAIM_PREFIX, enqueue_run, make_queue
from ingest_workers.runtime.reconcile import reconcile_run
from ingest_workers.runtime.workerpool import local_workers, worker_env
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import broken_products, scalar, write_catalog

pytestmark = pytest.mark.integration
RECORDS = 600
VALID = RECORDS - broken_products(RECORDS)


def spec(server: MockServer, name: str) -> SourceSpec:
    return SourceSpec(name=name, kind="http_json", dataset="products", url=f"{server.url}/products", page_size=100,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0)


def lose(client: redis.Redis, queue_name: str, job_id: str) -> None:
    """What an asynchronous failover can drop: the job, its place in the queue, its claim."""
    client.delete(Job.key_for(job_id), CLAIM_PREFIX + job_id)
    client.lrem(f"rq:queue:{queue_name}", 0, job_id)


def test_only_the_job_redis_lost_is_enqueued_again_and_only_once(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer) -> None:
    queue = make_queue(redis_client, settings)
    enqueued = enqueue_run(queue, settings, [spec(mock_server, n) for n in ("a", "b", "c")], "run-r1", JobHistory(pg))
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE run_id = 'run-r1' AND status = 'enqueued'") == 3
    lose(redis_client, settings.queue, "run-r1-b")

    assert reconcile_run(queue, settings, JobHistory(pg), "run-r1") == ["run-r1-b"]
    assert reconcile_run(queue, settings, JobHistory(pg), "run-r1") == []  # Redis knows it again
    assert sorted(queue.get_job_ids()) == sorted(e.job_id for e in enqueued)
    again = Job.fetch("run-r1-b", connection=redis_client, serializer=queue.serializer)
    assert again.args[0]["name"] == "b" and again.args[1] == "run-r1" and again.meta["source"] == "b"


def test_reconcilers_running_at_once_enqueue_each_lost_job_once(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer) -> None:
    names = [f"s{i}" for i in range(20)]
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, [spec(mock_server, n) for n in names], "run-r5", JobHistory(pg))
    lost = [f"run-r5-{n}" for n in names[::2]]
    for job_id in lost:
        lose(redis_client, settings.queue, job_id)
    reconcilers, start = 4, threading.Barrier(4)
    results: list[list[str]] = [[] for _ in range(reconcilers)]

    def reconcile(index: int) -> None:  # each one its own connections, as separate `ingest runs reconcile`s
        client, conn = redis.Redis.from_url(settings.redis_url), connect_postgres(settings.database_url)
        try:
            start.wait(timeout=30)
            results[index] = reconcile_run(make_queue(client, settings), settings, JobHistory(conn), "run-r5")
        finally:
            conn.close()
            client.close()

    threads = [threading.Thread(target=reconcile, args=(i,)) for i in range(reconcilers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(job_id for result in results for job_id in result) == sorted(lost)  # each by one of them
    queued = [job_id.decode() for job_id in redis_client.lrange(f"rq:queue:{settings.queue}", 0, -1)]
    assert sorted(queued) == sorted(f"run-r5-{n}" for n in names)  # every job once: none lost, none twice


def test_a_job_that_ran_and_is_enqueued_again_loads_nothing_twice(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=RECORDS)
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        enqueued = enqueue_run(queue, settings, [spec(mock_server, "shop")], "run-r2", JobHistory(pg))
        assert wait_for_jobs(queue, [e.job_id for e in enqueued], lambda s: None, timeout=60).failed == 0
        # Redis loses everything, and PostgreSQL never saw the job's end (its worker died after the last commit).
        redis_client.flushdb()
        with pg, pg.cursor() as cur:
            cur.execute("UPDATE ingest_jobs SET status = 'started', finished_at = NULL WHERE job_id = 'run-r2-shop'")
        assert reconcile_run(queue, settings, JobHistory(pg), "run-r2") == ["run-r2-shop"]
        assert wait_for_jobs(queue, ["run-r2-shop"], lambda s: None, timeout=60).failed == 0
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop'") == VALID
    assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = 'shop'") == RECORDS - VALID
    assert scalar(pg, "SELECT attempts FROM ingest_jobs WHERE job_id = 'run-r2-shop'") == 2
    # Each attempt is kept: the first loaded everything; the second read the whole source again and
    # loaded nothing (all were there already). The job's row holds its outcome: the last attempt's
    # counts (it did not continue from a saved page), which still add up.
    assert scalar(pg, "SELECT (attempt_counts->0->>'loaded')::int FROM ingest_jobs WHERE job_id = 'run-r2-shop'") \
        == VALID
    assert scalar(pg, "SELECT (attempt_counts->-1->>'loaded')::int FROM ingest_jobs WHERE job_id = 'run-r2-shop'") == 0
    with pg, pg.cursor() as cur:
        cur.execute("SELECT fetched, rejected, duplicate, loaded FROM ingest_jobs WHERE job_id = 'run-r2-shop'")
        assert cur.fetchone() == (RECORDS, RECORDS - VALID, VALID, 0)
    assert reconcile_run(queue, settings, JobHistory(pg), "run-r2") == []  # finished: nothing to do


def test_runs_reconcile_command_says_what_it_enqueued(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer) -> None:
    queue = make_queue(redis_client, settings)
    enqueue_run(queue, settings, [spec(mock_server, "a"), spec(mock_server, "b")], "run-r3", JobHistory(pg))
    lose(redis_client, settings.queue, "run-r3-a")
    env = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url, "INGEST_QUEUE": settings.queue}
    first = CliRunner().invoke(main, ["runs", "reconcile", "run-r3"], env=env)
    second = CliRunner().invoke(main, ["runs", "reconcile", "run-r3"], env=env)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.output.splitlines() == ["enqueued again: run-r3-a", "run run-r3: 1 job(s) enqueued again"]
    assert second.output.strip() == "run run-r3: Redis knows every unfinished job; nothing to enqueue"
    assert redis_client.llen(f"rq:queue:{settings.queue}") == 2


def test_enqueue_wait_enqueues_again_a_job_redis_lost_while_it_waited(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=RECORDS)
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products", name="shop")
    producer = subprocess.Popen([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "enqueue",
                                 "--sources", "all", "--run-id", "run-r4", "--wait", "--timeout", "90"],
                                env=worker_env(settings, os.environ), cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not redis_client.exists(Job.key_for("run-r4-shop")):
            assert time.monotonic() < deadline and producer.poll() is None, "the job was never enqueued"
            time.sleep(0.1)
        redis_client.flushdb()  # no worker has taken it yet: Redis restarted empty
        with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
            out, err = producer.communicate(timeout=90)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    assert producer.returncode == 0, out.decode() + err.decode()
    assert "Redis lost job run-r4-shop; enqueued it again" in err.decode()
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop'") == VALID
    with pg, pg.cursor() as cur:
        cur.execute("SELECT status, attempts FROM ingest_jobs WHERE job_id = 'run-r4-shop'")
        assert cur.fetchone() == ("finished", 1)


def test_a_deferred_job_is_unfinished_left_alone_while_redis_holds_it_and_enqueued_again_once_lost(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    """Its source's circuit is open for a minute: the job is deferred through RQ's scheduler and
    recorded as 'deferred' (not failed). Reconcile leaves it while Redis holds it, and enqueues it
    again once Redis lost it."""
    settings = dataclasses.replace(settings, breaker_failures=2, breaker_cooldown=60.0)
    breaker = CircuitBreaker(redis_client, BreakerPolicy(failures=2, cooldown=60.0))
    for _ in range(2):
        breaker.record_failure("shop_down")
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        enqueue_run(queue, settings, [spec(mock_server, "shop_down")], "run-r5", JobHistory(pg))
        deadline = time.monotonic() + 30
        while scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE job_id = 'run-r5-shop_down' "
                         "AND status = 'deferred'") == 0:
            assert time.monotonic() < deadline, "the job was never recorded as deferred"
            time.sleep(0.1)
    assert [job.job_id for job in JobHistory(pg).unfinished("run-r5")] == ["run-r5-shop_down"]
    assert reconcile_run(queue, settings, JobHistory(pg), "run-r5") == []  # RQ's scheduler holds it
    redis_client.zrem(f"rq:scheduled:{settings.queue}", "run-r5-shop_down")
    lose(redis_client, settings.queue, "run-r5-shop_down")
    assert reconcile_run(queue, settings, JobHistory(pg), "run-r5") == ["run-r5-shop_down"]
    assert queue.get_job_ids() == ["run-r5-shop_down"]
