"""``python -m benchmarks`` (run by ``scripts/bench``): measure, then write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import redis
import rq

from ingest_workers.core.config import Settings
from ingest_workers.core.models import Lineage
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.testing.devservices import ensure_services

from . import loads, merge, peer, runs
from .profiling import profile_job
from .report import Figure, Report
from .services import Bench, mock_server, recreate_database

ROOT = Path(__file__).resolve().parent.parent
PLAIN_FORKING = "rq.worker.Worker"
INGEST_WORKER = "ingest_workers.runtime.worker.IngestWorker"  # forking too: what `ingest workers` and the demo run


def main() -> None:
    args = _arguments()
    started = time.monotonic()
    with ensure_services(args.redis_url, args.database_url, ROOT / ".state" / "bench", log=_say) as services:
        recreate_database(services.database_url)
        settings = Settings(redis_url=services.redis_url, database_url=services.database_url, queue="bench",
                            batch_size=1000, job_retries=0)
        out = ROOT / "out"
        out.mkdir(exist_ok=True)
        report = measure(args, Bench(settings, "", args.records, out))
        _say("overlapped fetch (scripts/bench_overlap.py): read-ahead against a slow source, slow sources")
        overlap = overlapped_fetch(services.redis_url, services.database_url)
    report.header.append(f"Whole run: {time.monotonic() - started:.0f} s (`scripts/bench {args.summary}`).")
    args.output.write_text(report.markdown() + overlap, encoding="utf-8")
    _say(f"wrote {args.output}")


def overlapped_fetch(redis_url: str, database_url: str) -> str:
    """The figures of ``scripts/bench_overlap.py`` (issue 8's read-ahead), run now on the same services."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_overlap.py"), "--redis-url", redis_url,
                             "--database-url", database_url, "--repeat", "3"],
                            capture_output=True, text=True, check=True, timeout=900)
    lines = result.stdout.splitlines()[1:]  # the first line repeats the machine, already in the header
    return ("\n## Overlapped fetch\n\nA job reads its source ahead (`INGEST_PREFETCH_PAGES`, default 2) while it "
            "loads the current page. Each row: a real `ingest run --workers 0` of one source (medians of 3) "
            "against `ingest mock-sources --latency`; the baseline is the row with read-ahead off, in this run. "
            "Then three slow sources in one run, inline (their times add up) against one worker each (the run "
            "takes the time of the slowest).\n" + "\n".join(lines) + "\n")


