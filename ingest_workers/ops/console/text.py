"""The console's documents as plain text, for ``ingest status --source NAME`` and
``ingest status --workers`` (the same documents the pages are rendered from)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_RUN_COLUMNS = ("run_id", "started_at", "seconds", "outcome", "fetched", "loaded", "updated", "deleted", "duplicate",
                "rejected")


def format_source(document: dict[str, Any]) -> str:
    """A source document: its facts, its runs as a table, its latest run's fan-out, its top reject
    reasons with one record each."""
    catalog = document.get("catalog") or {}
    cursor = document.get("cursor")
    lines = [f"source {document['source']}: dataset {catalog.get('dataset') or '-'}, "
             f"next run {document.get('next_run') or 'not scheduled'}",
             f"cursor: {cursor['field']} = {json.dumps(cursor['position'])} (run {cursor['run_id']})" if cursor
             else "cursor: none", ""]
    rows = [[_text(run.get(column)) for column in _RUN_COLUMNS] for run in document["runs"]]
    lines += _columns([[c.replace("_id", "").replace("_at", "") for c in _RUN_COLUMNS], *rows])
    if not rows:
        lines.append(f"no runs in the last {document['window_days']} days")
    lines += [f"{run['run_id']}: {run['replace']['switch']}" for run in document["runs"] if run.get("replace")]
    lines += _fan_out(document.get("children") or [])
    for reason in document["rejects"]["reasons"]:
        lines += ["", f"{reason['count']} x {reason['reason']} (stage {reason['stage']})"]
        lines += [f"  {sample['job_id']}: {json.dumps(sample['payload'], sort_keys=True)[:300]}"
                  for sample in reason["samples"][:1]]
    return "\n".join(lines)


def _fan_out(children: list[dict[str, Any]]) -> list[str]:
    """The document's ``children``: per child source of the latest run, its parents and child jobs
    by state and its newest failed parents, or why it has no job."""
    if not children:
        return []
    run_id = next((child["run_id"] for child in children if child.get("run_id")), None)
    lines = ["", f"fan-out of run {run_id}:" if run_id else "child sources:"]
    for child in children:
        if child.get("state"):
            lines.append(f"  {child['source']}: {child['state']}")
            continue
        parents, jobs = child["parents"], child["jobs"]
        lines.append(f"  {child['source']}: parents done {parents['done']} / {parents['total']}, failed "
                     f"{parents['failed']}, pending {parents['pending']}, requests skipped {child.get('skipped', 0)}; "
                     f"child jobs queued {jobs['queued']}, running {jobs['running']}, failed {jobs['failed']}; "
                     f"loaded {child['loaded']}")
        lines += [f"    failed parent {f['key']}: {f.get('error') or ''}".rstrip() for f in child["failed_parents"]]
    return lines


def format_workers(document: dict[str, Any]) -> str:
    """A workers document: one line per worker, then one per queue with its backlog."""
    rows = [["worker", "host", "pid", "state", "job", "source", "since", "heartbeat"]]
    for worker in document["workers"]:
        job = worker.get("current_job") or {}
        rows.append([_text(worker["name"]), _text(worker.get("hostname")), _text(worker.get("pid")),
                     _text(worker["state"]), _text(job.get("job_id")), _text(job.get("source")),
                     _text(job.get("at")), _text(worker.get("last_heartbeat"))])
    lines = _columns(rows) if document["workers"] else ["no live worker"]
    lines.append("")
    for queue in document["queues"]:
        age = queue.get("oldest_queued_seconds")
        lines.append(f"queue {queue['name']}: queued {queue['queued']}"
                     f"{'' if age is None else f' (oldest waiting {age:.0f} s)'}, started {queue['started']}, "
                     f"scheduled {queue['scheduled']}, deferred {queue['deferred']}, failed {queue['failed']}, "
                     f"workers {queue['workers']}")
        lines += [f"  scheduled {job['job_id']} ({job.get('source') or '-'}) at {job.get('at')}"
                  for job in queue["scheduled_jobs"]]
    if not document["queues"]:
        lines.append("no queues in Redis yet")
    return "\n".join(lines)


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]


def _text(value: object) -> str:
    return "-" if value is None else str(value)
