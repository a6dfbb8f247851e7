"""Every SQL statement the console runs, in one module: the run history of a source
(``ingest_jobs``, grouped by run, and its nested datasets' items), its rejected records
(``rejected_records``), its cursor (``source_cursors``) and the fan-out progress of a run
(``fanout_parents`` and the child jobs in ``ingest_jobs``). When the history's columns change,
this is the module to adapt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2.extensions

from ...core.connections import postgres_errors
from ...core.models import Counts
from ..drift_history import SwitchDone
from ..history import UNFINISHED

COUNT_NAMES = ("fetched", "loaded", "updated", "deleted", "rejected", "duplicate")

# One row per run of the source: its jobs' counts summed, its span, and its outcome (the worst of its
# jobs': a job not ended yet, enqueued, started or waiting to run again (deferred, retrying), makes
# the run "running").
_RUNS = """
SELECT run_id, min(started_at), max(finished_at), count(*),
       bool_or(status = ANY(%(unfinished)s)), bool_or(status = 'failed'),
       bool_or(status = 'partial'),
       sum(fetched), sum(loaded), sum(updated), sum(deleted), sum(rejected), sum(duplicate),
       (array_agg(error ORDER BY started_at DESC) FILTER (WHERE error IS NOT NULL))[1]
FROM ingest_jobs WHERE source = %(source)s AND started_at >= now() - %(days)s * interval '1 day'
GROUP BY run_id ORDER BY min(started_at) DESC LIMIT %(limit)s"""

# Reasons differ by the values they quote ("price: -2 is below the minimum 0"): they are grouped with
# their numbers and quoted texts masked ("price: # is below the minimum #"), each sample keeping its own.
_MASKED = "regexp_replace(regexp_replace(reason, '-?[0-9]+([.][0-9]+)?', '#', 'g'), '''[^'']*''', '''...''', 'g')"

_REASONS = f"""
SELECT {_MASKED} AS kind, stage, count(*) FROM rejected_records
WHERE source = %(source)s AND run_id = ANY(%(runs)s)
GROUP BY kind, stage ORDER BY count(*) DESC, kind LIMIT %(reasons)s"""

# A few records of each kind of reason, newest first.
_SAMPLES = f"""
SELECT kind, stage, reason, run_id, job_id, rejected_at, payload FROM (
    SELECT {_MASKED} AS kind, stage, reason, run_id, job_id, rejected_at, payload,
           row_number() OVER (PARTITION BY {_MASKED}, stage ORDER BY rejected_at DESC, id DESC) AS newest
    FROM rejected_records WHERE source = %(source)s AND run_id = ANY(%(runs)s)) AS numbered
WHERE newest <= %(samples)s ORDER BY rejected_at DESC"""

# The child sources of a run's fan-out seen from ``source``: those whose jobs a job of ``source``
# fanned out in that run, and ``source`` itself when it is a child source of the run.
_CHILDREN = """
SELECT DISTINCT child.source FROM ingest_jobs AS child JOIN ingest_jobs AS parent ON parent.job_id = child.parent_job
WHERE child.run_id = %(run)s AND parent.source = %(source)s
UNION SELECT child_source FROM fanout_parents WHERE run_id = %(run)s AND child_source = %(source)s
ORDER BY 1"""

_PARENTS = """
SELECT child_source, count(*), count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'skipped'),
       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'pending')
FROM fanout_parents WHERE run_id = %(run)s AND child_source = ANY(%(children)s) GROUP BY child_source"""

_CHILD_JOBS = """
SELECT source, count(*) FILTER (WHERE status = 'enqueued'), count(*) FILTER (WHERE status = 'started'),
       count(*) FILTER (WHERE status IN ('failed', 'partial')), coalesce(sum(loaded), 0), coalesce(sum(skipped), 0)
FROM ingest_jobs WHERE run_id = %(run)s AND source = ANY(%(children)s) GROUP BY source"""

# A few failed parents of each child source, newest first.
_FAILED_PARENTS = """
SELECT child_source, parent_key, error, updated_at FROM (
    SELECT child_source, parent_key, error, updated_at,
           row_number() OVER (PARTITION BY child_source ORDER BY updated_at DESC, parent_key) AS newest
    FROM fanout_parents WHERE run_id = %(run)s AND child_source = ANY(%(children)s) AND status = 'failed') AS numbered
