"""Figures of one job: alone on either record path, profiled, against a slow source; a worker's memory;
freshness of one-page jobs; ``ingest enqueue``."""

from __future__ import annotations

import argparse
from dataclasses import replace

from . import freshness, runs, slow_sources
from .common import label, say, warm
from .parts import Parts
from .profiling import profile_job, time_job
from .report import Figure, Report, load_average
from .services import Bench, mock_server


def one_job(args: argparse.Namespace, bench: Bench, figures: list[Figure], values: dict) -> None:
    """Target 1 of issue 28: one job alone (no latency, one process), compiled record path against the
    reference path, alternated, best of 3 each: in CPU seconds of the job's process (all its threads),
    which the other work of a shared machine disturbs least, and in wall time."""
    say("one job alone: the compiled record path against the reference (best of 3, alternated)")
    wall = {"compiled": float("inf"), "reference": float("inf")}
    cpu = dict(wall)
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        warm(bench.with_mock(url), None)
        for _ in range(3):
            for path in wall:
                seconds, cpu_seconds = time_job(bench.with_mock(url).with_settings(record_path=path))
                wall[path], cpu[path] = min(wall[path], seconds), min(cpu[path], cpu_seconds)
    what = f"One job alone, no latency ({args.records:,} records, one process), compiled record path"
    alone = f"{values['record path']:.2f}× as fast" if "record path" in values else "faster"
    why = ("the compiled path removes the stage objects and most per-value reader calls (the record path alone "
           f"runs {alone}: the 'record path alone' rows above), but a job is more than its record path, and "
           "that part is the same on both paths: HTTP and JSON decoding in the fetch threads (about 5 µs a "
           "record on its own, a third of the compiled job), the pipeline's bookkeeping, Redis and the wait "
           "for PostgreSQL. So the job's ratio stays below the record path's whatever the rest costs: 3× on "
           "the job needs the record path itself about 4× the reference. See the profile below and "
           "docs/performance.md (instructions per record, before and after the work around the record path).")
    reference = "the reference path (INGEST_RECORD_PATH=reference)"
    figures.append(Figure(f"{what}: records per CPU second of the job's process", args.records / cpu["compiled"],
                          "records/s", reference, args.records / cpu["reference"], 3, why=why))
    figures.append(Figure(f"{what}: records per second, wall time", args.records / wall["compiled"], "records/s",
                          reference, args.records / wall["reference"], 3, why=why))


def profile(args: argparse.Namespace, bench: Bench, parts: Parts) -> None:
    say("profile of one job")
    report = parts.report
    with mock_server(args.records, cache_mb=args.cache_mb) as url:
        warm(bench.with_mock(url), None)
        report.profile = profile_job(bench.with_mock(url))
    ceiling = parts.values.get("ceiling")
    if ceiling is not None:  # the figures against the ceiling say what one job alone reaches
        single = report.profile.records / report.profile.seconds / ceiling
        report.figures[:] = [replace(f, why=f.why.replace("{single:.2f}", f"{single:.2f}")) for f in report.figures]


def slow_source(args: argparse.Namespace, bench: Bench, figures: list[Figure], report: Report) -> None:
    """Benchmark 1: one job against a slow source at several fetch concurrencies; the rate-limited case."""
    say(f"slow source: {args.slow_records:,} records, {args.latency * 1000:.0f} ms per page, concurrency "
         f"{', '.join(map(str, slow_sources.LEVELS))}; then rate-limited to {args.slow_rate_limit:g} requests/s")
    report.loads.append(("slow source, start", load_average()))
    best, limited, report.slow_profile = slow_sources.by_concurrency(
        bench, args.recommended, args.slow_records, args.latency, args.rounds, args.slow_rate_limit)
    report.loads.append(("slow source, end", load_average()))
    one = best[1].rate
    latency = f"{args.latency * 1000:.0f} ms per page, pages of 500, one job, one {label(args.recommended)}"
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


def memory(args: argparse.Namespace, bench: Bench, figures: list[Figure]) -> None:
    small, large = args.memory_records
    with mock_server(large, cache_mb=0) as url:
        mock = bench.with_mock(url)
        say(f"memory: one forking worker, {small:,} then {large:,} records")
        rss_small = runs.peak_rss_mib(mock, small, "memory-small")
        rss_large = runs.peak_rss_mib(mock, large, "memory-large")
    figures.append(Figure(f"Worker peak RSS, {large:,} records (forking worker, one job)", rss_large, "MiB",
                          f"{small:,} records", rss_small, 1.1, at_most=True))


def enqueue(args: argparse.Namespace, bench: Bench, figures: list[Figure]) -> None:
    say(f"enqueue: {args.enqueue_windows:,} windows")
    cli = args.enqueue_windows / runs.enqueue_cli(bench.with_mock("http://127.0.0.1:9"), args.enqueue_windows)
    one_by_one = 1000 / runs.enqueue_one_by_one(bench, 1000)
    figures.append(Figure(f"`ingest enqueue` of {args.enqueue_windows:,} windows (a process, start-up included)",
                          cli, "jobs/s", "RQ enqueue_call, one per round trip", one_by_one))
    figures.append(Figure("`ingest enqueue` against the issue's floor", cli, "jobs/s", "5,000 jobs/s", 5000, 1,
                          why="an absolute floor, so it moves with the machine's load (see the load table): the "
                              "command's own start-up (Python and its imports) is inside the time, and the ratio "
                              "to RQ's one-by-one enqueue in the same run is the figure that holds"))


def freshness_figures(args: argparse.Namespace, bench: Bench, parts: Parts) -> None:
    """Benchmark 4: one-page jobs on idle workers, enqueue -> rows committed; each worker class a part
    of its own (one that fails leaves the other's figures)."""
    measured = {}
    for worker_class in (args.recommended, "rq.worker.SimpleWorker"):
        def one(worker_class: str = worker_class) -> None:
            say(f"freshness: {args.freshness_jobs} one-page jobs, {label(worker_class)}")
            measured[worker_class] = freshness.one_page_jobs(bench, worker_class, args.freshness_jobs)
        parts.run(f"freshness, {label(worker_class)}", one)
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
        name = f"Freshness, {label(worker_class)}, 2 idle workers: {args.freshness_jobs} one-page jobs"
        recommended = worker_class == args.recommended
        parts.report.figures.append(Figure(f"{name}, p50 enqueue → rows committed", latencies.p50 * 1000, "ms",
                                           "the target", 100.0, 1 if recommended else None, at_most=True, why=why))
        parts.report.figures.append(Figure(f"{name}, p99", latencies.p99 * 1000, "ms", "p50", latencies.p50 * 1000))
        parts.report.figures.append(Figure(
            "… a no-op job of this package (`fetch_source` of a source of no records) on the same workers, p50 "
            "enqueue → finished (the floor)", noop.p50 * 1000, "ms", "ours, p50", latencies.p50 * 1000))
    parts.write()  # the figures of both parts, as soon as both were measured
