"""``ingest status``: how each source has been doing, from the job history in PostgreSQL
(``ingest_jobs``, written by the pipeline), plus queue depths and live workers from RQ."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions
import redis

from ..core.connections import postgres_errors
from ..core.models import Counts, SourceSpec
from ..core.schedules import next_run
from ..datasets.drift import new_field_lines
from .drift_history import run_drift, switched_deletions
from .history import UNFINISHED, JobHistory
from .queues import queue_depths, worker_counts
from .watch import health

_AGGREGATES = """
SELECT source,
       count(*) FILTER (WHERE status IN ('finished', 'partial', 'failed')),
       count(*) FILTER (WHERE status = 'finished'),
       coalesce(sum(loaded), 0),
       coalesce(sum(updated), 0),
       coalesce(sum(deleted), 0),
       coalesce(sum(parents), 0),
       coalesce(sum(skipped), 0)
FROM ingest_jobs WHERE started_at >= now() - %(hours)s * interval '1 hour' GROUP BY source"""

_LAST_RUNS = """
SELECT DISTINCT ON (source) source, run_id, status, started_at, finished_at
FROM ingest_jobs ORDER BY source, started_at DESC"""

# Items of nested datasets (issue_labels of source issues...), apart from the source's own records.
_NESTED = """
SELECT source, nested_counts FROM ingest_jobs
WHERE started_at >= now() - %(hours)s * interval '1 hour' AND nested_counts <> '{}'"""

_RECENT_FAILURES = """
SELECT source, job_id, finished_at, error FROM (
    SELECT source, job_id, finished_at, error,
           row_number() OVER (PARTITION BY source ORDER BY started_at DESC) AS newest
    FROM ingest_jobs
    WHERE status IN ('failed', 'partial') AND started_at >= now() - %(hours)s * interval '1 hour') AS failed
