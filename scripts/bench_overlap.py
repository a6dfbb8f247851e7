"""Overlapped fetch: records/s of one job with and without read-ahead against a slow source,
and several slow sources in one run: inline (one after the other) against one worker each.

    .venv/bin/python scripts/bench_overlap.py --redis-url redis://127.0.0.1:6379/8 \\
        --database-url postgresql://postgres@127.0.0.1:5432/ingest_bench

The mock source runs as its own process (``ingest mock-sources --latency``: every page
waits that long), and each run is a real ``ingest run`` of the packaged catalog. Before
every run the Redis database is flushed and the tables truncated, so each run loads
everything: use scratch databases. Prints a Markdown table per part.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import redis

from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import free_port

TABLES = ("products", "stock_quotes", "social_mentions", "posts", "sensor_readings", "alerts", "source_cursors",
          "rejected_records", "ingest_jobs")
INGEST = [sys.executable, "-m", "ingest_workers"]




@contextmanager
def mock_source(records: int, latency: float) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([*INGEST, "mock-sources", "--port", str(port), "--records", str(records),
                                "--latency", str(latency)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def reset(redis_url: str, database_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(TABLES)}")
    conn.close()


def run(args: argparse.Namespace, url: str, sources: str, workers: int, prefetch_pages: int) -> dict:
    """One ``ingest run`` from a clean state; its summary plus the span from the first job's
    start to the last job's end (``ingest_jobs``) and the command's wall time."""
    reset(args.redis_url, args.database_url)
    env = {**os.environ, "REDIS_URL": args.redis_url, "DATABASE_URL": args.database_url, "INGEST_MOCK_URL": url,
           "INGEST_PREFETCH_PAGES": str(prefetch_pages), "INGEST_CATALOG": str(DEMO_CATALOG)}
    with tempfile.TemporaryDirectory() as out:
        summary_path = Path(out) / "summary.json"
        started = time.monotonic()
        subprocess.run([*INGEST, "--log-level", "WARNING", "run", "--sources", sources, "--workers", str(workers),
                        "--out", str(summary_path)], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.monotonic() - started
        summary = json.loads(summary_path.read_text())
    conn = psycopg2.connect(args.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM ingest_jobs")
        span = float(cur.fetchone()[0])
    conn.close()
    return {**summary, "span": span, "wall": wall}


def bench_prefetch(args: argparse.Namespace) -> None:
    source = args.source
    print(f"\n### One job, {args.records:,} records of `{source}` (pages of 500), inline, median of {args.repeat}\n")
    print("| latency per page | read-ahead | job seconds | records/s | vs read-ahead off |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for latency, depths in ((0.0, (0, 2)), (args.latency, (0, 1, 2))):
        with mock_source(args.records, latency) as url:
            off = None
            for pages in depths:
                seconds = [run(args, url, source, 0, pages)["sources"][source]["duration_seconds"]
                           for _ in range(args.repeat)]
                median = statistics.median(seconds)
                off = off or median  # depths start with 0: the baseline of this latency
                label = "off" if pages == 0 else f"{pages} page{'s' if pages > 1 else ''}"
                print(f"| {latency * 1000:.0f} ms | {label} | {median:.2f} | {args.records / median:,.0f} | "
                      f"{off / median:.2f}× |")


def bench_sources(args: argparse.Namespace) -> None:
    sources = "shop_products,shop_b_catalog,placeholder_posts"
    records = 1200  # pages of 500: three requests per source, about 3 s each at 1 s per page
    print(f"\n### Three sources, {records:,} records each, 1 s per page (3 pages: ~3 s each)\n")
    print("| mode | slowest source s | sum of sources s | run span s | command wall s | span vs inline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with mock_source(records, 1.0) as url:
        inline_span = None
        for workers in (0, 3):
            result = run(args, url, sources, workers, 2)
            seconds = [s["duration_seconds"] for s in result["sources"].values()]
            inline_span = inline_span or result["span"]
            mode = "inline (`--workers 0`)" if workers == 0 else f"`--workers {workers}`"
            print(f"| {mode} | {max(seconds):.2f} | {sum(seconds):.2f} | {result['span']:.2f} | "
                  f"{result['wall']:.2f} | {inline_span / result['span']:.2f}× faster |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True, help="a scratch Redis database (it is flushed)")
    parser.add_argument("--database-url", required=True, help="a scratch, migrated database (tables truncated)")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per page")
    parser.add_argument("--source", default="shop_c_products",
                        help="a source read ahead (cursor or Link paging: page and offset paging fetch concurrently)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=("prefetch", "sources", "all"), default="all")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.part in ("prefetch", "all"):
        bench_prefetch(args)
    if args.part in ("sources", "all"):
        bench_sources(args)


if __name__ == "__main__":
    main()
