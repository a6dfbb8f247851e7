"""The text around the figures: the header (machine, versions), how each part is measured, the
machine's load while it was."""

from __future__ import annotations

import argparse
import os
import platform
from datetime import UTC, datetime

import psycopg2
import redis
import rq

from .report import Report
from .services import Bench


def loads_section(report: Report) -> list[str]:
    lines = ["## Machine load during the run", "",
             "This machine is shared (other test runs go on beside the benchmark); the load averages (1, 5, 15 "
             "minutes) when each part started:", "", "| part | load average |", "|---|---|"]
    return lines + [f"| {part} | {' '.join(f'{v:.2f}' for v in values)} |" for part, values in report.loads]


def method(args: argparse.Namespace) -> list[str]:
    return [
        "## How it is measured",
        "",
        f"- **Records**: shop A's products (`/products` of the mock source, the packaged catalog's "
        f"`shop_products` entry with its politeness rate limit off), {args.records:,} of them; every 97th is "
        "broken on purpose and lands in `rejected_records` with its reason. Every run's counts are checked "
        "(fetched = rejected + duplicate + loaded = all records, every job finished) or the benchmark stops.",
        "- **Mock source**: `ingest mock-sources --cache-mb` in its own process. It computes each record with "
        "`random.Random(i)` (about 25 µs), which would take a core from the workers, so it keeps the JSON "
        "pages it served (bounded, least recently used first) and the harness asks for every page the jobs "
        "will ask for before the clock starts. A timed page costs the mock a request parse and a send.",
        "- **Ceiling**: the rows our stages make, serialised to COPY text beforehand (not timed), one "
        "`COPY` into a new table with the products' columns and no key, index or check, one commit. "
        "Best of 2, alternated with the loader's runs.",
        "- **End to end**: the source split into "
        f"{args.jobs} backfill window jobs (`ingest enqueue --since/--until --window`, here through "
        "`enqueue_backfill`), N `rq worker` processes started by `ingest_workers.runtime.workerpool` (the command "
        "`ingest workers` runs) and registered before the clock starts; timed from enqueue to the last job "
        "finished (the sizes of RQ's finished and failed registries, polled every 10 ms). Every configuration "
        f"runs {args.rounds} times, round after round; the fastest counts. Redis and the tables are emptied "
        "before each run.",
        "- **dlt**: the same checked rows, in memory (no HTTP), `pipeline.run()` timed whole (extract, "
        "normalise, load), `category` and `raw` as json columns; merge uses `primary_key=\"product_id\"`. "
        "It runs in `.venv-bench` only.",
        f"- **Naive**: the same rows, one `INSERT … ON CONFLICT DO NOTHING` and one commit per row, "
        f"{args.naive_rows:,} rows.",
        "- **Re-run**: a first run, then the same windows again under a new run id: everything is a duplicate.",
        "- **Memory**: one forking `rq worker --burst` (the default worker class) running one job over "
        f"{args.memory_records[0]:,} then {args.memory_records[1]:,} records from an uncached mock; the peak "
        "is the highest `VmHWM` of the worker and its work horse, read from /proc every 50 ms.",
        f"- **Enqueue**: `ingest enqueue` of {args.enqueue_windows:,} one-minute windows, as a process (start-up "
        "included); the baseline is RQ's `Queue.enqueue_call`, one round trip per job.",
        "- **Profile**: one plain job over the whole source, in a fresh process, under cProfile.",
        "- **Noise**: this machine is shared. Between whole runs the same configuration moved by up to ±20%; "
        "the ratios above, taken within one run, move less, but a ratio near its target can land on either "
        "side of it from run to run (the re-run's did: 1.9× to 2.2×).",
    ]


def header(bench: Bench, rows: int) -> list[str]:
    conn = psycopg2.connect(bench.settings.database_url)
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    conn.close()
    client = redis.Redis.from_url(bench.settings.redis_url)
    redis_version = client.info("server")["redis_version"]
    client.close()
    return [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
            f"({platform.machine()}, Python {platform.python_version()}, PostgreSQL {pg_version}, "
            f"Redis {redis_version}, rq {rq.__version__}); {bench.records:,} shop A products "
            f"(~300 bytes of JSON each), {rows:,} of them valid."]
