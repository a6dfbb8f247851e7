"""`ingest run` on one machine: inline (`--workers 0`) or N local workers, the same tables
either way, and the time limit (`--timeout`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.localrun import WAITING, stop_unfinished
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests import plugins
from tests.conftest import TABLES
from tests.helpers import DEFAULT_SOURCES, broken_products, free_port, scalar, wait_until

pytestmark = pytest.mark.integration

# Lineage and clock columns differ from run to run; everything else must not.
VOLATILE = ["id", "run_id", "job_id", "fetched_at", "loaded_at", "created_at", "rejected_at"]
COMPARED = ("products", "stock_quotes", "social_mentions", "posts", "sensor_readings", "alerts", "rejected_records",
            "source_cursors")


ALLOW_PLUGINS = {"INGEST_PLUGINS": "tests.plugins"}


def ingest_run(services: Services, tmp_path: Path, *args: str, catalog: Path | None = None,
               env: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """`ingest run ARGS` in this process (CliRunner); its exit code, output and summary."""
    out = tmp_path / "out" / "summary.json"
    out.unlink(missing_ok=True)
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING"]
    flags += ["--catalog", str(catalog or DEMO_CATALOG)]
    result = CliRunner().invoke(main, [*flags, "run", *args, "--out", str(out)], env=env)
    return result.exit_code, result.output, json.loads(out.read_text()) if out.exists() else {}


def table_contents(pg: psycopg2.extensions.connection) -> dict[str, list[str]]:
    """Each table's rows as sorted JSON, without the columns (and copied row fields) that
    name the run or the clock."""
    contents = {}
    with pg, pg.cursor() as cur:
        for table in COMPARED:
            volatile = {*VOLATILE, "updated_at"} if table == "source_cursors" else set(VOLATILE)
            cur.execute(f"SELECT to_jsonb(t) FROM {table} t")
            contents[table] = sorted(json.dumps(_without(row[0], volatile), sort_keys=True) for row in cur.fetchall())
    return contents


def _without(row: dict, volatile: set[str]) -> dict:
    return {key: _without(value, volatile) if isinstance(value, dict) and key == "row_data" else value
            for key, value in row.items() if key not in volatile}


def start_afresh(redis_client: redis.Redis, pg: psycopg2.extensions.connection) -> None:
    redis_client.flushdb()
    with pg, pg.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(TABLES)}")


def test_inline_and_two_workers_load_identical_tables(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    records = 600
    mock_server.config = MockConfig(records=records)
    env = {"INGEST_MOCK_URL": mock_server.url, "INGEST_SYNTHETIC_RECORDS": str(records), "INGEST_JOB_RETRIES": "0"}
    runs = {}
    for name, workers, prefetch in (("inline", "0", "2"), ("inline, no read-ahead", "0", "0"),
                                    ("two workers", "2", "2")):
        start_afresh(redis_client, pg)
        code, output, summary = ingest_run(services, tmp_path, "--workers", workers,
                                           env={**env, "INGEST_PREFETCH_PAGES": prefetch})
        assert code == 0, output
        assert set(summary["sources"]) == set(DEFAULT_SOURCES) and summary["totals"]["fetched"] == 9 * records
        runs[name] = table_contents(pg)
    inline = runs["inline"]
    assert all(inline[table] for table in COMPARED), "every table has rows to compare"
    for name, contents in runs.items():
        for table in COMPARED:
            assert contents[table] == inline[table], f"{table}: {name} differs from inline"


def test_inline_runs_a_stage_in_the_calling_process(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f"""
[sources.shop_a]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/products"
fields = {{ product_id = "id", name = "title" }}
stages = ["tests.plugins:NotePid"]
""", encoding="utf-8")
    plugins.STAGE_CALLS.clear()
    code, output, _ = ingest_run(services, tmp_path, "--workers", "0", catalog=catalog)
    assert code == 1 and "stage 'tests.plugins:NotePid': module tests.plugins is not allowed by INGEST_PLUGINS" \
        in output, output  # a worker's permission, inline too
    plugins.STAGE_CALLS.clear()
    start_afresh(redis_client, pg)
    code, output, _ = ingest_run(services, tmp_path, "--workers", "0", catalog=catalog, env=ALLOW_PLUGINS)
    assert code == 0, output
    # This process, and its main thread (the source is read ahead in another thread; the stages are not).
    assert plugins.STAGE_CALLS == [(os.getpid(), True)]
    loaded = 1000 - broken_products(1000)
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_a'") == loaded

    plugins.STAGE_CALLS.clear()
    start_afresh(redis_client, pg)
    code, output, _ = ingest_run(services, tmp_path, "--workers", "1", catalog=catalog, env=ALLOW_PLUGINS)
    assert code == 0, output
    assert plugins.STAGE_CALLS == []  # a worker process ran it
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_a'") == loaded


def slow_catalog(path: Path, url: str) -> Path:
    """`broken` (a 404), `quick` (one page), then `slow` (100 pages), then `never`, 0.2 s per page."""
    entries = [f"""
