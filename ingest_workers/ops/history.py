"""The history of fetch jobs in PostgreSQL (``ingest_jobs``): written by the pipeline,
read by summaries. PostgreSQL, not Redis, so it survives a Redis restart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json, execute_values

from ..core.connections import postgres_errors
from ..core.errors import ConfigError
from ..core.models import COUNT_NAMES, Counts
from ..datasets.drift import new_field_lines
from ..datasets.stats import Stats, merge_stats
from ..load.outbox import ParentTally, parent_tallies
from .drift_history import SwitchDone, run_drift, run_switches

ENDED = ("finished", "partial", "failed")  # a job in one of these will not run again
# A job that will run again (RQ holds it): its source's circuit was open, or a transient error will be retried.
WAITING = ("deferred", "retrying")
UNFINISHED = ("enqueued", "started", *WAITING)


@dataclass(frozen=True)
class PlannedJob:
    """A job of a run's list, as the producer wrote it before enqueueing: enough to enqueue it again."""

    job_id: str
    source: str
    queue: str
    args: list[Any]  # fetch_source's arguments: [spec, run_id] or [spec, run_id, [since, until]]


@dataclass(frozen=True)
class SourceSummary:
    source: str
    jobs: int
    finished: int
    failed: int
    counts: Counts
    seconds: float
    errors: tuple[str, ...]
    partial: int = 0  # jobs that ended with pages they could not read
    column_stats: Stats = field(default_factory=dict)  # merged over the source's jobs of the run
    new_fields: tuple[str, ...] = ()  # the fields no column reads: "new field 'x' in 194 of 194 records"
    switch: SwitchDone | None = None  # a replace source: what its switch said, and the rows it removed
    parents: ParentTally | None = None  # a child source (fan-out): its parents by status
    skipped: int = 0  # requests answered with a status its on_status skips (not part of the counts' identity)

    @property
    def deleted(self) -> int:
        """The rows the run deleted: those its records flagged (``counts.deleted``, part of the records'
        identity) and those its replace switch removed (rows the run no longer served: no records)."""
        return self.counts.deleted + (self.switch.deleted if self.switch is not None else 0)