WHERE newest <= %(failures)s ORDER BY source, finished_at DESC"""


def source_status(conn: psycopg2.extensions.connection, sources: Iterable[str], hours: float = 24,
                  failures: int = 3) -> dict[str, dict[str, Any]]:
    """Per source (``sources`` and any other with history): last run, success rate and health
    over the last ``hours``, records loaded, updated and deleted (deleted: with the rows replace
    switches removed, ``replace.deleted``; a child source: parents processed, requests skipped),
    and the newest ``failures`` failures with their reasons.
    A ``partial`` job (pages lost) counts against health like a failed one."""
    params = {"hours": hours, "failures": failures}
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_AGGREGATES, params)
        aggregates = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(_LAST_RUNS)
        last_runs = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(_RECENT_FAILURES, params)
        recent = cur.fetchall()
        cur.execute(_NESTED, params)
        nested: dict[str, Counts] = {}
        for source, counts in cur.fetchall():
            nested.setdefault(source, Counts()).add_nested(counts)
    stats = JobHistory(conn).run_stats([row[0] for row in last_runs.values()])
    drift = run_drift(conn, [row[0] for row in last_runs.values()])
    switched = switched_deletions(conn, hours)

    report: dict[str, dict[str, Any]] = {}
    for source in sorted({*sources, *last_runs}):
        ended, succeeded, loaded, updated, deleted, parents, skipped = aggregates.get(source, (0,) * 7)
        run_id, status, started_at, finished_at = last_runs.get(source, (None, None, None, None))
        rate = succeeded / ended if ended else None
        report[source] = {
            "last_run": {"run_id": run_id, "status": status, "started_at": _iso(started_at),
                         "finished_at": _iso(finished_at),
                         "column_stats": stats.get((run_id, source), {}),
                         "new_fields": new_field_lines(drift.get((run_id, source), {}))} if run_id else None,
            "jobs": ended, "succeeded": succeeded, "success_rate": None if rate is None else round(rate, 4),
            "health": "no runs" if rate is None else health(rate), "loaded": int(loaded),
            # the records flagged deleted and the rows replace switches removed (no records: replace.deleted)
            "updated": int(updated), "deleted": int(deleted) + switched.get(source, 0),
            "parents": int(parents), "skipped": int(skipped),
            "recent_failures": [],
        }
        if source in nested:
            report[source]["nested"] = nested[source].nested
        if source in switched:
            report[source]["replace"] = {"deleted": switched[source]}
    for source, job_id, finished_at, error in recent:
        report[source]["recent_failures"].append({"job_id": job_id, "at": _iso(finished_at), "error": error})
    return report


def status_document(conn: psycopg2.extensions.connection, client: redis.Redis, sources: Iterable[str],
                    hours: float = 24, specs: Iterable[SourceSpec] = ()) -> dict[str, Any]:
    """Everything ``ingest status`` shows, as plain JSON-ready data; ``specs``: the catalog's sources,
    whose next scheduled run (``interval_seconds`` or ``schedule``) it shows as ``next_run``."""
    workers = worker_counts(client)
    queues: dict[str, dict[str, int]] = {}
    for queue, state, count in queue_depths(client):
        queues.setdefault(queue, {})[state] = count
    for queue, count in workers.items():
        queues.setdefault(queue, {})["workers"] = count
    now = datetime.now(UTC)
    report = source_status(conn, sources, hours)
    for spec in specs:
        upcoming = next_run(spec, now.timestamp())
        report.setdefault(spec.name, {}).update(
            next_run=None if upcoming is None else _iso(datetime.fromtimestamp(upcoming, UTC)))
    for spec in specs:
        if spec.parent:  # a child source runs through its parent's jobs: without any, say why
            child = report[spec.name]
            parent_run = (report.get(spec.parent) or {}).get("last_run") or {}
            child.update(parent=spec.parent, state=None if child.get("last_run") else waiting_child(
                spec.parent, parent_run.get("run_id"), parent_run.get("status")))
    return {"generated_at": now.isoformat(timespec="seconds"), "window_hours": hours, "sources": report,
            "queues": queues}


def waiting_child(parent: str, run_id: str | None, outcome: str | None) -> str:
    """Why a child source has no job in its parent's latest run ``run_id`` (None: the parent has not
    run), said plainly; ``outcome``: that run's (or its latest job's) status."""
    if run_id is None:
        return f"never run: its parent {parent} has not run yet"
    if outcome in ("running", *UNFINISHED):
        return f"no jobs yet: its parent {parent}'s run {run_id} is still running"
    return f"no jobs: its parent {parent}'s latest run {run_id} ended {outcome} without fanning out to it"


def format_status(document: dict[str, Any]) -> str:
    hours = f"{document['window_hours']:g}h"
    header = ("source", "last run", "outcome", f"success {hours}", "health", f"loaded {hours}", f"updated {hours}",
              f"deleted {hours}", "next run")
    rows: list[Sequence[str]] = [header]
    for name, s in document["sources"].items():
        last = s["last_run"] or {}
        rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.0%} of {s['jobs']}"
        rows.append((name, _short(last.get("started_at")), last.get("status") or "never", rate, s["health"],
                     str(s["loaded"]), str(s.get("updated", 0)), str(s.get("deleted", 0)), _short(s.get("next_run"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for name, s in document["sources"].items():
        if s.get("parents") or s.get("skipped"):  # a child source (fan-out), or one whose on_status skipped
            lines.append(f"{name}: parents processed {s.get('parents', 0)}, requests skipped {s.get('skipped', 0)} "
                         f"in {hours}")
    lines += [f"{name}: child source of {s['parent']}: {s['state']}" for name, s in document["sources"].items()
              if s.get("state")]
    lines += [f"{name}: nested {dataset} {hours}: loaded {n['loaded']}, updated {n['updated']}, "
              f"deleted {n['deleted']}, rejected {n['rejected']}" for name, s in document["sources"].items()
              for dataset, n in s.get("nested", {}).items()]
    drifting = [(name, line) for name, s in document["sources"].items() for line in (s["last_run"] or {}).get(
        "new_fields", [])]
    if drifting:
        lines += ["", "fields no column reads (last run: a column could be declared for them):"]
        lines += [f"  {name}: {line}" for name, line in drifting]
    failures = [(name, f) for name, s in document["sources"].items() for f in s["recent_failures"]]
    if failures:
        lines += ["", "recent failures:"]
        table = [(name, _short(f["at"]), f"{f['job_id']}:", f["error"] or "") for name, f in failures]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        lines += ["  " + "  ".join([*(v.ljust(w) for v, w in zip(row, widths)), row[3]]).rstrip() for row in table]
    lines.append("")
    for queue, states in sorted(document["queues"].items()):
        counts = ", ".join(f"{state} {count}" for state, count in states.items() if state != "workers")
        lines.append(f"queue {queue}: {counts}; live workers {states.get('workers', 0)}")
    if not document["queues"]:
        lines.append("no queues in Redis yet")
    return "\n".join(lines)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def _short(iso: str | None) -> str:
    return iso.replace("T", " ").replace("+00:00", "Z") if iso else "-"