def measure(args: argparse.Namespace, bench: Bench) -> Report:
    lineage = Lineage(bench.spec.name, "bench", "bench-loader", datetime.now(UTC).isoformat())
    _say(f"making {args.records:,} records and their rows")
    rows = loads.checked_rows(bench.spec, loads.served_records(args.records), lineage)
    # This process now holds ~200,000 rows: keep the garbage collector from walking them at every
    # collection, which would take a core from the workers while this process polls for their jobs.
    gc.collect()
    gc.freeze()
    report = Report(_header(bench, len(rows)))
    figures = report.figures

    _say("load ceiling vs our loader (best of 2 each, alternated)")
    ceiling_s, loader_s = _best_of_two(lambda: loads.copy_ceiling(bench.settings.database_url, rows),
                                       lambda: loads.our_loader(bench.settings.database_url, rows, lineage))
    ceiling = len(rows) / ceiling_s
    figures.append(Figure("Load ceiling: one plain COPY, pre-serialised, into an empty table without keys",
                          ceiling, "rows/s"))
    loader = len(rows) / loader_s
    serialise = len(rows) / loads.serialise_only(rows)
    server = len(rows) / loads.server_only(bench.settings.database_url, rows, staging=False)
    fallback = len(rows) / loads.server_only(bench.settings.database_url, rows, staging=True)
    figures.append(Figure(
        "Our loader alone: `PostgresLoader.load_batch`, 1,000 rows per transaction, serialisation included",
        loader, "rows/s", "ceiling", ceiling, 0.6,
        why=f"the loader is its client part (COPY text made in Python: {serialise / ceiling:.2f}× the ceiling "
            f"on its own) plus its server part (COPY into the table with its key and two indexes, a savepoint "
            f"and a commit per 1,000 rows: {server / ceiling:.2f}×). Streaming the COPY overlaps them only in "
            "part (the commit and the end of each COPY wait for the server); with the client part alone under "
            "0.6×, no arrangement of these two pieces reaches 0.6× in one Python process. What would: "
            "serialising in C (e.g. psycopg 3's binary COPY) or loading from several processes."))
    batched = len(rows) / loads.copy_ceiling(bench.settings.database_url, rows, loads.BATCH)
    figures.append(Figure("Plain COPY, pre-serialised, one transaction per 1,000 rows (the loader's "
                          "granularity)", batched, "rows/s", "ceiling", ceiling))
    figures.append(Figure("Our loader alone", loader, "rows/s", "COPY per 1,000 rows", batched))
    figures.append(Figure("… its client part alone: COPY text serialisation, in Python", serialise, "rows/s",
                          "ceiling", ceiling))
    figures.append(Figure("… its server part alone: savepoint, pre-serialised COPY into `products` (keys, "
                          "indexes), commit, per 1,000 rows", server, "rows/s", "ceiling", ceiling))
    figures.append(Figure("… its server part when a batch repeats a key: COPY → temp staging → INSERT … "
                          "ON CONFLICT DO NOTHING", fallback, "rows/s", "ceiling", ceiling))

    e2e = _end_to_end(args, bench)
    recommended = e2e[(args.recommended, args.recommended_workers)]
    _say("dlt append and merge")
    append_s, dlt_version = peer.dlt_load(bench.settings.database_url, rows, "append")
    merge_s, _ = peer.dlt_load(bench.settings.database_url, rows, "merge")
    dlt_merge = len(rows) / merge_s
    label = _label(args.recommended)
    figures += [
        Figure(f"End to end, recommended: {label}, {args.recommended_workers} workers", recommended.rate,
               "records/s", "ceiling", ceiling, 0.4,
               why="the ceiling is one PostgreSQL backend taking COPY text made beforehand into a table "
                   "without keys. End to end, the same two cores also run the workers' Python (HTTP, JSON, "
                   "stages, serialisation: see the profile below), PostgreSQL's key and index upkeep, Redis and "
                   "the mock source. One job alone in one process, with nothing competing, runs at "
                   "{single:.2f}× the ceiling (the profile below): the workers' Python per record costs more "
                   "than 40% of the ceiling allows, even with the next page read ahead in a thread (`prefetch`). "
                   "Next step: a C serialiser."),
        Figure(f"End to end, recommended: {label}, {args.recommended_workers} workers", recommended.rate,
               "records/s", "dlt merge", dlt_merge, 3,
               why="see the profile: the per-record Python path (stages and serialisation) and the shared "
                   "2 cores bound it; dlt was given its rows in memory (no HTTP), which favours it."),
        Figure(f"End to end, {label}: 2 workers vs 1", e2e[(args.recommended, 2)].rate, "records/s", "1 worker",
               e2e[(args.recommended, 1)].rate, 1.5,
               why="two workers share two cores with PostgreSQL, Redis and the mock source. With one worker "
                   "the other core already runs PostgreSQL's side of each batch, Redis and the mock, so a second "
                   "worker finds much less than a core free. This ratio moved between 1.2× and 1.7× from one "
                   "whole run to the next."),
    ]
    for (worker_class, workers), result in sorted(e2e.items()):
        if (worker_class, workers) != (args.recommended, args.recommended_workers):
            figures.append(Figure(f"End to end, {_label(worker_class)}, {workers} worker(s)", result.rate,
                                  "records/s", "ceiling", ceiling))
    figures += [
        Figure(f"dlt {dlt_version} append (records in memory, no HTTP)", len(rows) / append_s, "rows/s",
               "ceiling", ceiling),
        Figure(f"dlt {dlt_version} merge on product_id (records in memory, no HTTP)", dlt_merge, "rows/s",
               "ceiling", ceiling),
    ]
    _naive(args, bench, rows, figures, ceiling, recommended.rate)
    _say("merge: 10% changed since the first load, ours against dlt merge (benchmarks/merge.py)")
    figures += merge.merge_figures(bench.settings, args.records, bench.out, say=_say)

    _say("re-run: everything duplicate")
    first, rerun = _rerun(args, bench)
    figures.append(Figure(f"Re-run of the same ingest (all duplicate), {label}, {args.recommended_workers} "
                          "workers", rerun.rate, "records/s", "the first runs just before", first.rate, 2,
                          why="a duplicate is dropped before PostgreSQL, but only after it was fetched, decoded "
                              "and validated (the natural key comes out of the domain's check), so the re-run "
                              "saves the serialisation and the load, not the stages. Dropping earlier needs a "
                              "key read from the raw record, per source: not done."))
    _memory(args, bench, figures)
    _enqueue(args, bench, figures)
    _say("profile of one job")
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        _warm(bench.with_mock(url), None)
        report.profile = profile_job(bench.with_mock(url))
    single = report.profile.records / report.profile.seconds / ceiling
    report.figures[:] = [replace(f, why=f.why.replace("{single:.2f}", f"{single:.2f}")) for f in report.figures]
    report.details += [*_details(e2e, args), "", *_method(args)]
    return report


