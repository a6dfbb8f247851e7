"""The fan-out outbox: the child work of a batch's parent records, written to PostgreSQL in the
batch's own transaction, and read back by the child jobs.

A parent job's batch inserts its parent records into ``fanout_parents`` (``ON CONFLICT DO
NOTHING``: a batch that runs again after a crash plans nothing twice), groups the new ones into
child jobs of ``parents_per_job`` parents, and lists those jobs in ``ingest_jobs`` (status
'enqueued', with their arguments), all in that transaction. After the commit the jobs go to Redis
(``runtime``); if that is lost, the list in ``ingest_jobs`` is where they are enqueued again from.

Child job ids are deterministic: ``{run_id}-{child}-{sha1 of the group's parent keys}[:12]``, so
planning the same group again names the same job, and its ``SET NX`` claim stops a second copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json, execute_values

from ..core.connections import postgres_errors

PENDING, DONE, SKIPPED, FAILED = "pending", "done", "skipped", "failed"


@dataclass(frozen=True)
class Parent:
    """One parent of a child source: its key (text) and its record as served (or a partition's values)."""

    key: str
    record: Any


@dataclass(frozen=True)
class ChildJob:
    """A child job planned in ``ingest_jobs``: enough to enqueue it."""

    job_id: str
    source: str
    queue: str
    args: list[Any]


@dataclass(frozen=True)
class ParentTally:
    """The parents of one child source in one run, by status."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0


def child_job_id(run_id: str, child: str, keys: Sequence[str]) -> str:
    """The id of the child job taking the parents ``keys`` (in order): the same group, the same id."""
    digest = hashlib.sha1("\x1e".join(keys).encode("utf-8")).hexdigest()[:12]
    return f"{run_id}-{child}-{digest}"


def parent_key(key: Sequence[str], values: Mapping[str, Any]) -> str:
    """A parent record's key in the outbox and in its child source's cursors (``parent_cursors``): the
    values of the parent dataset's ``key`` columns, each in one text form whether it comes from a
    checked record (a parent job's batch: ISO text for a timestamp, a JSON number) or from the stored
    row (a child source named alone: PostgreSQL's ``datetime``, ``Decimal``), so both ways share the
    parent's cursor."""
    return "\x1f".join(_key_text(values[column]) for column in key)


def _key_text(value: Any) -> str:
    if isinstance(value, datetime):  # as the timestamp column's check writes it: ISO 8601 in UTC
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (float, Decimal)):  # 5, 5.0 and Decimal('5.00') are one key; no exponent
        number = Decimal(str(value)) if isinstance(value, float) else value
        return str(int(number)) if number == number.to_integral_value() else format(number.normalize(), "f")
    return str(value)


def partition_key(values: dict[str, Any]) -> str:
    """A partition's key: its values as canonical JSON (sorted keys, no spaces)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def plan_children(cur: Any, run_id: str, child_spec: dict[str, Any], queue: str, parents: Sequence[Parent],
                  parent_job: str | None) -> list[ChildJob]:
    """On ``cur`` (the caller's open transaction): add ``parents`` of the child source ``child_spec``
    (a spec dict) to ``run_id``'s outbox, and plan a child job for each group of ``parents_per_job``
    of those not there yet. Returns the jobs planned now (none for parents already planned)."""
    child, per_job = child_spec["name"], max(1, int(child_spec.get("parents_per_job", 20)))
    unique = list({parent.key: parent for parent in parents}.values())
    if not unique:
        return []
    new_keys = _insert_new(cur, run_id, child, unique)
    new = [parent for parent in unique if parent.key in new_keys]
    jobs = []
    for start in range(0, len(new), per_job):
        group = new[start:start + per_job]
        job_id = child_job_id(run_id, child, [parent.key for parent in group])
        cur.execute("UPDATE fanout_parents SET job_id = %s, position = position_in_group.n "
                    "FROM unnest(%s::text[]) WITH ORDINALITY AS position_in_group(key, n) "
                    "WHERE run_id = %s AND child_source = %s AND parent_key = position_in_group.key",
                    (job_id, [parent.key for parent in group], run_id, child))
        jobs.append(ChildJob(job_id, child, queue, [child_spec, run_id, {"parent_job": parent_job}]))
    if jobs:
        execute_values(cur, "INSERT INTO ingest_jobs (job_id, run_id, source, status, attempts, queue, job_args, "
                            "parent_job) VALUES %s ON CONFLICT (job_id) DO NOTHING",
                       [(job.job_id, run_id, child, "enqueued", 0, queue, Json(job.args), parent_job) for job in jobs])
    return jobs


def _insert_new(cur: Any, run_id: str, child: str, parents: Sequence[Parent]) -> set[str]:
    """Insert ``parents`` (pending, not in a job yet); return the keys that were not there."""
    rows = execute_values(cur, "INSERT INTO fanout_parents (run_id, child_source, parent_key, job_id, position, "
                               "parent) VALUES %s ON CONFLICT DO NOTHING RETURNING parent_key",
                          [(run_id, child, parent.key, "", 0, Json(parent.record)) for parent in parents],
                          fetch=True)
    return {row[0] for row in rows}


def listed_children(conn: psycopg2.extensions.connection, parent_job: str) -> list[ChildJob]:
    """The child jobs ``parent_job`` planned that have not started (the relay's list: enqueueing one
    already in Redis does nothing, its claim stops it)."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT job_id, source, queue, job_args FROM ingest_jobs WHERE parent_job = %s "
                    "AND status = 'enqueued' ORDER BY job_id", (parent_job,))
        return [ChildJob(job_id, source, queue, args) for job_id, source, queue, args in cur.fetchall()]


def pending_parents(conn: psycopg2.extensions.connection, job_id: str) -> list[Parent]:
    """The parents of child job ``job_id`` not done yet, in their order (a job killed midway
    starts again at its first pending parent)."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT parent_key, parent FROM fanout_parents WHERE job_id = %s AND status = 'pending' "
                    "ORDER BY position", (job_id,))
        return [Parent(key, record) for key, record in cur.fetchall()]


def mark_parent(cur: Any, run_id: str, child: str, key: str, status: str, error: str | None = None) -> None:
    """On ``cur`` (the transaction of the parent's last child rows): the parent is ``status`` now."""
    cur.execute("UPDATE fanout_parents SET status = %s, error = %s, updated_at = now() "
                "WHERE run_id = %s AND child_source = %s AND parent_key = %s",
                (status, error[:2000] if error else None, run_id, child, key))


def parent_tallies(conn: psycopg2.extensions.connection, run_id: str) -> dict[str, ParentTally]:
    """Per child source of ``run_id``: its parents done, skipped, failed and still pending."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT child_source, count(*) FILTER (WHERE status = 'done'), "
                    "count(*) FILTER (WHERE status = 'skipped'), count(*) FILTER (WHERE status = 'failed'), "
                    "count(*) FILTER (WHERE status = 'pending') FROM fanout_parents WHERE run_id = %s "
                    "GROUP BY child_source", (run_id,))
        return {child: ParentTally(int(d), int(s), int(f), int(p)) for child, d, s, f, p in cur.fetchall()}
