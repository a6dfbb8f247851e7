"""Where a worker's time goes: one job over the whole source, in this process, under cProfile."""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from dataclasses import dataclass

from ingest_workers.pipeline import run_fetch_job
from ingest_workers.resources import Resources

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


def profile_job(bench: Bench, top: int = 15) -> Profile:
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
