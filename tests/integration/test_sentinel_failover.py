"""Redis through Sentinel: a primary, a replica and three sentinels of the test's own. The
primary is SIGKILLed mid-run; the workers, the producer (`ingest enqueue --wait`) and the
metrics server reach the promoted replica, and the run completes with nothing lost or
loaded twice. Every process gets Redis only from REDIS_URL / REDIS_SENTINELS /
REDIS_SENTINEL_MASTER in its environment, and the password is in no process's argv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.testing.devservices import Services, free_port
from ingest_workers.testing.fleet import children
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from ingest_workers.testing.sentinel import MASTER, SentinelGroup
from tests.helpers import broken_products, scalar, wait_until

pytestmark = pytest.mark.integration
SOURCES = ["shop_a", "shop_b", "shop_c", "shop_d"]
RECORDS = 2000
VALID = RECORDS - broken_products(RECORDS)
PASSWORD = "sentinel-test-secret"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with SentinelGroup(tmp_path / "redis", PASSWORD) as found:
        yield found


def catalog(path: Path, url: str) -> Path:
    path.write_text("".join(f"""
[sources.{name}]
kind = "http_json"
dataset = "products"
url = "{url}/products"
page_size = 100
fields = {{ product_id = "id", name = "title" }}
""" for name in SOURCES), encoding="utf-8")
    return path


def ingest(*args: str, env: dict[str, str], cwd: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ingest_workers", *args], env=env, cwd=cwd, **kwargs)  # type: ignore[call-overload]


def command_lines(pid: int) -> list[str]:
    """The argv of ``pid`` and of all its descendants."""
    lines, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            lines.append(Path(f"/proc/{current}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
        pending += children(current)
    return lines


@pytest.mark.timeout(480)  # the producer may take 170 s after three redis-servers and sentinels start
def test_a_primary_killed_mid_run_loses_nothing_and_loads_nothing_twice(
        group: SentinelGroup, services: Services, pg: psycopg2.extensions.connection, mock_server: MockServer,
        tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=RECORDS, latency=0.05)  # about 1 s per source and worker
    env = {"PATH": os.environ["PATH"], "REDIS_URL": group.redis_url, "REDIS_SENTINELS": group.sentinels,
           "REDIS_SENTINEL_MASTER": MASTER, "DATABASE_URL": services.database_url, "INGEST_QUEUE": "failover",
           "INGEST_JOB_RETRY_INTERVALS": "1", "INGEST_JOB_RETRIES": "8", "INGEST_SERVICE_WAIT": "30",  # > a failover
           "INGEST_CATALOG": str(catalog(tmp_path / "catalog.toml", mock_server.url))}
    metrics_port = free_port()
    workers = ingest("workers", "--count", "2", env=env, cwd=tmp_path, stdout=(tmp_path / "workers.log").open("wb"),
                     stderr=subprocess.STDOUT)
    metrics = ingest("metrics-server", "--port", str(metrics_port), env=env, cwd=tmp_path,
                     stderr=subprocess.DEVNULL)
    producer = None
    try:
        primary = redis.Redis(port=group.primary_port, password=PASSWORD)
        wait_until(lambda: primary.scard("rq:workers:failover") == 2, 30)
        producer = ingest("enqueue", "--sources", "all", "--wait", "--timeout", "150", env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: scalar(pg, "SELECT count(*) FROM products") > 0, 30)  # mid-run
        assert all(PASSWORD not in line for pid in (workers.pid, metrics.pid, producer.pid)
                   for line in command_lines(pid))
        group.kill_primary()
        group.wait_promoted()
        out, err = producer.communicate(timeout=170)
        assert producer.returncode == 0, out.decode()[-3000:] + err.decode()[-3000:]
        wait_until(lambda: _healthz(metrics_port) == 200, 30)
    finally:
        for process in (producer, metrics, workers):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (producer, metrics, workers):
            if process is not None:
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    assert group.master_port() == group.replica_port
    assert scalar(pg, "SELECT count(*) FROM products") == len(SOURCES) * VALID
    assert scalar(pg, "SELECT count(DISTINCT (source, product_id)) FROM products") == len(SOURCES) * VALID
    assert scalar(pg, "SELECT count(*) FROM rejected_records") == len(SOURCES) * (RECORDS - VALID)
    assert scalar(pg, "SELECT count(*) FROM rejected_records r JOIN products p ON p.source = r.source "
                      "AND p.product_id = r.payload->>'id'") == 0
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE status = 'finished'") == len(SOURCES)
    status = subprocess.run([sys.executable, "-m", "ingest_workers", "status", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, timeout=60)
    assert status.returncode == 0, status.stderr.decode()


def _healthz(port: int) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
    except requests.RequestException:
        return 0
