"""Stopping leaves nothing behind and is not silent: a pool SIGKILLed mid-job takes its workers, their
scheduler and their work horses with it; Ctrl+C on `ingest run --workers N` says at once what it does,
a second one stops hard, and no process of the run is left; idle workers stop at once; a stop that
waits says so; each forked generation dies with its parent. (Integration: they start processes.)"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from rq.queue import Queue

from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import kill_workers, start_worker, stop_workers
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
    return SourceSpec(name="slow", kind="http_json", dataset="products", url=f"{server.url}/products", page_size=100,
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
    # Under nohup, as an operator may start it: SIGHUP, what a worker gets when its pool dies, is
    # ignored in the pool and would be in its workers too, were it not restored for them.
    pool = subprocess.Popen(["nohup", sys.executable, "-m", "ingest_workers", "workers", "--count", "2"], env=env,
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


def slow_catalog(path: Path, url: str) -> Path:
    """`slow_a` and `slow_b` (100 pages of 10, one at a time: 20 s at 0.2 s a page), then `never`."""
    entries = [f"""
[sources.{name}]
kind = "http_json"
dataset = "products"
url = "{url}/products"
page_size = 10
concurrency = 1
fields = {{ product_id = "id", name = "title" }}
""" for name in ("slow_a", "slow_b", "never")]
    path.write_text("[settings]\nbatch_size = 20\njob_retries = 0\n" + "".join(entries), encoding="utf-8")
    return path


class Output:
    """The lines a process writes, read in a thread as they come."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(line.decode() for line in stream),
                                        daemon=True)
        self._reader.start()

    def has(self, words: str) -> bool:
        return any(words in line for line in list(self.lines))

    def text(self) -> str:
        return "".join(self.lines)


@dataclasses.dataclass
class Run:
    """`ingest run --workers 2` as a subprocess, once its two slow jobs run."""

    process: subprocess.Popen[bytes]
    output: Output
    run_id: str
    queue: Queue
    tracked: set[int]  # its processes: the workers, their horses, a scheduler

    def status(self, source: str) -> str:
        return self.queue.fetch_job(f"{self.run_id}-{source}").get_status()


