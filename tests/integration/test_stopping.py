"""Stopping leaves nothing behind: a pool SIGKILLed mid-job takes its workers, their scheduler and
their work horses with it; Ctrl+C on `ingest run --workers N` says at once what it does, a second
one stops hard, and no process of the run is left."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
QUEUE = "ingest-stopping"


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc: no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left for its parent to reap has ended)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def slow_spec(server: MockServer) -> SourceSpec:
    """One page at a time, 0.3 s each, 1500 records: a job that runs about 5 s."""
    return SourceSpec(name="slow", kind="http_json", domain="products", url=f"{server.url}/products", page_size=100,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0, concurrency=1)


@pytest.fixture
def left_over() -> Iterator[set[int]]:
    """Pids the test saw; any still alive at the end is killed (the test has failed by then)."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_pool_leaves_no_process(services: Services, settings: Settings, redis_client: redis.Redis,
                                            pg: psycopg2.extensions.connection, mock_server: MockServer,
                                            left_over: set[int], tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=1500, latency=0.3)
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url,
           "INGEST_QUEUE": QUEUE, "INGEST_PLUGINS": "tests.plugins"}
    env.pop("INGEST_CATALOG", None)
    pool = subprocess.Popen([sys.executable, "-m", "ingest_workers", "workers", "--count", "2"], env=env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left_over.add(pool.pid)
    try:
        wait_until(lambda: redis_client.scard(f"rq:workers:{QUEUE}") == 2, 60)
        queue = make_queue(redis_client, dataclasses.replace(settings, queue=QUEUE))
        enqueue_run(queue, dataclasses.replace(settings, queue=QUEUE), [slow_spec(mock_server)], "run-1")
        wait_until(lambda: queue.fetch_job("run-1-slow").get_status() == "started", 30)
        # 2 workers, the scheduler one of them forked, and the work horse running the job.
        wait_until(lambda: len(descendants(pool.pid)) >= 4, 15)
        tracked = descendants(pool.pid)
        left_over.update(tracked)
        workers = set(children(pool.pid))
        assert len(workers) == 2 and len(tracked - workers) >= 2, (workers, tracked)
        pool.kill()
        pool.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in tracked) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in tracked if alive(pid)] == []
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
