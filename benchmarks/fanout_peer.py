"""The fan-out peer: dlt's ``rest_api`` with a child resource (comments per issue) over the
fixture API (``ingest_workers.testing.fixture_apis``), into PostgreSQL (installed in .venv-bench only).

The parent resource lists ``/repos/acme/widgets/issues`` (Link paging); the child resource asks
``/repos/acme/widgets/issues/{resources.issues.number}/comments`` per issue (Link paging, 404s
ignored), with the parent's ``number`` kept as ``_issues_number``. dlt puts the issues' nested
``labels`` and ``tags`` in child tables of its own (``issues__labels``, ``issues__tags``).

Self-check (a fixture server in this process, with faults, and a schema of its own)::

    .venv-bench/bin/python -m benchmarks.fanout_peer [DATABASE_URL] [--issues N] [--latency S] [--parallelized]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import psycopg2
from psycopg2 import sql

from benchmarks.peer import dlt_credentials
from ingest_workers.testing.fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer, github

DATASET = "dlt_fanout"


def fanout_resources(per_page: int, parallelized: bool) -> list[dict[str, Any]]:
    """dlt ``rest_api`` resources: issues, and comments as a child resource of issues."""
    issues_path = f"repos/{github.OWNER}/{github.REPO}/issues"
    return [
        {"name": "issues", "primary_key": "number", "write_disposition": "append",
         "endpoint": {"path": issues_path, "params": {"per_page": per_page}, "paginator": "header_link"}},
        {"name": "issue_comments", "primary_key": "id", "write_disposition": "append",
         "parallelized": parallelized,
         "include_from_parent": ["number"],  # -> column _issues_number
         "endpoint": {"path": issues_path + "/{resources.issues.number}/comments",
                      "params": {"per_page": per_page}, "paginator": "header_link",
                      "response_actions": [{"status_code": 404, "action": "ignore"}]}},
    ]


def drop_dataset(database_url: str, dataset: str) -> None:
    """Start from nothing: drop dlt's schema (its tables and its state) if a run left one."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(dataset)))
    connection.close()


def dlt_fanout(database_url: str, base_url: str, per_page: int = 30, parallelized: bool = False,
               dataset: str = DATASET) -> tuple[float, int, str]:
    """Seconds for dlt ``rest_api`` to load the fixture's issues and every issue's comments (a
    child resource) into the PostgreSQL schema ``dataset`` (dropped first), the number of
    comments it loaded, and dlt's version. Extract, normalise and load are all timed."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt  # only in .venv-bench: dlt is what we compare with, not a dependency
    from dlt.sources.rest_api import rest_api_source

    drop_dataset(database_url, dataset)
    with tempfile.TemporaryDirectory(prefix="bench-dlt-fanout-") as workdir:
        pipeline = dlt.pipeline(pipeline_name=dataset, pipelines_dir=workdir,
                                destination=dlt.destinations.postgres(credentials=dlt_credentials(database_url)),
                                dataset_name=dataset, progress=None)
        source = rest_api_source({"client": {"base_url": base_url + "/"},
                                  "resources": fanout_resources(per_page, parallelized)})  # type: ignore[typeddict-item]
        started = time.perf_counter()
        info = pipeline.run(source)
        elapsed = time.perf_counter() - started
        info.raise_on_failed_jobs()
        with pipeline.sql_client() as client:
            comments = client.execute_sql("SELECT count(*) FROM issue_comments")[0][0]
    return elapsed, comments, dlt.__version__


def loaded_counts(database_url: str, dataset: str = DATASET) -> dict[str, int]:
    """Rows per table dlt left in ``dataset`` (issues, issue_comments, issues__labels, issues__tags)."""
    tables = ("issues", "issue_comments", "issues__labels", "issues__tags")
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(dataset, table)))
            counts[table] = cursor.fetchone()[0]
    connection.close()
    return counts


def expected_counts(issues: int, revision: int = 1) -> dict[str, int]:
    """The same rows computed from the fixture's data (its pure functions), not from dlt."""
    numbers = range(1, issues + 1)
    return {"issues": issues,
            "issue_comments": sum(len(github.comments_of(n, revision)) for n in numbers),
            "issues__labels": sum(len(github.labels_of(n, revision)) for n in numbers),
            "issues__tags": sum(len(github.tags_of(n, revision)) for n in numbers)}


def main(argv: list[str] | None = None) -> int:
    """Load a fixture with faults through dlt and compare every table's rows with the fixture's data."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout_peer", description=main.__doc__)
    parser.add_argument("database_url", nargs="?",
                        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ingest_bench"))
    parser.add_argument("--issues", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per comments page")
    parser.add_argument("--parallelized", action="store_true", help="dlt's parallelized child resource")
    parser.add_argument("--fault-share", type=float, default=0.1,
                        help="share of paths answering 500 once, and the same share 429 once")
    args = parser.parse_args(argv)
    config = FixtureApiConfig(issues=args.issues, latency=args.latency,
                              faults=FaultShares(error=args.fault_share, throttle=args.fault_share))
    server = FixtureApiServer(config).start()
    try:
        seconds, comments, version = dlt_fanout(args.database_url, server.url, parallelized=args.parallelized)
    finally:
        server.stop()
    loaded, expected = loaded_counts(args.database_url), expected_counts(args.issues)
    print(f"dlt {version}: {comments} comments of {args.issues} issues in {seconds:.2f}s; "
          f"loaded {loaded}, expected {expected}")
    return 0 if loaded == expected else 1


if __name__ == "__main__":
    sys.exit(main())
