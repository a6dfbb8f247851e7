"""``ingest db``: the PostgreSQL schema."""

from __future__ import annotations

import click

from ..config import Settings
from ..connections import connect_postgres
from ..migrate import migrate
from .app import App


@click.group()
def db() -> None:
    """Manage the PostgreSQL schema."""


@db.command("migrate")
@click.pass_obj
def dbapply_migrations(app: App) -> None:
    """Apply the numbered SQL migrations that are missing (safe to run again)."""
    applied = apply_migrations(app.settings)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


def apply_migrations(settings: Settings) -> list[str]:
    """Apply missing migrations to the database of ``settings``; return the versions applied."""
    conn = connect_postgres(settings.database_url)
    try:
        return migrate(conn)
    finally:
        conn.close()
