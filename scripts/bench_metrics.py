"""Scrape cost after N jobs: our Redis-hash metrics vs prometheus-client's multiprocess mode.

    .venv/bin/python scripts/bench_metrics.py --redis-url redis://127.0.0.1:6379/8 --jobs 100000

Every simulated job makes the increments a real fetch job makes (records by stage and
outcome, fetch requests, job outcome and duration, one load batch, last success) for one
of ``--sources`` sources. Redis: the job's recorder flushes into the metrics hash (many
jobs per round trip, which leaves the same hash). Multiprocess mode: the job writes its
own files, as a child of the forking ``rq worker`` with its own pid does, through
prometheus-client's real value class. Then both are scraped (text exposition) a few
times. The Redis database's ``ingest:metrics*`` keys are replaced: use a scratch database.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from ingest_workers.ops import metrics as m


def job_events(index: int, sources: int) -> tuple[str, list[tuple[str, tuple[str, ...], float]]]:
    """(source, [(event, labels, value)]) of simulated job ``index``."""
    rnd = random.Random(index)
    source = f"source_{index % sources:02d}"
    events = [("inc", ("fetch", "fetched"), 1000), ("inc", ("validate", "rejected"), 10),
              ("inc", ("load", "loaded"), 990), ("requests", ("2xx",), 3), ("job", ("success",), 1),
              ("duration", (), rnd.uniform(0.5, 20)), ("load_seconds", (), rnd.uniform(0.01, 0.3)),
              ("load_rows", (), 990), ("last_success", (), time.time())]
    return source, events


def fill_redis(client: redis.Redis, jobs: int, sources: int, per_round_trip: int = 200) -> None:
    pipe = client.pipeline(transaction=False)
    for index in range(jobs):
        source, events = job_events(index, sources)
        recorder = m.MetricsRecorder()
        for event, labels, value in events:
            if event == "inc":
                recorder.inc(m.RECORDS, source, *labels, amount=value)
            elif event == "requests":
                recorder.inc(m.FETCH_REQUESTS, source, *labels, amount=value)
            elif event == "job":
                recorder.inc(m.JOBS, source, *labels)
            elif event == "duration":
                recorder.observe(m.JOB_DURATION, value, "ingest", "success")
            elif event == "load_seconds":
                recorder.observe(m.LOAD_DURATION, value, source)
            elif event == "load_rows":
                recorder.observe(m.LOAD_ROWS, value, source)
            else:
                recorder.set(m.LAST_SUCCESS, value, source)
        recorder.flush_to(pipe)
        if index % per_round_trip == per_round_trip - 1:
            pipe.execute()
    pipe.execute()


def fill_multiprocess(directory: str, jobs: int, sources: int) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    for index in range(jobs):
        values.ValueClass = values.MultiProcessValue(lambda pid=100_000 + index: pid)  # this job's process
        records = Counter("ingest_records", m.RECORDS.doc, m.RECORDS.labels, registry=None)
        requests = Counter("ingest_fetch_requests", m.FETCH_REQUESTS.doc, m.FETCH_REQUESTS.labels, registry=None)
        job = Counter("ingest_jobs", m.JOBS.doc, m.JOBS.labels, registry=None)
        duration = Histogram("ingest_job_duration_seconds", "", m.JOB_DURATION.labels,
                             buckets=m.JOB_DURATION.buckets, registry=None)
        load_seconds = Histogram("ingest_load_batch_duration_seconds", "", ("source",),
                                 buckets=m.LOAD_DURATION.buckets, registry=None)
        load_rows = Histogram("ingest_load_batch_rows", "", ("source",), buckets=m.LOAD_ROWS.buckets, registry=None)
        last = Gauge("ingest_last_success_timestamp_seconds", "", ("source",), multiprocess_mode="max",
                     registry=None)
        source, events = job_events(index, sources)
        for event, labels, value in events:
            if event == "inc":
                records.labels(source, *labels).inc(value)
            elif event == "requests":
                requests.labels(source, *labels).inc(value)
            elif event == "job":
                job.labels(source, *labels).inc()
            elif event == "duration":
                duration.labels("ingest", "success").observe(value)
            elif event == "load_seconds":
                load_seconds.labels(source).observe(value)
            elif event == "load_rows":
                load_rows.labels(source).observe(value)
            else:
                last.labels(source).set(value)
        values.close_all_multiprocess_files()


def time_scrape(scrape: Callable[[], bytes], repeat: int) -> tuple[float, int]:
    """Median seconds of ``repeat`` scrapes, and the size of the exposition in bytes."""
    timings, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = len(scrape())
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="a scratch Redis database")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="scrapes to time")
    parser.add_argument("--skip-multiprocess", action="store_true")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url)
    client.delete(m.METRICS_KEY, m.GAUGES_KEY)
    started = time.perf_counter()
    fill_redis(client, args.jobs, args.sources)
    filled = time.perf_counter() - started
    registry = CollectorRegistry(auto_describe=False)
    registry.register(m.RedisCollector(client))
    seconds, size = time_scrape(lambda: generate_latest(registry), args.repeat)
    fields = client.hlen(m.METRICS_KEY) + client.hlen(m.GAUGES_KEY)
    print(f"redis hash:   {args.jobs} jobs written in {filled:.1f}s; {fields} hash fields; "
          f"scrape {seconds * 1000:.1f} ms, {size} bytes")
    client.delete(m.METRICS_KEY, m.GAUGES_KEY)
    if args.skip_multiprocess:
        return

    directory = tempfile.mkdtemp(prefix="bench-multiproc-")
    try:
        started = time.perf_counter()
        fill_multiprocess(directory, args.jobs, args.sources)
        filled = time.perf_counter() - started
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=directory)
        seconds, size = time_scrape(lambda: generate_latest(registry), args.repeat)
        files = len(os.listdir(directory))
        disk = sum(os.stat(os.path.join(directory, name)).st_blocks * 512 for name in os.listdir(directory))
        print(f"multiprocess: {args.jobs} jobs written in {filled:.1f}s; {files} files, {disk / 2**20:.0f} MiB "
              f"on disk; scrape {seconds * 1000:.1f} ms, {size} bytes")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
