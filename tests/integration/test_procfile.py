"""The Procfile, run by honcho against the real Redis and an empty PostgreSQL database (never
migrated): the worker line applies the schema, records land with no failed job, and SIGTERM
stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis
import requests

from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import Services
from tests.helpers import broken_products, free_port, scalar, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 3000


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting to be reaped is not alive
        return stat.read().split()[2] != "Z"


def test_procfile_runs_every_role_from_an_empty_database_and_stops_cleanly(
    services: Services, empty_database: str, redis_client: redis.Redis, tmp_path: Path,
) -> None:
    mock_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": empty_database,
           "INGEST_QUEUE": "procfile-test", "WORKERS": "2", "MOCK_PORT": str(mock_port),
           "MOCK_RECORDS": str(RECORDS), "METRICS_PORT": str(metrics_port),
           "INGEST_MOCK_URL": f"http://127.0.0.1:{mock_port}", "INGEST_CATALOG": str(DEMO_CATALOG),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start"], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: redis_client.scard("rq:workers:procfile-test") == 2, 30)

        def metrics_up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(metrics_up, 30)
        enqueue = subprocess.run([sys.executable, "-m", "ingest_workers", "enqueue", "--sources", "all", "--wait",
                                  "--timeout", "60"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=90)
        assert enqueue.returncode == 0, enqueue.stdout + enqueue.stderr
        pg = psycopg2.connect(empty_database)
        try:
            assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_products'") \
                == RECORDS - broken_products(RECORDS)
            # The scheduler's own run starts with the workers and may still be going: wait for its end.
            wait_until(lambda: scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE status IN ('enqueued', 'started')")
                       == 0, 60)
            with pg, pg.cursor() as cur:
                cur.execute("SELECT job_id, status, error FROM ingest_jobs WHERE status <> 'finished'")
                assert cur.fetchall() == []
        finally:
            pg.close()
        worker_pids = [int(redis_client.hget(key, "pid")) for key in redis_client.smembers("rq:workers:procfile-test")]
    finally:
        honcho.send_signal(signal.SIGTERM)
        output = honcho.communicate(timeout=60)[0].decode()
    for role in ("worker", "scheduler", "metrics", "mock"):
        assert f"{role}.1 stopped (rc=0)" in output, output
    wait_until(lambda: not group_alive(honcho.pid), 10)
    wait_until(lambda: not any(pid_alive(pid) for pid in worker_pids), 10)
    assert redis_client.scard("rq:workers:procfile-test") == 0  # warm shutdown deregistered them
