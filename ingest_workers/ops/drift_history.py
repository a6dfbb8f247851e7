"""Where the drift of each job is kept (``ingest_jobs.drift``: the fields no column reads, see
:mod:`ingest_workers.datasets.drift`) and read back per source and run; and what a run's replace
switches did (``replace_switches``), for its summary and for the runs of a source's console page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

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


class SwitchDone(NamedTuple):
    """What a replace source's switch in a run said (replaced, or refused and why), the rows it
    removed (gone since the previous complete run), and the rows each nested dataset lost with them."""

    detail: str
    deleted: int
    nested: dict[str, int]
    outcome: str  # "replaced", or "refused": a job of the source in the run did not finish, nothing replaced

    def nested_deleted(self) -> dict[str, dict[str, int]]:
        """The nested rows it removed with their parents, as their datasets' ``deleted`` (``Counts.add_nested``)."""
        return {name: {"deleted": gone} for name, gone in self.nested.items()}


def run_switches(conn: psycopg2.extensions.connection, run_id: str) -> dict[str, SwitchDone]:
    """Per replace source of ``run_id``: what its switch did."""
    return {source: done for (_, source), done in _switches(conn, [run_id], None).items()}


def source_switches(conn: psycopg2.extensions.connection, source: str,
                    run_ids: Sequence[str]) -> dict[str, SwitchDone]:
    """Per run among ``run_ids`` whose switch of replace source ``source`` was made or refused: what it did."""
    return {run_id: done for (run_id, _), done in _switches(conn, run_ids, source).items()}


def _switches(conn: psycopg2.extensions.connection, run_ids: Sequence[str],
              source: str | None) -> dict[tuple[str, str], SwitchDone]:
    """The switches of ``run_ids`` (of ``source`` only, unless None), by (run, source)."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, source, detail, deleted, nested, outcome FROM replace_switches "
                    "WHERE run_id = ANY(%(runs)s) AND (%(source)s::text IS NULL OR source = %(source)s)",
                    {"runs": list(run_ids), "source": source})
        return {(run_id, name): SwitchDone(detail, int(deleted), {k: int(v) for k, v in (nested or {}).items()},
                                           outcome)
                for run_id, name, detail, deleted, nested, outcome in cur.fetchall()}


def switched_deletions(conn: psycopg2.extensions.connection, hours: float) -> dict[str, int]:
    """Per replace source: the rows its switches removed in the last ``hours``."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT source, sum(deleted) FROM replace_switches WHERE switched_at >= now() - %s * interval "
                    "'1 hour' GROUP BY source", (hours,))
        return {source: int(deleted) for source, deleted in cur.fetchall()}