def start_run(services: Services, redis_client: redis.Redis, mock_url: str, tmp_path: Path,
              left_over: set[int]) -> Run:
    catalog = slow_catalog(tmp_path / "catalog.toml", mock_url)
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url,
           "INGEST_QUEUE": QUEUE, "INGEST_CATALOG": str(catalog)}
    process = subprocess.Popen([sys.executable, "-m", "ingest_workers", "--log-level", "WARNING", "run",
                                "--workers", "2"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    left_over.add(process.pid)
    output = Output(process)
    wait_until(lambda: output.has("job(s) on 2 worker(s)"), 60)
    [run_id] = [line.split()[1].rstrip(":") for line in output.lines if "job(s) on 2 worker(s)" in line]
    run = Run(process, output, run_id, make_queue(redis_client, Settings(queue=QUEUE)), set())
    wait_until(lambda: [run.status(name) for name in ("slow_a", "slow_b")] == ["started", "started"], 30)
    wait_until(lambda: len(descendants(process.pid)) >= 5, 15)  # 2 workers, 2 horses, a scheduler
    run.tracked = descendants(process.pid)
    left_over.update(run.tracked)
    return run


def gone_within(pids: set[int], seconds: float) -> list[int]:
    """The pids of ``pids`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def test_ctrl_c_twice_on_a_run_with_workers_says_what_it_does_and_leaves_no_process(
        services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection,
        mock_server: MockServer, left_over: set[int], tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.2)  # 100 pages: 20 s a job
    run = start_run(services, redis_client, mock_server.url, tmp_path, left_over)
    try:
        run.process.send_signal(signal.SIGINT)
        pressed = time.monotonic()
        wait_until(lambda: run.output.has("Ctrl+C: stopping the run"), 2)
        wait_until(lambda: run.output.has("waiting for the 2 running (slow_a, slow_b) to finish"), 10)
        assert run.output.has("cancelled 1 job(s) not started (never)")
        assert run.process.poll() is None and run.status("slow_a") == run.status("slow_b") == "started"
        time.sleep(max(0.0, pressed + 1.5 - time.monotonic()))

        run.process.send_signal(signal.SIGINT)
        assert run.process.wait(timeout=10) == 1, run.output.text()
        assert gone_within(run.tracked, 5) == []
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
    assert run.output.has("Ctrl+C again: stopping now")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["unfinished"] == {"slow_a": "stopped while running (Ctrl+C)",
                                     "slow_b": "stopped while running (Ctrl+C)",
                                     "never": "cancelled before it started (Ctrl+C)"}
    assert "slow_a: did not finish: stopped while running (Ctrl+C)" in run.output.text()
    # Nothing is left for a worker to take up later: every job of the run ended.
    assert {run.status(name) for name in ("slow_a", "slow_b", "never")} == {"canceled"}


def test_ctrl_c_once_lets_the_jobs_in_hand_finish_and_cancels_the_rest(
        services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection,
        mock_server: MockServer, left_over: set[int], tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.05)  # 100 pages: 5 s a job
    run = start_run(services, redis_client, mock_server.url, tmp_path, left_over)
    try:
        run.process.send_signal(signal.SIGINT)
        wait_until(lambda: run.output.has("Ctrl+C: stopping the run"), 2)
        assert run.process.wait(timeout=60) == 1, run.output.text()
        assert gone_within(run.tracked, 5) == []
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["unfinished"] == {"never": "cancelled before it started (Ctrl+C)"}, run.output.text()
    assert [run.status(name) for name in ("slow_a", "slow_b", "never")] == ["finished", "finished", "canceled"]
    for name in ("slow_a", "slow_b"):  # the whole source: every record loaded or rejected
        assert summary["sources"][name]["fetched"] == 1000, summary["sources"][name]


def test_idle_workers_stop_at_once(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    """RQ unsubscribed before stopping its pubsub thread, which then could wait 60 s for nothing:
    one `ingest run` in a few stalled 30 s after its jobs, the worker that had stopped its scheduler.
    Eight idle workers, each with a scheduler (a queue of its own), SIGTERM: all gone at once."""
    with (tmp_path / "workers.log").open("ab") as log:
        processes = [start_worker(settings, i, os.environ, log, queues=[f"{QUEUE}-{i}"]) for i in range(8)]
        try:
            wait_until(lambda: all(redis_client.scard(f"rq:workers:{QUEUE}-{i}") == 1 for i in range(8)), 60)
            time.sleep(1)  # past their start: each is waiting for a job
            started = time.monotonic()
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)
            assert time.monotonic() - started < 8, (tmp_path / "workers.log").read_text()[-3000:]
        finally:
            kill_workers(processes)


def test_the_pool_says_how_it_stops_and_a_second_signal_stops_it_at_once(
        services: Services, settings: Settings, redis_client: redis.Redis, pg: psycopg2.extensions.connection,
        mock_server: MockServer, left_over: set[int], tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=1500, latency=0.3)
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url,
           "INGEST_QUEUE": QUEUE, "INGEST_PLUGINS": "tests.plugins"}
    env.pop("INGEST_CATALOG", None)
    pool = subprocess.Popen([sys.executable, "-m", "ingest_workers", "workers", "--count", "2"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    left_over.add(pool.pid)
    output = Output(pool)
    try:
        wait_until(lambda: redis_client.scard(f"rq:workers:{QUEUE}") == 2, 60)
        queue = make_queue(redis_client, dataclasses.replace(settings, queue=QUEUE))
        enqueue_run(queue, dataclasses.replace(settings, queue=QUEUE), [slow_spec(mock_server)], "run-1")
        wait_until(lambda: queue.fetch_job("run-1-slow").get_status() == "started", 30)
        wait_until(lambda: len(descendants(pool.pid)) >= 4, 15)
        tracked = descendants(pool.pid)
        left_over.update(tracked)

        pool.send_signal(signal.SIGTERM)
        wait_until(lambda: output.has("stopping 2 worker(s): the jobs in hand finish first"), 3)
        wait_until(lambda: output.has("waiting for 1 worker(s)") and output.has("up to 1830s in all"), 5)
        assert pool.poll() is None and queue.fetch_job("run-1-slow").get_status() == "started"
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(timeout=10) == 0, output.text()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in tracked) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in tracked if alive(pid)] == []
        assert output.has("second stop signal: killing the workers now")
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()


def _started(code: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_a_stop_that_waits_says_so_then_kills() -> None:
    quick = _started("import time; print('ready', flush=True); time.sleep(60)")  # SIGTERM ends it
    stubborn = _started("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                        "print('ready', flush=True); time.sleep(60)")
    said: list[str] = []
    started = time.monotonic()
    stop_workers([quick, stubborn], timeout=3, say=said.append)
    assert time.monotonic() - started < 10
    assert quick.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    assert said == [f"waiting for 1 worker(s) (pid {stubborn.pid}) to stop (a job in hand finishes first), "
                    "up to 3s in all; then they are killed", "1 worker(s) did not stop within 3s: killed"]


def test_a_stop_that_does_not_wait_says_nothing() -> None:
    quick = _started("import time; print('ready', flush=True); time.sleep(60)")
    said: list[str] = []
    stop_workers([quick], timeout=30, say=said.append)
    assert quick.returncode == -signal.SIGTERM and said == []


def test_a_forked_child_dies_with_its_parent_and_a_grandchild_with_the_child() -> None:
    """children_die_with_this_process, each generation relative to its own parent."""
    code = textwrap.dedent("""
        import os, sys, time
        from ingest_workers.runtime.lifeline import children_die_with_this_process
        children_die_with_this_process()
        if os.fork() == 0:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            print(os.getpid(), flush=True)
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while not children(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    [grandchild] = children(child)
    parent.kill()
    parent.wait()
    while (alive(child) or alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child) and not alive(grandchild)

