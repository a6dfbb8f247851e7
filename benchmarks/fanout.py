"""The fan-out figure: the fixture API's issues and every issue's comments (a child source, the
comments endpoint answering after ``latency`` seconds), loaded by our ``rq worker`` processes against
dlt's ``rest_api`` with a child resource (:mod:`benchmarks.fanout_peer`), both into PostgreSQL.

Ours: ``gh_issues`` enqueued as a run; its batches hand the issues on to child jobs of
``parents_per_job`` issues each, which the workers take from the children queue; timed from the
enqueue to the last child job's end (the run's job list read again, as ``ingest run`` does).

    .venv-bench/bin/python -m benchmarks.fanout [--issues 1000] [--latency 0.1] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.core.connections import connect_postgres, redis_for
from ingest_workers.load.migrate import migrate
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.fanout_plans import enqueue_with_fan_out
from ingest_workers.runtime.producer import make_queue, new_run_id
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github

CATALOG = """
[datasets.bench_issues]
table = "bench_issues"
key = ["issue_number"]
[datasets.bench_issues.columns]
issue_number = "integer"
title = "text"

[datasets.bench_comments]
table = "bench_comments"
key = ["comment_id"]
[datasets.bench_comments.columns]
comment_id = "integer"
issue_number = "integer"
body = "text"

[sources.gh_issues]
kind = "http_json"
dataset = "bench_issues"
url = "{url}/repos/acme/widgets/issues"
records_path = ""
pagination = "link"
page_size = 30
rate_limit = 0
fields = {{ issue_number = "number" }}

[sources.gh_issue_comments]
kind = "http_json"
dataset = "bench_comments"
parent = "gh_issues"
url = "{url}/repos/acme/widgets/issues/{{parent.number}}/comments"
records_path = ""
pagination = "link"
page_size = 30
rate_limit = 0
parents_per_job = {per_job}
fields = {{ comment_id = "id", issue_number = "parent.number" }}
on_status = {{ 404 = "skip" }}
"""


def ours_fanout(settings: Settings, base_url: str, workers: int, per_job: int = 20) -> tuple[float, int]:
    """Seconds for ``workers`` workers to load the fixture's issues and their comments, and the
    comments stored (the tables are dropped first)."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as workdir:
        path = Path(workdir) / "catalog.toml"
        path.write_text(CATALOG.format(url=base_url, per_job=per_job), encoding="utf-8")
        catalog = load_catalog(path, os.environ)
        with closing(connect_postgres(settings.database_url)) as conn:
            with conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bench_issues, bench_comments")
            migrate(conn, catalog.datasets.values())
            client = redis_for(settings)
            client.flushdb()
            queue, run_id = make_queue(client, settings), new_run_id()
            with local_workers(settings, workers, os.environ, Path(workdir) / "workers.log"):
                time.sleep(2.0)  # the workers start and listen (not timed: `ingest workers` runs all day)
                started = time.perf_counter()
                enqueued = enqueue_with_fan_out(queue, settings, conn, [catalog.sources["gh_issues"]], run_id,
                                                catalog.sources)
                state = wait_for_jobs(queue, [item.job_id for item in enqueued], lambda state: None, 1800,
                                      poll=0.05, listed=lambda: JobHistory(conn).job_ids(run_id))
                elapsed = time.perf_counter() - started
            if state.done < state.total or state.failed:
                raise RuntimeError(f"the fan-out did not end well: {state}")
            with conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM bench_comments")
                comments = int(cur.fetchone()[0])
    return elapsed, comments


def section(redis_url: str, database_url: str, issues: int = 1000, latency: float = 0.1, workers: int = 8) -> str:
    """The BENCHMARKS.md section: ours against dlt on ``issues`` parents, ``latency`` s a comments page."""
    from .fanout_peer import dlt_fanout
    settings = Settings(redis_url=redis_url, database_url=database_url, queue="bench-fanout", job_retries=0)
    server = FixtureApiServer(FixtureApiConfig(issues=issues, latency=latency)).start()
    try:
        ours, stored = ours_fanout(settings, server.url, workers)
        theirs, comments, version = dlt_fanout(database_url, server.url)
    finally:
        server.stop()
    return (f"\n## Fan-out\n\n{issues:,} issues, then each issue's comments (a child source; every comments page "
            f"answers after {latency * 1000:.0f} ms; 404s skipped): ours, {workers} workers (child jobs of 20 "
            f"parents), {ours:.1f} s for {stored:,} comments; dlt {version} `rest_api` with a child resource, "
            f"{theirs:.1f} s for {comments:,}: **{theirs / ours:.1f}x** (target 4x). "
            "`python -m benchmarks.fanout` measures it alone.\n")


def main(argv: list[str] | None = None) -> int:
    """Ours against dlt on the same fixture; print both, the ratio, and whether the comments match."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=main.__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ingest_bench"))
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per comments page")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--skip-dlt", action="store_true")
    args = parser.parse_args(argv)
    expected = sum(len(github.comments_of(n)) for n in range(1, args.issues + 1) if not github.comments_missing(n))
    settings = Settings(redis_url=args.redis_url, database_url=args.database_url, queue="bench-fanout",
                        job_retries=0)
    server = FixtureApiServer(FixtureApiConfig(issues=args.issues, latency=args.latency)).start()
    try:
        ours, stored = ours_fanout(settings, server.url, args.workers)
        print(f"ours ({args.workers} workers): {stored} comments of {args.issues} issues in {ours:.1f}s "
              f"(expected {expected})")
        if args.skip_dlt:
            return 0 if stored == expected else 1
        from .fanout_peer import dlt_fanout
        theirs, comments, version = dlt_fanout(args.database_url, server.url)
    finally:
        server.stop()
    print(f"dlt {version} rest_api, child resource: {comments} comments in {theirs:.1f}s")
    print(f"ours is {theirs / ours:.1f}x faster (target: 4x)")
    return 0 if stored == expected == comments else 1


if __name__ == "__main__":
    sys.exit(main())
