"""``ingest runs reconcile RUN_ID``: enqueue again the jobs of a run that Redis lost."""

from __future__ import annotations

import click

from ..core.connections import connect_postgres, redis_for
from ..ops.history import JobHistory
from ..runtime.producer import check_run_id, make_queue
from ..runtime.reconcile import reconcile_run
from .app import App


@click.group("runs")
def runs_group() -> None:
    """Runs and their job lists (kept in PostgreSQL, ingest_jobs)."""


@runs_group.command()
@click.argument("run_id")
@click.pass_obj
def reconcile(app: App, run_id: str) -> None:
    """Enqueue again each job of RUN_ID that has not ended in PostgreSQL and that Redis no longer
    knows (lost in a failover or a restart). Safe to repeat: a job that already ran loads nothing
    twice. `ingest enqueue --wait` and `ingest run` do this by themselves while they watch."""
    check_run_id(run_id)
    queue = make_queue(redis_for(app.settings), app.settings)
    conn = connect_postgres(app.settings.database_url)
    try:
        again = reconcile_run(queue, app.settings, JobHistory(conn), run_id)
    finally:
        conn.close()
    for job_id in again:
        click.echo(f"enqueued again: {job_id}")
    click.echo(f"run {run_id}: {len(again)} job(s) enqueued again" if again
               else f"run {run_id}: Redis knows every unfinished job; nothing to enqueue")
