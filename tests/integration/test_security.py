"""Security: workers refuse pickled jobs, and planted secrets never show in logs,
command output, the summary or the metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from prometheus_client import generate_latest
from rq import Callback, Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from ingest_workers.core.config import Settings
from ingest_workers.ops.failed import FailedJobs
from ingest_workers.ops.metrics_server import make_registry
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fleet import WorkerFleet
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
TOKEN = "planted-token-7f3a9c"
DB_PASSWORD = "planted-dbpass-51be0d"
URL_KEY = "planted-urlkey-c2e8"


def test_a_worker_refuses_a_pickled_job(redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "the-pickled-job-ran"
    pickled = Queue(settings.queue, connection=redis_client)  # RQ's default serializer: pickle
    pickled.enqueue_call("os.mkdir", args=(str(marker),), job_id="pickled")
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    fleet.start(1)
    try:
        deadline = time.monotonic() + 20
        while redis_client.hget("rq:job:pickled", "status") != b"failed":
            assert time.monotonic() < deadline, "the worker never dealt with the pickled job"
            time.sleep(0.1)
        assert fleet.workers[0].poll() is None  # it refused the job and lives on
    finally:
        fleet.close()
    assert not marker.exists()
    assert "DeserializationError" in (tmp_path / "workers.log").read_text()


def test_a_worker_refuses_a_job_naming_any_other_function(redis_client: redis.Redis, settings: Settings,
                                                           tmp_path: Path) -> None:
    """A JSON job (no pickle needed) naming os.mkdir, and one of ours with a foreign callback: each is
    failed with its reason before anything runs, and never retried."""
    marker, called_back = tmp_path / "the-mkdir-job-ran", tmp_path / "the-callback-ran"
    queue = make_queue(redis_client, settings)
    queue.enqueue_call("os.mkdir", args=(str(marker),), job_id="mkdir", retry=Retry(max=3))
    queue.enqueue_call("ingest_workers.runtime.jobs.fetch_source", args=({"name": "x"}, str(called_back)),
                       job_id="callback", on_failure=Callback("os.mkdir"))
    assert redis_client.hget("rq:job:mkdir", "data")  # as an attacker writes it: plain JSON
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    fleet.start(1)
    try:
        wait_until(lambda: all(redis_client.hget(f"rq:job:{job_id}", "status") == b"failed"
                               for job_id in ("mkdir", "callback")), timeout=30)
        assert fleet.workers[0].poll() is None  # it refused the jobs and lives on
    finally:
        fleet.close()
    assert not marker.exists() and not called_back.exists()
    failed = {job.job_id: job.error for job in FailedJobs(queue).list()}
    assert failed == {"mkdir": "refused: ingest workers only run ingest_workers jobs, not os.mkdir",
                      "callback": "refused: ingest workers only run ingest_workers jobs, not the callback os.mkdir"}
    assert Job.fetch("mkdir", connection=redis_client, serializer=JSONSerializer).retries_left == 0
    assert redis_client.llen(queue.intermediate_queue_key) == 0 and len(queue) == 0
    assert "not os.mkdir" in (tmp_path / "workers.log").read_text()


def test_planted_secrets_never_leak(services: Services, redis_client: redis.Redis,
                                    pg: psycopg2.extensions.connection, mock_server: MockServer,
                                    tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=300)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f"""
[sources.shop_secret]
kind = "http_json"
domain = "products"
url = "{mock_server.url}/products"
auth_env = "SHOP_TOKEN"
fields = {{ product_id = "id", name = "title" }}

[sources.shop_broken]
kind = "http_json"
domain = "products"
url = "{mock_server.url}/missing?api_key={URL_KEY}"
""", encoding="utf-8")
    database_url = services.database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")  # trust auth ignores it
    assert DB_PASSWORD in database_url
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": database_url, "SHOP_TOKEN": TOKEN,
           "INGEST_QUEUE": "ingest-secret-test", "INGEST_JOB_RETRIES": "0"}
    run = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "run",
                          "--workers", "2", "--timeout", "60"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr  # shop_broken fails (404): its error is printed
    assert "HTTP 404" in run.stdout + run.stderr + (tmp_path / "out" / "workers.log").read_text()

    failed = subprocess.run([sys.executable, "-m", "ingest_workers", "failed", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    metrics = generate_latest(make_registry(redis_client)).decode()
    captured = {
        "stdout": run.stdout, "stderr": run.stderr,
        "workers.log": (tmp_path / "out" / "workers.log").read_text(),
        "summary.json": (tmp_path / "out" / "summary.json").read_text(),
        "failed list": failed.stdout + failed.stderr,
        "metrics": metrics,
    }
    assert "shop_secret" in metrics and "shop_broken" in captured["failed list"]
    for where, text in captured.items():
        for secret in (TOKEN, DB_PASSWORD, URL_KEY):
            assert secret not in text, f"{secret} leaked into {where}"
