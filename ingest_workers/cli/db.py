"""``ingest db``: the PostgreSQL schema."""

from __future__ import annotations

import click

from ..core.config import Settings
from ..load.migrate import migrate
from ..ops.readiness import wait_for_postgres
from .app import App


@click.group()
def db() -> None:
    """Manage the PostgreSQL schema."""


@db.command("migrate")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0),
              help="Keep trying for S seconds while PostgreSQL is not up yet (containers starting together). "
                   "[default: INGEST_SERVICE_WAIT, 10]")
@click.pass_obj
def db_migrate(app: App, wait_seconds: float | None) -> None:
    """Apply the numbered SQL migrations that are missing (safe to run again, and from many processes)."""
    applied = apply_migrations(app.settings, app.settings.service_wait if wait_seconds is None else wait_seconds)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


def apply_migrations(settings: Settings, wait_seconds: float = 0) -> list[str]:
    """Apply missing migrations to the database of ``settings``; return the versions applied."""
    conn = wait_for_postgres(settings.database_url, wait_seconds, lambda words: click.echo(words, err=True),
                             schema=False)
    try:
        return migrate(conn)
    finally:
        conn.close()