class JobHistory:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn

    def planned(self, run_id: str, jobs: Sequence[PlannedJob]) -> None:
        """Write ``jobs`` to the list of ``run_id`` before they go to Redis; a job already listed
        (enqueued again, or already run) is left as it is."""
        if not jobs:
            return
        try:
            with postgres_errors(), self._conn, self._conn.cursor() as cur:
                execute_values(cur, "INSERT INTO ingest_jobs (job_id, run_id, source, status, attempts, queue, "
                                    "job_args) VALUES %s ON CONFLICT (job_id) DO NOTHING",
                               [(job.job_id, run_id, job.source, "enqueued", 0, job.queue, Json(job.args))
                                for job in jobs])
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn):
            raise ConfigError("the database has no run job list (ingest_jobs.job_args): its schema is older "
                              "than this version; run `ingest db migrate`") from None

    def unfinished(self, run_id: str) -> list[PlannedJob]:
        """The listed jobs of ``run_id`` that have not ended (not started yet, started and never
        recorded an end, or waiting to run again: :data:`UNFINISHED`), in the order they were planned."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT job_id, source, queue, job_args FROM ingest_jobs WHERE run_id = %s "
                        "AND status = ANY(%s) AND job_args IS NOT NULL ORDER BY job_id", (run_id, list(UNFINISHED)))
            return [PlannedJob(job_id, source, queue, args) for job_id, source, queue, args in cur.fetchall()]

    def job_ids(self, run_id: str) -> list[str]:
        """Every job listed for ``run_id`` so far, child jobs its jobs fanned out included."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT job_id FROM ingest_jobs WHERE run_id = %s ORDER BY job_id", (run_id,))
            return [row[0] for row in cur.fetchall()]

    def fan_out_in_flight(self, run_id: str, source: str, job_id: str) -> bool:
        """Whether a job of ``run_id`` fanned out from ``job_id`` (a child job, a grandchild, ...), or
        planned for ``source`` without one (its partitions', its stored parents'), has not ended."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("WITH RECURSIVE tree AS (SELECT job_id, status FROM ingest_jobs WHERE run_id = %(run)s "
                        "AND job_id <> %(job)s AND (parent_job = %(job)s OR (source = %(source)s AND parent_job IS "
                        "NULL)) UNION SELECT j.job_id, j.status FROM ingest_jobs j JOIN tree t ON j.parent_job = "
                        "t.job_id) SELECT EXISTS (SELECT 1 FROM tree WHERE status = ANY(%(unfinished)s))",
                        {"run": run_id, "job": job_id, "source": source, "unfinished": list(UNFINISHED)})
            return bool(cur.fetchone()[0])

    def unlist(self, job_ids: Sequence[str]) -> None:
        """Take jobs cancelled before they started off their run's list (nothing is to enqueue them again)."""
        self._write("DELETE FROM ingest_jobs WHERE job_id = ANY(%s) AND status = 'enqueued'", (list(job_ids),))

    def cancelled(self, job_id: str, reason: str) -> None:
        """Mark ``job_id`` failed with ``reason`` if it never started or was waiting to run again (its
        run stopped it: nothing will run it now)."""
        self._write("UPDATE ingest_jobs SET status = 'failed', error = %s, finished_at = now() "
                    "WHERE job_id = %s AND status = ANY(%s)", (reason[:2000], job_id, ["enqueued", *WAITING]))

    def started(self, job_id: str, run_id: str, source: str) -> None:
        """Record an attempt of ``job_id`` (a retry of the same job counts attempts)."""
        self._write("INSERT INTO ingest_jobs (job_id, run_id, source, status) VALUES (%s, %s, %s, 'started') "
                    "ON CONFLICT (job_id) DO UPDATE SET status = 'started', attempts = ingest_jobs.attempts + 1, "
                    "started_at = now(), finished_at = NULL, error = NULL",
                    (job_id, run_id, source))

    def finished(self, job_id: str, counts: Counts, continued: bool = False) -> None:
        self.ended(job_id, "finished", counts, None, continued)

    def partial(self, job_id: str, counts: Counts, reason: str, continued: bool = False) -> None:
        """The attempt ended, but with pages it could not read (``reason`` names them)."""
        self.ended(job_id, "partial", counts, reason, continued)

    def failed(self, job_id: str, counts: Counts, error: str, continued: bool = False) -> None:
        self.ended(job_id, "failed", counts, error, continued)

    def ended(self, job_id: str, status: str, counts: Counts, error: str | None, continued: bool = False) -> None:
        """Record one attempt's end (``status``: one of :data:`ENDED` or :data:`WAITING`): its counts
        appended to ``attempt_counts``, and the job's outcome in its columns: this attempt's counts,
        plus the job's earlier ones when the attempt ``continued`` where they left off (it resumed at a
        saved page, so it did not read their records again); fetched = rejected + duplicate + loaded
        + updated + deleted holds for both."""
        if status not in (*ENDED, *WAITING):
            raise ValueError(f"not a status of an ended attempt: {status!r}")
        base = {name: sql.SQL("{} + ").format(sql.Identifier(name)) if continued else sql.SQL("")
                for name in (*COUNT_NAMES, "skipped")}
        statement = sql.SQL(
            "UPDATE ingest_jobs SET status = %(status)s, fetched = {fetched}%(fetched)s, "
            "skipped = {skipped}%(skipped)s, "
            "rejected = {rejected}%(rejected)s, duplicate = {duplicate}%(duplicate)s, "
            "loaded = {loaded}%(loaded)s, updated = {updated}%(updated)s, deleted = {deleted}%(deleted)s, "
            "error = %(error)s, finished_at = now(), "
            "attempt_counts = attempt_counts || jsonb_build_array(jsonb_build_object("
            "'attempt', attempts, 'status', %(status)s::text, 'fetched', %(fetched)s::bigint, "
            "'rejected', %(rejected)s::bigint, 'duplicate', %(duplicate)s::bigint, "
            "'loaded', %(loaded)s::bigint, 'updated', %(updated)s::bigint, 'deleted', %(deleted)s::bigint)) "
            "WHERE job_id = %(job)s").format(**base)
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, {"status": status, **counts.to_dict(), "skipped": counts.skipped,
                                    "error": error[:2000] if error else None,
                                    "job": job_id})
            if counts.nested:
                self._record_nested(cur, job_id, counts, continued)

    @staticmethod
    def _record_nested(cur: Any, job_id: str, counts: Counts, continued: bool) -> None:
        """The job's nested datasets' item counts (``nested_counts``): this attempt's, plus the earlier
        ones when it ``continued`` where they left off (as the job's other counts)."""
        total = Counts()
        if continued:
            cur.execute("SELECT nested_counts FROM ingest_jobs WHERE job_id = %s FOR UPDATE", (job_id,))
            found = cur.fetchone()
            total.add_nested(found[0] if found else {})
        total.add_nested(counts.nested)
        cur.execute("UPDATE ingest_jobs SET nested_counts = %s WHERE job_id = %s", (Json(total.nested), job_id))

    def abandoned(self, job_id: str, source: str, table: str, reason: str) -> None:
        """Mark ``job_id`` failed with ``reason`` if its process was stopped while it ran (it could
        not record its end), with the counts of what the attempt committed: rows in ``table`` and
        rejections of this job beyond those of its earlier attempts."""
        statement = sql.SQL(
            "WITH committed AS (SELECT (SELECT count(*) FROM {table} WHERE source = %(source)s AND job_id = %(job)s) "
            "AS loaded, (SELECT count(*) FROM rejected_records WHERE source = %(source)s AND job_id = %(job)s) "
            "AS rejected), attempt AS (SELECT greatest(c.loaded - j.loaded, 0) AS loaded, "
            "greatest(c.rejected - j.rejected, 0) AS rejected FROM committed c, ingest_jobs j "
            "WHERE j.job_id = %(job)s) "
            "UPDATE ingest_jobs SET status = 'failed', error = %(reason)s, finished_at = now(), "
            "loaded = ingest_jobs.loaded + a.loaded, rejected = ingest_jobs.rejected + a.rejected, "
            "fetched = ingest_jobs.fetched + a.loaded + a.rejected, "
            "attempt_counts = attempt_counts || jsonb_build_array(jsonb_build_object('attempt', attempts, "
            "'status', 'failed', 'fetched', a.loaded + a.rejected, 'rejected', a.rejected, 'duplicate', 0, "
            "'loaded', a.loaded, 'updated', 0, 'deleted', 0)) "
            "FROM attempt a WHERE job_id = %(job)s AND status = 'started'").format(table=sql.Identifier(table))
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, {"reason": reason[:2000], "source": source, "job": job_id})

    def record_stats(self, job_id: str, table: str, source: str, run_id: str, columns: Sequence[str]) -> None:
        """Store count, min, max and mean of ``columns`` over the rows of ``table`` this job loaded
        (all its attempts': they carry its job id), computed by PostgreSQL."""
        if not columns:
            return
        parts = sql.SQL(", ").join(
            sql.SQL("{name}, jsonb_build_object('count', count({c}), 'min', min({c}), 'max', max({c}), "
                    "'mean', avg({c}))").format(name=sql.Literal(column), c=sql.Identifier(column))
            for column in columns)
        statement = sql.SQL(
            "UPDATE ingest_jobs SET column_stats = (SELECT jsonb_build_object({parts}) FROM {table} "
            "WHERE run_id = %(run)s AND job_id = %(job)s AND source = %(source)s) WHERE job_id = %(job)s"
        ).format(parts=parts, table=sql.Identifier(table))
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, {"run": run_id, "job": job_id, "source": source})

    def run_stats(self, run_ids: Sequence[str]) -> dict[tuple[str, str], Stats]:
        """The column statistics of each (run, source) among ``run_ids``, merged over its jobs."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT run_id, source, column_stats FROM ingest_jobs "
                        "WHERE run_id = ANY(%s) AND column_stats IS NOT NULL", (list(run_ids),))
            rows: list[tuple[str, str, Any]] = cur.fetchall()
        parts: dict[tuple[str, str], list[Any]] = {}
        for run_id, source, stats in rows:
            parts.setdefault((run_id, source), []).append(stats)
        return {key: merge_stats(values) for key, values in parts.items()}

    def attempts(self, job_ids: list[str]) -> dict[str, int]:
        """How many times each of ``job_ids`` started (jobs never started are absent)."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT job_id, attempts FROM ingest_jobs WHERE job_id = ANY(%s)", (list(job_ids),))
            return {job_id: int(attempts) for job_id, attempts in cur.fetchall()}

    def summarise(self, run_id: str) -> list[SourceSummary]:
        """Per source: jobs, their counts and errors, and the wall time from first start to last finish."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE status = 'finished'), "
                "count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'partial'), "
                "sum(fetched), sum(rejected), sum(duplicate), "
                "sum(loaded), sum(updated), sum(deleted), extract(epoch FROM max(finished_at) - min(started_at)), "
                "array_remove(array_agg(DISTINCT error), NULL), sum(skipped) "
                "FROM ingest_jobs WHERE run_id = %s GROUP BY source ORDER BY source", (run_id,))
            rows = cur.fetchall()
        stats, drift = self.run_stats([run_id]), run_drift(self._conn, [run_id])
        nested, switches = self.run_nested_counts(run_id), run_switches(self._conn, run_id)
        for source, done in switches.items():  # a nested dataset's rows the switch removed with their parents
            with_switch = Counts(nested=nested.get(source, {}))
            with_switch.add_nested(done.nested_deleted())
            nested[source] = with_switch.nested
        parents = parent_tallies(self._conn, run_id)
        return [SourceSummary(source, jobs, finished, failed,
                              Counts(int(f), int(r), int(d), int(lo), int(up), int(de), nested=nested.get(source, {})),
                              float(seconds or 0.0), tuple(errors), partial, stats.get((run_id, source), {}),
                              tuple(new_field_lines(drift.get((run_id, source), {}))), switches.get(source),
                              parents.get(source), int(skipped or 0))
                for source, jobs, finished, failed, partial, f, r, d, lo, up, de, seconds, errors, skipped in rows]

    def run_nested_counts(self, run_id: str) -> dict[str, dict[str, dict[str, int]]]:
        """Per source of the run: its nested datasets' item counts, summed over its jobs."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT source, nested_counts FROM ingest_jobs WHERE run_id = %s AND nested_counts <> '{}'",
                        (run_id,))
            rows: list[tuple[str, Any]] = cur.fetchall()
        totals: dict[str, Counts] = {}
        for source, nested in rows:
            totals.setdefault(source, Counts()).add_nested(nested)
        return {source: counts.nested for source, counts in totals.items()}

    def _write(self, statement: str, params: tuple[object, ...]) -> None:
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute(statement, params)
