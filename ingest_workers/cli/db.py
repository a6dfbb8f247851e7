"""``ingest db``: the PostgreSQL schema."""

from __future__ import annotations

import time

import click

from ..core.config import Settings
from ..core.connections import connect_postgres
from ..core.errors import ServiceUnavailable
from ..load.migrate import migrate
from .app import App


@click.group()
def db() -> None:
    """Manage the PostgreSQL schema."""


@db.command("migrate")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Keep trying for S seconds while PostgreSQL is not up yet (containers starting together).")
@click.pass_obj
def db_migrate(app: App, wait_seconds: float) -> None:
    """Apply the numbered SQL migrations that are missing (safe to run again, and from many processes)."""
    applied = apply_migrations(app.settings, wait_seconds)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


def apply_migrations(settings: Settings, wait_seconds: float = 0) -> list[str]:
    """Apply missing migrations to the database of ``settings``; return the versions applied."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn = connect_postgres(settings.database_url)
            break
        except ServiceUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            click.echo(f"{exc}; retrying", err=True)
            time.sleep(1)
    try:
        return migrate(conn)
    finally:
        conn.close()
