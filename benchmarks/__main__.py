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
from ingest_workers.datasets import PRODUCTS
from ingest_workers.runtime.producer import enqueue_backfill
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.testing.devservices import ensure_services

from . import fastpath, freshness, loads, merge, peer, record_path, runs, slow_sources
from .parts import Parts
from .profiling import profile_job, time_job
from .report import Figure, Report, load_average
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
        parts = Parts(Report([]), args.output, _say, skip=tuple(args.skip))
        measure(args, Bench(settings, "", args.records, out), parts)
        parts.run("overlapped fetch", lambda: setattr(parts, "trailer", overlapped_fetch(services.redis_url,
                                                                                         services.database_url)))
    parts.report.header.append(f"Whole run: {time.monotonic() - started:.0f} s (`scripts/bench {args.summary}`).")
    parts.write()
    _say(f"wrote {args.output}" + (f"; {len(parts.report.failed)} part(s) failed" if parts.report.failed else ""))
    if parts.report.failed:
        raise SystemExit(1)


def overlapped_fetch(redis_url: str, database_url: str) -> str:
    """The figures of ``scripts/bench_overlap.py`` (issue 8's read-ahead), run now on the same services."""
    _say("overlapped fetch (scripts/bench_overlap.py): read-ahead against a slow source, slow sources")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_overlap.py"), "--redis-url", redis_url,
                             "--database-url", database_url, "--repeat", "3", "--source", "shop_c_products"],
                            capture_output=True, text=True, check=True, timeout=900)
    lines = result.stdout.splitlines()[1:]  # the first line repeats the machine, already in the header
    return ("\n## Overlapped fetch\n\nA job whose pages come one after another (cursor, Link) reads its source "
            "ahead (`INGEST_PREFETCH_PAGES`, default 2) while it loads the current page; page and offset paging "
            "fetch concurrently instead (the slow-source figures above). Each row: a real "
            "`ingest run --workers 0` of one source (medians of 3) "
            "against `ingest mock-sources --latency`; the baseline is the row with read-ahead off, in this run. "
            "Then three slow sources in one run, inline (their times add up) against one worker each (the run "
            "takes the time of the slowest).\n" + "\n".join(lines) + "\n")


def measure(args: argparse.Namespace, bench: Bench, parts: Parts) -> None:
    """Every part in turn, each on its own (:class:`Parts`): BENCHMARKS.md after each."""
    lineage = Lineage(bench.spec.name, "bench", "bench-loader", datetime.now(UTC).isoformat())
    _say(f"making {args.records:,} records and their rows")
    rows = loads.checked_rows(bench.spec, loads.served_records(args.records), lineage)
    # This process now holds ~200,000 rows: keep the garbage collector from walking them at every
    # collection, which would take a core from the workers while this process polls for their jobs.
    gc.collect()
    gc.freeze()
    report = parts.report
    report.header[:] = _header(bench, len(rows))
    figures, value = report.figures, parts.values
    parts.run("load ceiling and loader", lambda: _loader_figures(bench, rows, lineage, figures, value))
    parts.run("record path", lambda: _record_path(bench, rows, figures, value))
    parts.run("slow source", lambda: _slow_source(args, bench, figures, report))
    parts.run("end to end", lambda: value.update(e2e=_end_to_end(args, bench)))
    parts.run("end to end figures", lambda: _end_to_end_figures(args, figures, parts))
    parts.run("dlt in memory", lambda: _dlt_in_memory(args, bench, rows, figures, parts))
    parts.run("over HTTP against dlt rest_api",
              lambda: _peer_over_http(args, bench, figures, parts.need("recommended"), _label(args.recommended)))
    parts.run("naive", lambda: _naive(args, bench, rows, figures, parts.need("ceiling"), parts.need("recommended")))
    parts.run("merge", lambda: figures.extend(merge.merge_figures(bench.settings, args.records, bench.out, say=_say)))
    parts.run("re-run", lambda: _rerun_figure(args, bench, figures))
    parts.run("memory", lambda: _memory(args, bench, figures))
    parts.run("enqueue", lambda: _enqueue(args, bench, figures))
    _freshness(args, bench, parts)
    parts.run("one job, compiled record path against the reference", lambda: _one_job(args, bench, figures, value))
    parts.run("profile of one job", lambda: _profile(args, bench, parts))
    details = [*_details(value["e2e"], args), ""] if "e2e" in value else []
    report.details += [*details, *_method(args), "", *_loads_section(report)]


