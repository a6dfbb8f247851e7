"""Per-run column statistics: count, min, max and mean of the numeric columns of a dataset
that asks for them (``stats``), as rows of a job were loaded, and merged over a run's jobs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Stats = dict[str, dict[str, Any]]  # column -> {"count", "min", "max", "mean"}


def merge_stats(parts: Iterable[Mapping[str, Mapping[str, Any]] | None]) -> Stats:
    """One set of statistics from several jobs' (a backfill's windows, a run's retries): counts
    add up, min and max of all, means weighted by their counts. A column with no value has
    count 0 and null min, max and mean."""
    merged: Stats = {}
    for part in parts:
        for column, s in (part or {}).items():
            into = merged.setdefault(column, {"count": 0, "min": None, "max": None, "mean": None})
            count = int(s.get("count") or 0)
            if not count:
                continue
            total = (into["mean"] or 0.0) * into["count"] + float(s["mean"]) * count
            into["count"] += count
            into["min"] = s["min"] if into["min"] is None else min(into["min"], s["min"])
            into["max"] = s["max"] if into["max"] is None else max(into["max"], s["max"])
            into["mean"] = total / into["count"]
    for s in merged.values():
        if s["mean"] is not None:
            s["mean"] = round(s["mean"], 6)
    return merged
