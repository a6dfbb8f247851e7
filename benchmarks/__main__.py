"""``python -m benchmarks`` (run by ``scripts/bench``): measure, then write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ingest_workers.core.config import Settings
from ingest_workers.core.models import Lineage
from ingest_workers.testing.devservices import ensure_services

from . import fanout, loads, merge
from .common import INGEST_WORKER, PLAIN_FORKING, ROOT, label, say
from .e2e_figures import details, end_to_end, end_to_end_figures, peer_over_http, rerun_figure
from .job_figures import enqueue, freshness_figures, memory, one_job, profile, slow_source
from .loading_figures import dlt_in_memory, loader_figures, naive, record_path_figures
from .parts import Parts
from .report import Report
from .run_notes import header, loads_section, method
from .services import Bench, recreate_database


def main() -> None:
    args = _arguments()
    started = time.monotonic()
    with ensure_services(args.redis_url, args.database_url, ROOT / ".state" / "bench", log=say) as services:
        recreate_database(services.database_url)
        settings = Settings(redis_url=services.redis_url, database_url=services.database_url, queue="bench",
                            batch_size=1000, job_retries=0)
        out = ROOT / "out"
        out.mkdir(exist_ok=True)
        parts = Parts(Report([]), args.output, say, skip=tuple(args.skip))
        measure(args, Bench(settings, "", args.records, out), parts)
        parts.run("overlapped fetch", lambda: setattr(parts, "trailer", overlapped_fetch(services.redis_url,
                                                                                         services.database_url)))
        # fan-out: 1,000 parents, a child endpoint of 100 ms, ours against dlt (benchmarks/fanout.py)
        parts.run("fan-out", lambda: setattr(parts, "trailer", parts.trailer + fanout.section(
            services.redis_url, services.database_url)))
    parts.report.header.append(f"Whole run: {time.monotonic() - started:.0f} s (`scripts/bench {args.summary}`).")
    parts.write()
    say(f"wrote {args.output}" + (f"; {len(parts.report.failed)} part(s) failed" if parts.report.failed else ""))
    if parts.report.failed:
        raise SystemExit(1)


def overlapped_fetch(redis_url: str, database_url: str) -> str:
    """The figures of ``scripts/bench_overlap.py`` (issue 8's read-ahead), run now on the same services."""
    say("overlapped fetch (scripts/bench_overlap.py): read-ahead against a slow source, slow sources")
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
    say(f"making {args.records:,} records and their rows")
    rows = loads.checked_rows(bench.spec, loads.served_records(args.records), lineage)
    # This process now holds ~200,000 rows: keep the garbage collector from walking them at every
    # collection, which would take a core from the workers while this process polls for their jobs.
    gc.collect()
    gc.freeze()
    report = parts.report
    report.header[:] = header(bench, len(rows))
    figures, value = report.figures, parts.values
    parts.run("load ceiling and loader", lambda: loader_figures(bench, rows, lineage, figures, value))
    parts.run("record path", lambda: record_path_figures(bench, rows, figures, value))
    parts.run("slow source", lambda: slow_source(args, bench, figures, report))
    parts.run("end to end", lambda: value.update(e2e=end_to_end(args, bench)))
    parts.run("end to end figures", lambda: end_to_end_figures(args, figures, parts))
    parts.run("dlt in memory", lambda: dlt_in_memory(args, bench, rows, figures, parts))
    parts.run("over HTTP against dlt rest_api",
              lambda: peer_over_http(args, bench, figures, parts.need("recommended"), label(args.recommended)))
    parts.run("naive", lambda: naive(args, bench, rows, figures, parts.need("ceiling"), parts.need("recommended")))
    parts.run("merge", lambda: figures.extend(merge.merge_figures(bench.settings, args.records, bench.out, say=say)))
    parts.run("re-run", lambda: rerun_figure(args, bench, figures))
    parts.run("memory", lambda: memory(args, bench, figures))
    parts.run("enqueue", lambda: enqueue(args, bench, figures))
    freshness_figures(args, bench, parts)
    parts.run("one job, compiled record path against the reference", lambda: one_job(args, bench, figures, value))
    parts.run("profile of one job", lambda: profile(args, bench, parts))
    every_configuration = [*details(value["e2e"], args), ""] if "e2e" in value else []
    report.details += [*every_configuration, *method(args), "", *loads_section(report)]


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
