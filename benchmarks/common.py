"""What the benchmark's parts share: the repository root, the worker classes, warming the mock's page
cache, and the harness's messages."""

from __future__ import annotations

from pathlib import Path

from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session

from . import runs
from .services import Bench

ROOT = Path(__file__).resolve().parent.parent
PLAIN_FORKING = "rq.worker.Worker"
INGEST_WORKER = "ingest_workers.runtime.worker.IngestWorker"  # forking too: what `ingest workers` and the demo run


def best_of_two(first, second) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    a1, b1 = first(), second()
    a2, b2 = first(), second()
    return min(a1, a2), min(b1, b2)


def warm(bench: Bench, jobs: int | None) -> None:
    """Ask the mock for every page the jobs will ask for, the way they ask (fills its page cache):
    ``jobs`` window jobs, or one plain job (no window) for None."""
    client = HttpClient(make_session(), timeout=(5, 60), policy=RetryPolicy())
    windows = runs.windows(bench.records, jobs) if jobs else [None]
    for window in windows:
        context = SourceContext(client, since=window.since, until=window.until) if window else SourceContext(client)
        for _ in make_source(bench.spec, context).stream():
            pass


def label(worker_class: str) -> str:
    return worker_class.rsplit(".", 1)[-1]


def say(line: str) -> None:
    print(f"[bench] {line}", flush=True)