[sources.{name}]
kind = "http_json"
dataset = "products"
url = "{url}{path}"
page_size = {size}
fields = {{ product_id = "id", name = "title" }}
""" for name, path, size in (("broken", "/missing", 10), ("quick", "/products", 2000), ("slow", "/products", 10),
                             ("never", "/products", 2000))]
    path.write_text("[settings]\nbatch_size = 20\njob_retries = 0\n" + "".join(entries), encoding="utf-8")
    return path


def test_time_limit_inline_stops_the_job_and_skips_the_rest(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.2)
    catalog = slow_catalog(tmp_path / "catalog.toml", mock_server.url)
    code, output, summary = ingest_run(services, tmp_path, "--workers", "0", catalog=catalog,
                                       env={"INGEST_TIMEOUT": "6"})  # quick's one page fits, slow's 20 s do not
    assert code == 1
    assert summary["ok"] is False
    assert summary["unfinished"] == {"slow": "stopped while running (time limit 6s)",
                                     "never": "cancelled before it started (time limit 6s)"}
    assert "never: did not finish: cancelled before it started" in output
    assert_what_finished_stays(pg, summary)


def test_time_limit_with_workers_cancels_and_stops_the_jobs(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.2)
    catalog = slow_catalog(tmp_path / "catalog.toml", mock_server.url)
    code, output, summary = ingest_run(services, tmp_path, "--workers", "1", "--timeout", "8", catalog=catalog)
    assert code == 1
    assert summary["unfinished"] == {"slow": "stopped while running (time limit 8s)",
                                     "never": "cancelled before it started (time limit 8s)"}
    jobs = {job.meta["source"]: job for job in Job.fetch_many(
        [f"{summary['run_id']}-{name}" for name in ("broken", "quick", "slow", "never")], connection=redis_client,
        serializer=JSONSerializer)}
    assert {name: job.get_status() for name, job in jobs.items()} == {
        "broken": JobStatus.FAILED, "quick": JobStatus.FINISHED, "slow": JobStatus.STOPPED,
        "never": JobStatus.CANCELED}
    slow = summary["sources"]["slow"]
    assert slow["errors"] == ["stopped: the run's time limit (8s) passed"]
    # What it committed before it was stopped, counted from the tables.
    assert slow["loaded"] == scalar(pg, "SELECT count(*) FROM products WHERE source = 'slow'") > 0
    assert slow["rejected"] == scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = 'slow'")
    assert slow["fetched"] == slow["loaded"] + slow["rejected"]
    assert_what_finished_stays(pg, summary)


def assert_what_finished_stays(pg: psycopg2.extensions.connection, summary: dict) -> None:
    # A job that failed on its own before the limit is a failure, not "did not finish".
    assert summary["sources"]["broken"]["failed_jobs"] == 1 and "broken" not in summary["unfinished"]
    assert summary["sources"]["quick"]["loaded"] == 1000 - broken_products(1000)
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'quick'") == 1000 - broken_products(1000)
    # The stopped job's committed batches stay; the one in flight rolled back whole.
    slow = scalar(pg, "SELECT count(*) FROM products WHERE source = 'slow'") + \
        scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = 'slow'")
    assert 0 < slow < 1000 and slow % 20 == 0
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE source = 'never'") == 0


def test_a_job_waiting_for_its_retry_is_cancelled(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, tmp_path: Path,
) -> None:
    settings = dataclasses.replace(settings, job_retries=1, http_max_attempts=1)
    unreachable = SourceSpec(name="shop_down", kind="http_json", dataset="products", url=f"http://127.0.0.1:{free_port()}")
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        [job] = enqueue_run(queue, settings, [unreachable], "run-1")
        # A connection refused is transient: RQ schedules the job's retry 5 s later.
        wait_until(lambda: queue.fetch_job(job.job_id).get_status() == JobStatus.SCHEDULED, timeout=30)
        # (RQ sets the status before it writes the retry's schedule: cancelling must not lose that race.)
        assert stop_unfinished(queue, [job.job_id]) == {job.job_id: WAITING}
    assert queue.fetch_job(job.job_id).get_status() == JobStatus.CANCELED
    assert queue.scheduled_job_registry.count == 0


def test_ctrl_c_inline_ends_the_run_after_the_job_in_hand(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.2)
    catalog = slow_catalog(tmp_path / "catalog.toml", mock_server.url)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))  # while `slow` runs
    timer.start()
    try:
        code, output, summary = ingest_run(services, tmp_path, "--workers", "0", catalog=catalog)
    finally:
        timer.cancel()
    assert code == 1
    assert summary["unfinished"] == {"slow": "interrupted (Ctrl+C)", "never": "cancelled before it started"}
    assert summary["sources"]["quick"]["loaded"] == 1000 - broken_products(1000)
