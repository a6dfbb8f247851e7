"""``ingest db``: the PostgreSQL schema."""

from __future__ import annotations

import time
from collections.abc import Sequence

import click

from ..core.config import Settings
from ..core.connections import connect_postgres
from ..core.errors import ConfigError, ServiceUnavailable
from ..datasets import Dataset
from ..load.migrate import migrate
from ..load.schema import differences
from .app import App


@click.group()
def db() -> None:
    """Manage the PostgreSQL schema."""


@db.command("migrate")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Keep trying for S seconds while PostgreSQL is not up yet (containers starting together).")
@click.pass_obj
def db_migrate(app: App, wait_seconds: float) -> None:
    """Apply the numbered SQL migrations that are missing, then create or evolve the table of every
    dataset (the built-in ones, and those the catalog declares when --catalog or INGEST_CATALOG names
    one). Safe to run again, and from many processes; never drops anything."""
    catalog = app.optional_catalog
    applied = apply_migrations(app.settings, wait_seconds, list(catalog.datasets.values()) if catalog else [])
    click.echo("\n".join(applied) if applied else "schema is up to date")


def apply_migrations(settings: Settings, wait_seconds: float = 0, datasets: Sequence[Dataset] = ()) -> list[str]:
    """Apply missing migrations to the database of ``settings`` and evolve the datasets' tables;
    return what was done."""
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
        return migrate(conn, datasets)
    finally:
        conn.close()


def check_tables(settings: Settings, datasets: list[Dataset]) -> None:
    """Refuse to start workers whose catalog's tables are missing or differ, saying which."""
    conn = connect_postgres(settings.database_url)
    try:
        differ = differences(conn, datasets)
    finally:
        conn.close()
    if differ:
        raise ConfigError("the tables do not match the catalog; run `ingest db migrate` with this catalog:\n  "
                          + "\n  ".join(differ))
