"""``ingest status``: per-source health from the job history, queue depths and live workers."""

from __future__ import annotations

import json

import click

from ..ops.status import format_status, status_document
from .app import App


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the same as JSON.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=24, show_default=True,
              help="Window for success rates, loaded records and recent failures.")
@click.pass_obj
def status(app: App, as_json: bool, hours: float) -> None:
    """Per source: last run and outcome, success rate and health, records loaded, recent
    failures, next scheduled run; then queue depths and live workers. Health: healthy above 95% of jobs
    succeeding, degraded from 80%, unhealthy below."""
    client = app.redis()
    conn = app.postgres()
    try:
        catalog = app.optional_catalog  # without one, the sources with a history
        document = status_document(conn, client, catalog.sources if catalog else (), hours,
                                   catalog.sources.values() if catalog else ())
    finally:
        conn.close()
    click.echo(json.dumps(document, indent=2) if as_json else format_status(document))
