"""``ingest failed``: the fetch jobs that failed for good (or were quarantined)."""

from __future__ import annotations

import click

from ..core.connections import connect_postgres, redis_for
from ..ops.failed import FailedJobs
from ..ops.history import JobHistory
from ..runtime.producer import make_queue
from .app import App


def _failed_jobs(app: App) -> FailedJobs:
    return FailedJobs(make_queue(redis_for(app.settings), app.settings))


@click.group()
def failed() -> None:
    """List, retry or purge the failed fetch jobs."""


@failed.command("list")
@click.pass_obj
def list_failed(app: App) -> None:
    """Show each failed job: id, source, attempts and error."""
    jobs = _failed_jobs(app).list()
    if not jobs:
        click.echo("no failed jobs")
        return
    conn = connect_postgres(app.settings.database_url)
    try:
        attempts = JobHistory(conn).attempts([job.job_id for job in jobs])
    finally:
        conn.close()
    click.echo(f"{'JOB':<40} {'SOURCE':<20} {'ATTEMPTS':>8}  ERROR")
    for job in jobs:
        tries = attempts.get(job.job_id, 0)
        click.echo(f"{job.job_id:<40} {job.source:<20} {tries:>8}  {job.error}")


@failed.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
@click.pass_obj
def retry_failed(app: App, job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Put failed jobs (JOB_IDS, or --all) back on the queue."""
    if bool(job_ids) == retry_all:
        raise click.UsageError("give job ids or --all (not both)")
    jobs = _failed_jobs(app)
    wanted = [job.job_id for job in jobs.list()] if retry_all else list(job_ids)
    done = jobs.retry(wanted, app.settings.job_retries)
    for job_id in done:
        click.echo(f"requeued {job_id}")
    missing = sorted(set(wanted) - set(done))
    if missing:
        raise click.ClickException(f"not among the failed jobs: {', '.join(missing)}")


@failed.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge_failed(app: App, yes: bool) -> None:
    """Delete every failed job from Redis (ingest_jobs in PostgreSQL keeps their history)."""
    if not yes:
        click.confirm("Delete every failed job?", abort=True)
    click.echo(f"purged {_failed_jobs(app).purge()} failed jobs")