def _loader_figures(bench: Bench, rows: list, lineage: Lineage, figures: list[Figure], value: dict) -> None:
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
        why=f"the loader is its client part (COPY text made in Python by the serialiser generated for the "
            f"dataset, orjson for the raw jsonb: {serialise / ceiling:.2f}× the ceiling on its own) plus its server "
            f"part (COPY into the table with its key and two indexes, a savepoint and a commit per 1,000 rows: "
            f"{server / ceiling:.2f}× on its own, which bounds the loader whatever the client does). Done one "
            f"after the other they would give {1 / (ceiling / serialise + ceiling / server):.2f}×; streaming the "
            "COPY overlaps them only in part (the commit and the end of each COPY wait for the server). What "
            "would: fewer, larger transactions, or loading from several processes."))
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
    value["ceiling"] = ceiling


def _end_to_end_figures(args: argparse.Namespace, figures: list[Figure], parts: Parts) -> None:
    e2e, ceiling = parts.need("e2e"), parts.need("ceiling")
    recommended = e2e[(args.recommended, args.recommended_workers)]
    parts.values["recommended"] = recommended.rate
    label = _label(args.recommended)
    figures += [
        Figure(f"End to end, recommended: {label}, {args.recommended_workers} workers", recommended.rate,
               "records/s", "ceiling", ceiling, 0.35,
               why="the ceiling is one PostgreSQL backend taking COPY text made beforehand into a table "
                   "without keys. End to end, the same two cores also run the workers' Python (HTTP, JSON, "
                   "stages, serialisation: see the profile below), PostgreSQL's key and index upkeep, Redis and "
                   "the mock source. One job alone in one process, with nothing competing, runs at "
                   "{single:.2f}× the ceiling (the profile below): the workers' Python per record costs more "
                   "than 35% of the ceiling allows, even with the compiled record path (issue 28) and its next "
                   "pages fetched concurrently."),
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


def _dlt_in_memory(args: argparse.Namespace, bench: Bench, rows: list, figures: list[Figure], parts: Parts) -> None:
    _say("dlt append and merge")
    ceiling = parts.need("ceiling")
    append_s, dlt_version = peer.dlt_load(bench.settings.database_url, rows, "append")
    merge_s, _ = peer.dlt_load(bench.settings.database_url, rows, "merge")
    dlt_merge = len(rows) / merge_s
    recommended = parts.values.get("recommended")
    if recommended is not None:
        figures.append(Figure(f"End to end, recommended: {_label(args.recommended)}, {args.recommended_workers} "
                              "workers", recommended, "records/s", "dlt merge (rows in memory)", dlt_merge, 3,
                              why="see the profile: the per-record Python path (stages and serialisation) and the "
                                  "shared 2 cores bound it; dlt was given its rows in memory (no HTTP), which "
                                  "favours it."))
    figures += [
        Figure(f"dlt {dlt_version} append (records in memory, no HTTP)", len(rows) / append_s, "rows/s",
               "ceiling", ceiling),
        Figure(f"dlt {dlt_version} merge on product_id (records in memory, no HTTP)", dlt_merge, "rows/s",
               "ceiling", ceiling),
    ]


def _rerun_figure(args: argparse.Namespace, bench: Bench, figures: list[Figure]) -> None:
    _say("re-run: everything duplicate")
    first, rerun = _rerun(args, bench)
    figures.append(Figure(f"Re-run of the same ingest (all duplicate), {_label(args.recommended)}, "
                          f"{args.recommended_workers} workers", rerun.rate, "records/s", "the first runs just before",
                          first.rate, 2,
                          why="a duplicate is dropped before PostgreSQL, but only after it was fetched, decoded "
                              "and validated (the natural key comes out of the dataset's check), so the re-run "
                              "saves the serialisation and the load, not the stages. Dropping earlier needs a "
                              "key read from the raw record, per source: not done."))


def _one_job(args: argparse.Namespace, bench: Bench, figures: list[Figure], values: dict) -> None:
    """Target 1 of issue 28: one job alone (no latency, one process), compiled record path against the
    reference path, alternated, best of 3 each: in CPU seconds of the job's process (all its threads),
    which the other work of a shared machine disturbs least, and in wall time."""
    _say("one job alone: the compiled record path against the reference (best of 3, alternated)")
    wall = {"compiled": float("inf"), "reference": float("inf")}
    cpu = dict(wall)
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        _warm(bench.with_mock(url), None)
        for _ in range(3):
            for path in wall:
                seconds, cpu_seconds = time_job(bench.with_mock(url).with_settings(record_path=path))
                wall[path], cpu[path] = min(wall[path], seconds), min(cpu[path], cpu_seconds)
    what = f"One job alone, no latency ({args.records:,} records, one process), compiled record path"
    alone = f"{values['record path']:.2f}× as fast" if "record path" in values else "faster"
    why = ("the compiled path removes the stage objects and most per-value reader calls (the record path alone "
           f"runs {alone}: the 'record path alone' rows above), but a job is more than its "
           "record path: HTTP and decoding in the fetch threads, the per-record bookkeeping of the pipeline "
           "(read-ahead hand-over, resume position, Record objects), decimals, timestamps and the raw JSON made "
           "per record, the Redis round trips (redis-py encodes every key in Python) and the wait for "
           "PostgreSQL. See the profile below and docs/performance.md.")
    reference = "the reference path (INGEST_RECORD_PATH=reference)"
    figures.append(Figure(f"{what}: records per CPU second of the job's process", args.records / cpu["compiled"],
                          "records/s", reference, args.records / cpu["reference"], 3, why=why))
    figures.append(Figure(f"{what}: records per second, wall time", args.records / wall["compiled"], "records/s",
                          reference, args.records / wall["reference"], 3, why=why))


def _profile(args: argparse.Namespace, bench: Bench, parts: Parts) -> None:
    _say("profile of one job")
    report = parts.report
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        _warm(bench.with_mock(url), None)
        report.profile = profile_job(bench.with_mock(url))
    ceiling = parts.values.get("ceiling")
    if ceiling is not None:  # the figures against the ceiling say what one job alone reaches
        single = report.profile.records / report.profile.seconds / ceiling
        report.figures[:] = [replace(f, why=f.why.replace("{single:.2f}", f"{single:.2f}")) for f in report.figures]


def _slow_source(args: argparse.Namespace, bench: Bench, figures: list[Figure], report: Report) -> None:
    """Benchmark 1: one job against a slow source at several fetch concurrencies; the rate-limited case."""
    _say(f"slow source: {args.slow_records:,} records, {args.latency * 1000:.0f} ms per page, concurrency "
         f"{', '.join(map(str, slow_sources.LEVELS))}; then rate-limited to {args.slow_rate_limit:g} requests/s")
    report.loads.append(("slow source, start", load_average()))
    best, limited, report.slow_profile = slow_sources.by_concurrency(
        bench, args.recommended, args.slow_records, args.latency, args.rounds, args.slow_rate_limit)
    report.loads.append(("slow source, end", load_average()))
    one = best[1].rate
    latency = f"{args.latency * 1000:.0f} ms per page, pages of 500, one job, one {_label(args.recommended)}"
    figures.append(Figure(f"Slow source ({latency}): concurrency 1", one, "records/s", "500 records / "
                          f"{args.latency:g} s (one request at a time, nothing else)", 500 / args.latency))
    for level in slow_sources.LEVELS[1:]:
        target = 6 if level == 8 else None
        figures.append(Figure(f"Slow source: concurrency {level}", best[level].rate, "records/s", "concurrency 1",
                              one, target,
                              why=f"the limit is {level}× (all {level} requests in flight all the time); what "
                                  "stops it short is the job's own CPU: at concurrency 8 the one job must take "
                                  f"{8 * 500 / args.latency:,.0f} records/s through decoding, the stages and "
                                  "the loader in one Python process, more than one core does here (one job "
                                  "alone, no latency, runs at about the single-job rate of the profile below), "
                                  "on two cores shared with PostgreSQL, Redis, the mock source and the other "
                                  "work of this machine (load average in the table at the end); the profile "
                                  "of this job at concurrency 8 is at the end. Past that point, split the "
                                  "source into windows: several jobs, several processes."))
    figures.append(Figure(f"Slow source, rate-limited to {limited.limit:g} requests/s, concurrency 8: requests/s "
                          "over the job", limited.requests_per_second, "requests/s", "the limit", limited.limit, 1.02,
                          at_most=True, note=f"{limited.requests} requests in {limited.job_seconds:.2f} s"))
    figures.append(Figure("… its records/s", limited.result.rate, "records/s",
                          f"{limited.limit:g} requests/s × 500", limited.limit * 500))


def _peer_over_http(args: argparse.Namespace, bench: Bench, figures: list[Figure], ours: float, label: str) -> None:
    """Benchmark 2: dlt's rest_api source over HTTP against the same mock pages, into the same PostgreSQL."""
    configurations = [("append", None), ("merge", None), ("merge", "csv")]
    _say("dlt rest_api over HTTP: " + ", ".join(f"{d}{'/' + f if f else ''}" for d, f in configurations))
    rates: dict[tuple[str, str | None], tuple[float, str]] = {}
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        _warm_for_dlt(url, args.records)
        for disposition, file_format in configurations:
            seconds, what = peer.dlt_rest_api(bench.settings.database_url, url, disposition, args.records,
                                              file_format)
            rates[(disposition, file_format)] = (args.records / seconds, what)
        _say(f"ours over HTTP into a merge dataset (issue 12), {args.recommended_workers} workers")
        ours_merge = _ours_merge_over_http(args, bench.with_mock(url))
    dlt_merge, _ = rates[("merge", None)]
    workers = args.recommended_workers
    figures.append(Figure(f"End to end over HTTP, ours ({label}, {workers} workers) vs dlt rest_api merge on id "
                          "(the same mock pages, the same PostgreSQL)", ours, "records/s", "dlt rest_api merge",
                          dlt_merge, 3,
                          why="ours is bound by its per-record Python on two shared cores (the end-to-end rows "
                              "against the ceiling, and the profile); dlt's merge spends its time in extract, "
                              "normalise (files on disk) and a staging-table merge, one page at a time."))
    for (_, file_format), (rate, what) in rates.items():
        fastest = " — the fastest configuration dlt documents for JSON pages into PostgreSQL (COPY of csv files " \
                  "instead of INSERT statements; arrow/parquet loading needs arrow tables, not this shape)" \
                  if file_format else ""
        figures.append(Figure(f"dlt rest_api over HTTP, {what}{fastest}", rate, "records/s", f"ours ({workers} "
                              "workers)", ours))
    figures.append(Figure(f"End to end over HTTP into a merge dataset (`write = \"merge\"`, issue 12), ours ({label}, "
                          f"{workers} workers), first load, vs dlt rest_api merge on id", ours_merge.rate,
                          "records/s", "dlt rest_api merge", dlt_merge, 3,
                          why="as the append row above: the per-record Python of two workers on two shared "
                              "cores; the merge path adds a fingerprint per row in Redis and an upsert"))


def _ours_merge_over_http(args: argparse.Namespace, bench: Bench) -> runs.RunResult:
    """Ours end to end into issue 12's merge dataset (``benchmarks/merge.py``), the first load of the same
    records, window jobs as the append figure."""
    merge.reset(bench.settings)
    spec = merge.merge_spec(bench.mock_url)
    merge.warm(spec, args.records, args.jobs)
    since, until = runs.time_range(args.records)
    size = runs.window_size(args.records, args.jobs)
    return runs.run_jobs(bench, args.recommended, args.recommended_workers, "http-merge",
                         lambda queue: enqueue_backfill(queue, bench.settings, [spec], since, until, size,
                                                        "http-merge")[1], fresh=False)


def _warm_for_dlt(url: str, records: int) -> None:
    """Ask the mock for every page the way dlt's page-number paginator asks (``per_page`` first)."""
    session = make_session()
    for page in range(1, records // 500 + 2):
        session.get(f"{url}/products", params={"per_page": 500, "page": page}, timeout=60).raise_for_status()
    session.close()


def _freshness(args: argparse.Namespace, bench: Bench, parts: Parts) -> None:
    """Benchmark 4: one-page jobs on idle workers, enqueue -> rows committed; each worker class a part
    of its own (one that fails leaves the other's figures)."""
    measured = {}
    for worker_class in (args.recommended, "rq.worker.SimpleWorker"):
        def one(worker_class: str = worker_class) -> None:
            _say(f"freshness: {args.freshness_jobs} one-page jobs, {_label(worker_class)}")
            measured[worker_class] = freshness.one_page_jobs(bench, worker_class, args.freshness_jobs)
        parts.run(f"freshness, {_label(worker_class)}", one)
    simple = measured.get("rq.worker.SimpleWorker")
    for worker_class, (latencies, noop) in measured.items():
        why = (f"where the time goes: a no-op job of this package on the same workers takes "
               f"{noop.p50 * 1000:.0f} ms of it (fork of the work horse, RQ's bookkeeping, and our job's fixed "
               "cost: its `ingest_jobs` row and metrics, for a source of no records: the no-op row); the rest, "
               f"{(latencies.p50 - noop.p50) * 1000:.0f} ms, is the one page (the breaker and rate limit scripts, "
               "one page fetched, checked and committed, the Redis marks). "
               + (f"Without the fork (SimpleWorker) the p50 is {simple[0].p50 * 1000:.0f} ms. " if simple else "")
               + "The forking worker stays the default for isolation; SimpleWorker is the choice where freshness "
               "matters more.")
        name = f"Freshness, {_label(worker_class)}, 2 idle workers: {args.freshness_jobs} one-page jobs"
        recommended = worker_class == args.recommended
        parts.report.figures.append(Figure(f"{name}, p50 enqueue → rows committed", latencies.p50 * 1000, "ms",
                                           "the target", 100.0, 1 if recommended else None, at_most=True, why=why))
        parts.report.figures.append(Figure(f"{name}, p99", latencies.p99 * 1000, "ms", "p50", latencies.p50 * 1000))
        parts.report.figures.append(Figure(
            "… a no-op job of this package (`fetch_source` of a source of no records) on the same workers, p50 "
            "enqueue → finished (the floor)", noop.p50 * 1000, "ms", "ours, p50", latencies.p50 * 1000))


def _record_path(bench: Bench, rows: list, figures: list[Figure], values: dict) -> None:
    _say("record path: json vs orjson, COPY serialisers")
    records = loads.served_records(min(len(rows), 50_000))
    best = record_path.measure(records, rows[:50_000])
    pairs = [("decode: orjson first", "decode: json", "Decoding 500-record pages: orjson (Python's json for what "
              "it refuses)"),
             ("raw jsonb: orjson first", "raw jsonb: json", "The raw jsonb text of each row: orjson"),
             ("COPY text: orjson for raw (kept)", "COPY text: json for raw", "COPY text of a batch, with orjson for "
              "the raw column (kept)"),
             ("COPY text: generated per dataset, orjson", "COPY text: orjson for raw (kept)", "COPY text made by a "
              "per-dataset serialiser generated from the column kinds (issue 12's prototype; issue 28 keeps "
              "`load/copygen.py`)")]
    for fast, slow, name in pairs:
        figures.append(Figure(name, best[slow] / best[fast], "× faster", "", 0))
    lineage = Lineage(bench.spec.name, "bench", "bench-fastpath", datetime.now(UTC).isoformat())
    rates = fastpath.measure(records, bench.spec, PRODUCTS, lineage)
    values["record path"] = rates["generated"] / rates["reference"]
    what = "The record path alone: decoded records -> rows and rejects -> COPY text (CPU seconds, best of 5)"
    figures.append(Figure(f"{what}: reference (stage objects, `copy_text`)", rates["reference"], "records/s"))
    figures.append(Figure("… fused closures: one loop, the dataset's row check, `copy_text` (prototype B)",
                          rates["fused closures"], "records/s", "reference", rates["reference"]))
    figures.append(Figure("… generated per dataset: `CompiledRecordPath` + `copy_serialiser` (prototype A, kept)",
                          rates["generated"], "records/s", "reference", rates["reference"]))
    figures.append(Figure("… generated, with a user's stage (the `Stage` protocol) that changes nothing",
                          rates["generated + a user stage"], "records/s", "reference with the same stage",
                          rates["reference + a user stage"]))


def _loads_section(report: Report) -> list[str]:
    lines = ["## Machine load during the run", "",
             "This machine is shared (other test runs go on beside the benchmark); the load averages (1, 5, 15 "
             "minutes) when each part started:", "", "| part | load average |", "|---|---|"]
    return lines + [f"| {part} | {' '.join(f'{v:.2f}' for v in values)} |" for part, values in report.loads]


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
    figures.append(Figure("`ingest enqueue` against the issue's floor", cli, "jobs/s", "5,000 jobs/s", 5000, 1,
                          why="an absolute floor, so it moves with the machine's load (see the load table): the "
                              "command's own start-up (Python and its imports) is inside the time, and the ratio "
                              "to RQ's one-by-one enqueue in the same run is the figure that holds"))


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
    parser.add_argument("--recommended", default=INGEST_WORKER, help="the worker class docs/operations.md recommends")
    parser.add_argument("--recommended-workers", type=int, default=2, help="the workers docs/operations.md recommends")
    parser.add_argument("--rounds", type=int, default=2, help="end-to-end runs per configuration (best counts)")
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--memory-records", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--enqueue-windows", type=int, default=10_000)
    parser.add_argument("--cache-mb", type=int, default=320, help="the mock source's page cache")
    parser.add_argument("--slow-records", type=int, default=50_000, help="records of the slow-source job")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per page of the slow source")
    parser.add_argument("--slow-rate-limit", type=float, default=20.0, help="requests/s of the rate-limited run")
    parser.add_argument("--freshness-jobs", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--skip", nargs="*", default=[], metavar="PART",
                        help="leave out the parts whose name contains one of these words (e.g. naive enqueue)")
    args = parser.parse_args()
    if args.recommended not in args.worker_classes or not {1, 2, args.recommended_workers} <= set(args.workers):
        parser.error("--worker-classes must include --recommended, --workers 1, 2 and --recommended-workers")
    args.summary = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in (("records", args.records),
                                                                         ("jobs", args.jobs)))
    if args.skip:
        args.summary += " --skip " + " ".join(args.skip)
    return args


if __name__ == "__main__":
    main()