def _method(args: argparse.Namespace) -> list[str]:
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


def _best_of_two(first, second) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    a1, b1 = first(), second()
    a2, b2 = first(), second()
    return min(a1, a2), min(b1, b2)


def _end_to_end(args: argparse.Namespace, bench: Bench) -> dict[tuple[str, int], runs.RunResult]:
    """Every configuration ``--rounds`` times, round after round (drift hits all alike); the fastest counts."""
    results: dict[tuple[str, int], runs.RunResult] = {}
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        bench = bench.with_mock(url)
        _warm(bench, args.jobs)
        for round_number in range(1, args.rounds + 1):
            for worker_class in args.worker_classes:
                for workers in args.workers:
                    _say(f"end to end, round {round_number}: {_label(worker_class)}, {workers} worker(s), "
                         f"{args.jobs} window jobs")
                    result = runs.run_backfill(bench, worker_class, workers, args.jobs,
                                               f"e2e-{round_number}-{workers}-{_label(worker_class)}")
                    best = results.get((worker_class, workers))
                    if best is None or result.seconds < best.seconds:
                        results[(worker_class, workers)] = result
    return results


def _rerun(args: argparse.Namespace, bench: Bench) -> tuple[runs.RunResult, runs.RunResult]:
    """A first run and the same ingest again (everything duplicate), back to back, ``--rounds`` times;
    the fastest of each."""
    firsts, agains = [], []
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        bench = bench.with_mock(url)
        _warm(bench, args.jobs)
        workers = args.recommended_workers
        for round_number in range(1, args.rounds + 1):
            firsts.append(runs.run_backfill(bench, args.recommended, workers, args.jobs, f"first-{round_number}"))
            agains.append(runs.run_backfill(bench, args.recommended, workers, args.jobs, f"again-{round_number}",
                                            fresh=False))
    return min(firsts, key=lambda r: r.seconds), min(agains, key=lambda r: r.seconds)


def _warm(bench: Bench, jobs: int | None) -> None:
    """Ask the mock for every page the jobs will ask for, the way they ask (fills its page cache):
    ``jobs`` window jobs, or one plain job (no window) for None."""
    client = HttpClient(make_session(), timeout=(5, 60), policy=RetryPolicy())
    windows = runs.windows(bench.records, jobs) if jobs else [None]
    for window in windows:
        context = SourceContext(client, since=window.since, until=window.until) if window else SourceContext(client)
        for _ in make_source(bench.spec, context).stream():
            pass