WHERE newest <= %(failed)s ORDER BY child_source, updated_at DESC, parent_key"""

# The items of the source's nested datasets (its records' lists), as its jobs counted them.
_NESTED = """
SELECT nested_counts FROM ingest_jobs WHERE source = %(source)s AND run_id = ANY(%(runs)s) AND nested_counts <> '{}'"""

_CURSOR = "SELECT field, position, run_id, job_id, updated_at FROM source_cursors WHERE source = %s"


@dataclass(frozen=True)
class RunRow:
    """One run of a source, its jobs taken together."""

    run_id: str
    started_at: datetime | None
    finished_at: datetime | None  # the last job's end (None while none has ended)
    jobs: int
    outcome: str  # running | failed | partial | finished
    counts: dict[str, int]
    error: str | None  # the newest error of its jobs
    switch: SwitchDone | None = None  # a replace source: what the run's switch did (its counts include its deleted)


@dataclass(frozen=True)
class RejectRow:
    reason: str  # with its numbers and quoted texts masked: the records of one kind of reason
    stage: str
    count: int


@dataclass(frozen=True)
class RejectSample:
    kind: str  # the masked reason (a RejectRow's)
    stage: str
    reason: str  # as recorded
    run_id: str
    job_id: str
    rejected_at: datetime
    payload: Any  # the record as served (not redacted yet)


def source_runs(conn: psycopg2.extensions.connection, source: str, days: float, limit: int) -> list[RunRow]:
    """The newest ``limit`` runs of ``source`` started in the last ``days``, newest first."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_RUNS, {"source": source, "days": days, "limit": limit, "unfinished": list(UNFINISHED)})
        rows = cur.fetchall()
    return [RunRow(run_id, started, finished, int(jobs), _outcome(running, failed, partial),
                   dict(zip(COUNT_NAMES, (int(value or 0) for value in counts))), error)
            for run_id, started, finished, jobs, running, failed, partial, *counts, error in rows]


def _outcome(running: bool, failed: bool, partial: bool) -> str:
    return "running" if running else "failed" if failed else "partial" if partial else "finished"


def reject_reasons(conn: psycopg2.extensions.connection, source: str, run_ids: list[str], reasons: int,
                   samples: int) -> tuple[list[RejectRow], list[RejectSample]]:
    """The ``reasons`` commonest reasons ``source``'s records were rejected for in ``run_ids`` (their
    numbers and quoted texts masked), and up to ``samples`` records of each (a record rejected again
    in a later run is stored once, by its first run)."""
    params = {"source": source, "runs": run_ids, "reasons": reasons, "samples": samples}
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_REASONS, params)
        top = [RejectRow(reason, stage, int(count)) for reason, stage, count in cur.fetchall()]
        cur.execute(_SAMPLES, params)
        found = [RejectSample(*row) for row in cur.fetchall()]
    return top, found


def nested_counts(conn: psycopg2.extensions.connection, source: str, run_ids: list[str]) -> Counts:
    """The item counts of ``source``'s nested datasets in ``run_ids`` (``Counts.nested``), summed over its jobs."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_NESTED, {"source": source, "runs": run_ids})
        rows = cur.fetchall()
    counts = Counts()
    for (nested,) in rows:
        counts.add_nested(nested)
    return counts


def source_cursor(conn: psycopg2.extensions.connection, source: str) -> dict[str, Any] | None:
    """The high-water mark of ``source`` (field, position, the run and job that set it, when), or None."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_CURSOR, (source,))
        row = cur.fetchone()
    if row is None:
        return None
    field, position, run_id, job_id, updated_at = row
    return {"field": field, "position": position, "run_id": run_id, "job_id": job_id, "updated_at": updated_at}


@dataclass(frozen=True)
class FailedParent:
    key: str  # the parent's natural key (from the API: escape it)
    error: str | None
    at: datetime


@dataclass(frozen=True)
class ChildProgress:
    """One child source's share of a run's fan-out: its parents by status and its jobs by state."""

    source: str
    parents: dict[str, int]  # total, done, skipped, failed, pending
    jobs: dict[str, int]  # queued (enqueued), running (started), failed (failed or partial)
    loaded: int  # records its jobs of the run loaded
    skipped: int  # requests its jobs skipped (its ``on_status``: a deleted parent's 404); those parents are done
    failed_parents: list[FailedParent]  # the newest few


PARENT_STATES = ("total", "done", "skipped", "failed", "pending")
JOB_STATES = ("queued", "running", "failed")


def fan_out_progress(conn: psycopg2.extensions.connection, source: str, run_id: str,
                     failed: int) -> list[ChildProgress]:
    """The child sources of ``run_id``'s fan-out seen from ``source`` (its children, or itself when it
    is one), each with its parents done / total, its child jobs by state and up to ``failed`` of its
    failed parents, newest first. Empty when the run fanned nothing out."""
    params: dict[str, Any] = {"source": source, "run": run_id, "failed": failed}
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(_CHILDREN, params)
        params["children"] = [row[0] for row in cur.fetchall()]
        if not params["children"]:
            return []
        cur.execute(_PARENTS, params)
        parents = {row[0]: dict(zip(PARENT_STATES, map(int, row[1:]))) for row in cur.fetchall()}
        cur.execute(_CHILD_JOBS, params)
        jobs = {row[0]: [int(value) for value in row[1:]] for row in cur.fetchall()}
        cur.execute(_FAILED_PARENTS, params)
        failures = cur.fetchall()
    return [ChildProgress(child, parents.get(child, dict.fromkeys(PARENT_STATES, 0)),
                          dict(zip(JOB_STATES, jobs.get(child, [0] * 5)[:3])), *jobs.get(child, [0] * 5)[3:],
                          [FailedParent(key, error, at) for name, key, error, at in failures if name == child])
            for child in params["children"]]
