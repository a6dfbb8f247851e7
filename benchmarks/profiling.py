"""Where a worker's time goes: one job over the whole source, in a process of its own (this one
holds the benchmark's records, which would make every garbage collection slower), under cProfile.

    python -m benchmarks.profiling BENCH_JSON   (prints the profile as JSON)
"""

from __future__ import annotations

import cProfile
import dataclasses
import json
import os
import pstats
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ingest_workers.core.config import Settings
from ingest_workers.pipeline import run_fetch_job
from ingest_workers.runtime.resources import Resources, serving

from .services import Bench, reset_state, worker_environment


@dataclass(frozen=True)
class ProfileLine:
    function: str
    own_seconds: float
    total_seconds: float
    calls: int


@dataclass(frozen=True)
class Profile:
    seconds: float  # wall time without the profiler
    profiled_seconds: float
    records: int
    lines: list[ProfileLine]  # most own time first


def profile_job(bench: Bench) -> Profile:
    """:func:`profile_here` in a fresh Python process."""
    data = _in_fresh_process(bench, timed_only=False)
    return Profile(data["seconds"], data["profiled_seconds"], data["records"],
                   [ProfileLine(**line) for line in data["lines"]])


def time_job(bench: Bench) -> tuple[float, float]:
    """Seconds of one plain job over the whole source (no profiler), in a fresh Python process: wall
    time, and the CPU time of that process, all its threads (what a shared machine disturbs least)."""
    data = _in_fresh_process(bench, timed_only=True)
    return float(data["seconds"]), float(data["cpu_seconds"])


def _in_fresh_process(bench: Bench, timed_only: bool) -> dict:  # type: ignore[type-arg]
    settings = bench.settings
    arguments = {"redis_url": settings.redis_url, "database_url": settings.database_url,
                 "mock_url": bench.mock_url, "records": bench.records, "out": str(bench.out),
                 "fetch_concurrency": settings.fetch_concurrency, "record_path": settings.record_path,
                 "timed_only": timed_only}
    output = subprocess.run([sys.executable, "-m", "benchmarks.profiling", json.dumps(arguments)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output)


def profile_here(bench: Bench, top: int = 15) -> Profile:
    """Run the source as one job twice (once timed, once profiled) and list the costliest functions."""
    seconds = _run(bench, "bench-plain", profiler=None)
    profiler = cProfile.Profile()
    profiled = _run(bench, "bench-profiled", profiler)
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    lines = [ProfileLine(_name(func), tt, ct, nc) for func, (cc, nc, tt, ct, callers) in rows]
    return Profile(seconds, profiled, bench.records, lines)


def _run(bench: Bench, run_id: str, profiler: cProfile.Profile | None) -> float:
    reset_state(bench.settings)
    res = Resources(bench.settings, worker_environment(bench.mock_url))
    try:
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        with serving(res):  # as a worker serves its job (the values it reads are hidden from messages)
            counts = run_fetch_job(bench.spec, run_id, f"{run_id}-job", "bench", res)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        res.close()
    if counts.fetched != bench.records:
        raise SystemExit(f"profiled job fetched {counts.fetched} of {bench.records} records")
    return elapsed


def _name(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name  # a built-in, e.g. <method 'translate' of 'str' objects>
    parts = path.split(os.sep)
    for anchor in ("ingest_workers", "site-packages"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + (anchor == "site-packages"):]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line} {name}"


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    settings = Settings(redis_url=given["redis_url"], database_url=given["database_url"], queue="bench",
                        job_retries=0, fetch_concurrency=given["fetch_concurrency"], record_path=given["record_path"])
    bench = Bench(settings, given["mock_url"], given["records"], Path(given["out"]))
    if given["timed_only"]:
        cpu = time.process_time()
        wall = _run(bench, "bench-timed", profiler=None)
        print(json.dumps({"seconds": wall, "cpu_seconds": time.process_time() - cpu}))
    else:
        print(json.dumps(dataclasses.asdict(profile_here(bench))))
