"""The JSON documents of the console, one per page: ``/status/sources/NAME`` (a source's runs,
rejects, cursor, schedule and its latest run's fan-out progress) and ``/status/workers`` (workers
and queues). The HTML pages are rendered from exactly these documents, so every number a page
shows is in its document."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions
import redis

from ...core.models import SourceSpec
from ...core.schedules import next_run
from ..drift_history import source_switches
from ..status import waiting_child
from . import queries, rq_state
from .redaction import PayloadRedactor

RUN_DAYS = 7  # the window of a source page's runs
RUN_LIMIT = 30  # at most this many runs (the chart's bars)
REJECT_RUNS = 5  # the top reasons cover the newest runs
REJECT_REASONS = 5
REJECT_SAMPLES = 3
FAILED_PARENTS = 5  # the newest failed parents shown per child source


def source_document(conn: psycopg2.extensions.connection, name: str, spec: SourceSpec | None,
                    redactor: PayloadRedactor, now: datetime) -> dict[str, Any]:
    """Everything the page of source ``name`` shows (``spec``: its catalog entry, when the server has one)."""
    runs = _with_switches(conn, name, queries.source_runs(conn, name, RUN_DAYS, RUN_LIMIT))
    newest = [run.run_id for run in runs[:REJECT_RUNS]]
    reasons, samples = queries.reject_reasons(conn, name, newest, REJECT_REASONS, REJECT_SAMPLES)
    cursor = queries.source_cursor(conn, name)
    totals = {count: sum(run.counts[count] for run in runs) for count in queries.COUNT_NAMES}
    return {
        "generated_at": iso(now), "source": name, "window_days": RUN_DAYS,
        "catalog": _catalog(spec), "next_run": _next_run(spec, now),
        "cursor": {**cursor, "updated_at": iso(cursor["updated_at"])} if cursor else None,
        "runs": [_run(run, redactor) for run in runs], "totals": totals,
        "rejects": {"runs": newest, "reasons": [_reason(row, samples, redactor) for row in reasons]},
        "datasets": [{"name": spec.dataset if spec else None, "nested": False, "loaded": totals["loaded"],
                      "updated": totals["updated"], "deleted": totals["deleted"], "rejected": totals["rejected"]},
                     *_nested(conn, name, runs)],
        "children": _children(conn, name, spec, runs, redactor),
    }


def workers_document(client: redis.Redis, now: datetime) -> dict[str, Any]:
    """Every worker (host, pid, current job and since when, last heartbeat) and every queue (depths,
    the oldest waiting job's age, scheduled and deferred jobs with their times)."""
    workers = [{**worker, "birth": iso(worker["birth"]), "last_heartbeat": iso(worker["last_heartbeat"]),
                "current_job": _job(worker["current_job"])} for worker in rq_state.workers(client)]
    queues = [{**queue, "oldest_queued_at": iso(queue["oldest_queued_at"]),
               "scheduled_jobs": [_job(job) for job in queue["scheduled_jobs"]],
               "deferred_jobs": [_job(job) for job in queue["deferred_jobs"]]}
              for queue in rq_state.queues(client, now)]
    return {"generated_at": iso(now), "workers": workers, "queues": queues}


def _children(conn: psycopg2.extensions.connection, name: str, spec: SourceSpec | None,
              runs: list[queries.RunRow], redactor: PayloadRedactor) -> list[dict[str, Any]]:
    """The fan-out of the latest run: its child sources' progress (or this one's, when it is a child
    source), then the catalog's child sources that run gave no job, each with why. A child source
    without any run of its own is shown by its parent's latest run."""
    if not runs and spec is not None and spec.parent:
        latest = queries.source_runs(conn, spec.parent, RUN_DAYS, 1)
        return [_waiting(name, spec.parent, latest[0] if latest else None)]
    run = runs[0] if runs else None
    progress = queries.fan_out_progress(conn, name, run.run_id, FAILED_PARENTS) if run else []
    shown = {child.source for child in progress}
    found = [{"source": child.source, "run_id": run.run_id if run else None, "state": None,
              "parents": child.parents, "jobs": child.jobs, "loaded": child.loaded, "skipped": child.skipped,
              "failed_parents": [{"key": redactor.redact(f.key), "error": redactor.redact(f.error), "at": iso(f.at)}
                                 for f in child.failed_parents]}
             for child in progress]
    expected = [str(child["name"]) for child in spec.children] if spec else []
    return found + [_waiting(child, name, run) for child in expected if child not in shown]


def _waiting(child: str, parent: str, run: queries.RunRow | None) -> dict[str, Any]:
    """A child source with no job in its parent's latest ``run`` (None: the parent has not run)."""
    return {"source": child, "run_id": run.run_id if run else None,
            "state": waiting_child(parent, run.run_id if run else None, run.outcome if run else None),
            "parents": dict.fromkeys(queries.PARENT_STATES, 0), "jobs": dict.fromkeys(queries.JOB_STATES, 0),
            "loaded": 0, "skipped": 0, "failed_parents": []}


def _catalog(spec: SourceSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"kind": spec.kind, "dataset": spec.dataset, "queue": spec.queue,
            "interval_seconds": spec.interval_seconds, "schedule": spec.schedule, "cursor_field": spec.cursor_field}


def _next_run(spec: SourceSpec | None, now: datetime) -> str | None:
    """When ``ingest schedule`` enqueues the source next: the start of its next slot (of its interval
    or its cron ``schedule``, as the scheduler cuts them); None when it is not scheduled."""
    upcoming = None if spec is None else next_run(spec, now.timestamp())
    return None if upcoming is None else iso(datetime.fromtimestamp(upcoming, UTC))


def _with_switches(conn: psycopg2.extensions.connection, name: str,
                   runs: list[queries.RunRow]) -> list[queries.RunRow]:
    """``runs`` with what each one's replace switch did: its ``deleted`` counts the records flagged
    deleted and the rows the switch removed (as the run summary and ``ingest status`` count them)."""
    switches = source_switches(conn, name, [run.run_id for run in runs])
    return [dataclasses.replace(run, switch=switches[run.run_id],
                                counts={**run.counts, "deleted": run.counts["deleted"] + switches[run.run_id].deleted})
            if run.run_id in switches else run for run in runs]


def _nested(conn: psycopg2.extensions.connection, name: str, runs: list[queries.RunRow]) -> list[dict[str, Any]]:
    """The source's nested datasets with their items' counts over ``runs``, the rows its replace
    switches removed with their parents among their ``deleted`` (as in the run summary)."""
    counts = queries.nested_counts(conn, name, [run.run_id for run in runs])
    for run in runs:
        if run.switch is not None:
            counts.add_nested(run.switch.nested_deleted())
    return [{"name": dataset, "nested": True, **values} for dataset, values in sorted(counts.nested.items())]


def _run(run: queries.RunRow, redactor: PayloadRedactor) -> dict[str, Any]:
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    switch = run.switch
    return {"run_id": run.run_id, "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
            "seconds": None if seconds is None else round(max(seconds, 0.0), 3), "outcome": run.outcome,
            "jobs": run.jobs, **run.counts, "error": redactor.redact(run.error),
            # a replace source: its switch (replaced or refused), its part of deleted, the nested rows gone with it
            "replace": None if switch is None else {"outcome": switch.outcome, "switch": redactor.redact(switch.detail),
                                                    "deleted": switch.deleted, "nested": switch.nested}}


def _reason(row: queries.RejectRow, samples: list[queries.RejectSample], redactor: PayloadRedactor) -> dict[str, Any]:
    mine = [s for s in samples if (s.kind, s.stage) == (row.reason, row.stage)]
    return {"reason": redactor.redact(row.reason), "stage": row.stage, "count": row.count,
            "samples": [{"reason": redactor.redact(s.reason), "run_id": s.run_id, "job_id": s.job_id,
                         "rejected_at": iso(s.rejected_at), "payload": redactor.redact(s.payload)} for s in mine]}


def _job(line: rq_state.JobLine | None) -> dict[str, Any] | None:
    return None if line is None else {**dataclasses.asdict(line), "at": iso(line.at)}


def iso(moment: datetime | None) -> str | None:
    """``moment`` in ISO 8601 UTC to the second (a naive one is taken as UTC, as RQ stores them)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds")