def _naive(args: argparse.Namespace, bench: Bench, rows: list, figures: list[Figure], ceiling: float,
           end_to_end: float) -> None:
    _say(f"naive: one INSERT per row, {args.naive_rows:,} rows")
    naive = args.naive_rows / loads.naive_inserts(bench.settings.database_url, rows[:args.naive_rows])
    figures.append(Figure(f"Naive: one process, one INSERT and commit per row ({args.naive_rows:,} rows)",
                          naive, "rows/s", "ceiling", ceiling))
    figures.append(Figure(f"End to end, recommended ({_label(args.recommended)}, {args.recommended_workers} "
                          "workers), vs naive", end_to_end, "records/s", "naive", naive))


def _memory(args: argparse.Namespace, bench: Bench, figures: list[Figure]) -> None:
    small, large = args.memory_records
    with mock_server(large, cache_mb=0) as url:
        mock = bench.with_mock(url)
        _say(f"memory: one forking worker, {small:,} then {large:,} records")
        rss_small = runs.peak_rss_mib(mock, small, "memory-small")
        rss_large = runs.peak_rss_mib(mock, large, "memory-large")
    figures.append(Figure(f"Worker peak RSS, {large:,} records (forking worker, one job)", rss_large, "MiB",
                          f"{small:,} records", rss_small, 1.1, at_most=True))


def _enqueue(args: argparse.Namespace, bench: Bench, figures: list[Figure]) -> None:
    _say(f"enqueue: {args.enqueue_windows:,} windows")
    cli = args.enqueue_windows / runs.enqueue_cli(bench.with_mock("http://127.0.0.1:9"), args.enqueue_windows)
    one_by_one = 1000 / runs.enqueue_one_by_one(bench, 1000)
    figures.append(Figure(f"`ingest enqueue` of {args.enqueue_windows:,} windows (a process, start-up included)",
                          cli, "jobs/s", "RQ enqueue_call, one per round trip", one_by_one))
    figures.append(Figure("`ingest enqueue` against the issue's floor", cli, "jobs/s", "5,000 jobs/s", 5000, 1))


def _details(e2e: dict[tuple[str, int], runs.RunResult], args: argparse.Namespace) -> list[str]:
    lines = ["## End to end, every configuration", "",
             "| worker class | workers | jobs | seconds | records/s | loaded | rejected | duplicate |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (worker_class, workers), r in sorted(e2e.items()):
        lines.append(f"| {_label(worker_class)} | {workers} | {r.jobs} | {r.seconds:.2f} | {r.rate:,.0f} | "
                     f"{r.loaded:,} | {r.rejected:,} | {r.duplicate:,} |")
    return lines


def _header(bench: Bench, rows: int) -> list[str]:
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


def _label(worker_class: str) -> str:
    return worker_class.rsplit(".", 1)[-1]


def _say(line: str) -> None:
    print(f"[bench] {line}", flush=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
                        help="a scratch Redis database: it is emptied [env: BENCH_REDIS_URL]")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ingest_bench"),
        help="a database named ingest_bench*: it is dropped and created again [env: BENCH_DATABASE_URL]")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=16, help="window jobs the source is split into")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--worker-classes", nargs="+", default=[PLAIN_FORKING, INGEST_WORKER, "rq.worker.SimpleWorker"])
    parser.add_argument("--recommended", default=INGEST_WORKER, help="the worker class the README recommends")
    parser.add_argument("--recommended-workers", type=int, default=2, help="the workers the README recommends")
    parser.add_argument("--rounds", type=int, default=2, help="end-to-end runs per configuration (best counts)")
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--memory-records", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--enqueue-windows", type=int, default=10_000)
    parser.add_argument("--cache-mb", type=int, default=256, help="the mock source's page cache")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.recommended not in args.worker_classes or not {1, 2, args.recommended_workers} <= set(args.workers):
        parser.error("--worker-classes must include --recommended, --workers 1, 2 and --recommended-workers")
    args.summary = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in (("records", args.records),
                                                                         ("jobs", args.jobs)))
    return args


if __name__ == "__main__":
    main()
