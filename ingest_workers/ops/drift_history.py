"""Where the drift of each job is kept (``ingest_jobs.drift``: the fields no column reads, see
:mod:`ingest_workers.datasets.drift`) and read back per source and run; and what a run's replace
switches did (``replace_switches``), for its summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json

from ..core.connections import postgres_errors
from ..datasets.drift import merge_drift


def record_drift(conn: psycopg2.extensions.connection, job_id: str, drift: dict[str, Any]) -> None:
    """Store what the job's last attempt counted."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("UPDATE ingest_jobs SET drift = %s WHERE job_id = %s", (Json(drift), job_id))


def run_drift(conn: psycopg2.extensions.connection, run_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The drift of each (run, source) among ``run_ids``, over its jobs."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, source, drift FROM ingest_jobs WHERE run_id = ANY(%s) AND drift IS NOT NULL",
                    (list(run_ids),))
        rows: list[tuple[str, str, Any]] = cur.fetchall()
    parts: dict[tuple[str, str], list[Any]] = {}
    for run_id, source, drift in rows:
        parts.setdefault((run_id, source), []).append(drift)
    return {key: merge_drift(values) for key, values in parts.items()}


def run_switches(conn: psycopg2.extensions.connection, run_id: str) -> dict[str, tuple[str, int]]:
    """Per replace source of ``run_id``: what its switch said (replaced, or refused and why) and the
    rows gone since the previous complete run."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT source, detail, deleted FROM replace_switches WHERE run_id = %s", (run_id,))
        return {source: (detail, int(deleted)) for source, detail, deleted in cur.fetchall()}
