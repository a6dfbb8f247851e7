"""Real ``rq worker`` processes: end to end, the re-run, a worker's peak memory, and enqueueing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg2
import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from ingest_workers.core.models import Window
from ingest_workers.ops.history import JobHistory
from ingest_workers.runtime.producer import enqueue_backfill, enqueue_run, make_queue, split_windows
from ingest_workers.runtime.workerpool import local_workers, worker_command, worker_env
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.mock_sources.feed import EPOCH

from .services import Bench, reset_state, worker_environment


@dataclass(frozen=True)
class RunResult:
    seconds: float
    fetched: int
    loaded: int
    rejected: int
    duplicate: int
    jobs: int

    @property
    def rate(self) -> float:
        return self.fetched / self.seconds


def time_range(records: int) -> tuple[datetime, datetime]:
    """Shop A's records ``[0, records)``: record i was updated at 2026-01-01 + i seconds."""
    return EPOCH, EPOCH + timedelta(seconds=records)


def windows(records: int, jobs: int) -> list[Window]:
    """The backfill windows that split the source's first ``records`` records into ``jobs`` jobs."""
    since, until = time_range(records)
    return split_windows(since, until, window_size(records, jobs))


def window_size(records: int, jobs: int) -> timedelta:
    return timedelta(seconds=-(-records // jobs))


def run_backfill(bench: Bench, worker_class: str | None, workers: int, jobs: int, run_id: str,
                 fresh: bool = True) -> RunResult:
    """Start ``workers`` workers, wait until they listen, then time enqueue -> last job done for the
    source split into ``jobs`` window jobs (one large source made parallel by backfill windows)."""
    since, until = time_range(bench.records)
    window = window_size(bench.records, jobs)
    return run_jobs(bench, worker_class, workers, run_id,
                    lambda queue: enqueue_backfill(queue, bench.settings, [bench.spec], since, until, window,
                                                   run_id)[1], fresh)


def run_plain(bench: Bench, worker_class: str | None, run_id: str) -> RunResult:
    """One worker, one plain job over the whole source (``ingest enqueue --sources shop_products``)."""
    return run_jobs(bench, worker_class, 1, run_id, lambda queue: enqueue_run(queue, bench.settings, [bench.spec],
                                                                               run_id))


def run_jobs(bench: Bench, worker_class: str | None, workers: int, run_id: str,
             enqueue: Callable[[Queue], Sequence[object]], fresh: bool = True) -> RunResult:
    """Start ``workers`` workers, wait until they listen, then time ``enqueue(queue)`` -> its last job done."""
    settings = bench.settings
    if fresh:
        reset_state(settings)
    client = redis.Redis.from_url(settings.redis_url)
    queue = make_queue(client, settings)
    log = bench.out / "workers.log"
    with local_workers(settings, workers, worker_environment(bench.mock_url), log, worker_class):
        wait_for_workers(client, queue, workers, log)
        ended_before = _ended(queue)
        started = time.perf_counter()
        enqueued = enqueue(queue)
        while _ended(queue) - ended_before < len(enqueued):
            if time.perf_counter() - started > 600:
                raise SystemExit(f"run {run_id}: jobs did not end within 10 minutes; see {log}")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    client.close()
    return _result(bench, run_id, elapsed, len(enqueued))


def wait_for_workers(client: redis.Redis, queue: Queue, workers: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while Worker.count(connection=client, queue=queue) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not start; see {log}")
        time.sleep(0.05)


def _ended(queue: Queue) -> int:
    """Jobs in the finished and failed registries: two ZCARDs, cheap enough to ask 100 times a second
    (fetching the jobs themselves would take this process a good part of a core from the workers)."""
    pipe = queue.connection.pipeline(transaction=False)
    pipe.zcard(queue.finished_job_registry.key)
    pipe.zcard(queue.failed_job_registry.key)
    return sum(pipe.execute())


def _result(bench: Bench, run_id: str, elapsed: float, jobs: int) -> RunResult:
    conn = psycopg2.connect(bench.settings.database_url)
    try:
        summaries = JobHistory(conn).summarise(run_id)
    finally:
        conn.close()
    if len(summaries) != 1 or summaries[0].failed or summaries[0].finished != jobs:
        raise SystemExit(f"run {run_id}: not every job finished: {summaries}")
    counts = summaries[0].counts
    if counts.fetched != bench.records or \
            counts.fetched != counts.rejected + counts.duplicate + counts.loaded + counts.updated:
        raise SystemExit(f"run {run_id}: counts do not add up: {counts}")
    return RunResult(elapsed, counts.fetched, counts.loaded, counts.rejected, counts.duplicate, jobs)


def peak_rss_mib(bench: Bench, records: int, run_id: str) -> float:
    """Peak RSS (MiB) of one forking ``rq worker --burst`` running one job over the source's first
    ``records`` records: the highest ``VmHWM`` of the worker and of its job's work horse, polled.
    (``wait4``'s ``ru_maxrss`` would count this big process too: a child's high-water mark starts
    with its parent's at the fork.)"""
    settings = bench.settings
    reset_state(settings)
    client = redis.Redis.from_url(settings.redis_url)
    since, until = time_range(records)
    enqueue_backfill(make_queue(client, settings), settings, [bench.spec], since, until,
                     timedelta(seconds=records), run_id)
    client.close()
    command = [*worker_command(settings, f"bench-memory-{records}"), "--burst"]
    peak_kib = 0
    with (bench.out / "workers.log").open("ab") as log:
        process = subprocess.Popen(command, env=worker_env(settings, worker_environment(bench.mock_url)),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            peak_kib = max([peak_kib, *(_high_water_kib(pid) for pid in _process_tree(process.pid))])
            time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"memory run over {records} records failed")
    _result(bench.with_records(records), run_id, 1.0, 1)
    return peak_kib / 1024


def _process_tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def _high_water_kib(pid: int) -> int:
    """The process's peak resident set (``VmHWM``, KiB); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def enqueue_cli(bench: Bench, windows: int) -> float:
    """Seconds for ``ingest enqueue`` (a subprocess, start-up included) of ``windows`` one-minute windows."""
    reset_state(bench.settings)
    since = EPOCH
    until = since + timedelta(minutes=windows)
    env = {**worker_env(bench.settings, worker_environment(bench.mock_url)), "INGEST_QUEUE": "bench-enqueue",
           "INGEST_CATALOG": str(DEMO_CATALOG)}  # a catalog is no longer implied
    command = [sys.executable, "-m", "ingest_workers", "enqueue", "--sources", bench.spec.name,
               "--since", since.isoformat(), "--until", until.isoformat(), "--window", "1m"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    client = redis.Redis.from_url(bench.settings.redis_url)
    queued = Queue("bench-enqueue", connection=client, serializer=JSONSerializer).count
    client.close()
    if queued != windows:
        raise SystemExit(f"ingest enqueue: {queued} jobs queued, expected {windows}")
    reset_state(bench.settings)
    return elapsed


def enqueue_one_by_one(bench: Bench, jobs: int) -> float:
    """Seconds for RQ's plain ``Queue.enqueue_call``, one round trip per job (the baseline)."""
    reset_state(bench.settings)
    client = redis.Redis.from_url(bench.settings.redis_url)
    queue = Queue("bench-enqueue", connection=client, serializer=JSONSerializer)
    spec = bench.spec.to_dict()
    started = time.perf_counter()
    for index in range(jobs):
        queue.enqueue_call("ingest_workers.runtime.jobs.fetch_source", args=(spec, "bench"),
                           job_id=f"one-by-one-{index}")
    elapsed = time.perf_counter() - started
    client.close()
    reset_state(bench.settings)
    return elapsed
