"""``ingest status``: per-source health from the job history, queue depths and live workers;
with ``--source NAME`` one source's runs, rejects and cursor; with ``--workers`` the workers and
the backlog (the documents of the console's pages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ..ops.console.documents import source_document, workers_document
from ..ops.console.redaction import PayloadRedactor
from ..ops.console.text import format_source, format_workers
from ..ops.status import format_status, status_document
from .app import App


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the same as JSON.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=24, show_default=True,
              help="Window for success rates, loaded records and recent failures.")
@click.option("--source", "source", metavar="NAME", help="One source: its runs, reject reasons and cursor "
                                                         "(the document of the console's /sources/NAME).")
@click.option("--workers", "show_workers", is_flag=True, help="Workers, their jobs, and the queues' backlog.")
@click.pass_obj
def status(app: App, as_json: bool, hours: float, source: str | None, show_workers: bool) -> None:
    """Per source: last run and outcome, success rate and health, records loaded, recent
    failures, next scheduled run; then queue depths and live workers. Health: healthy above 95% of jobs
    succeeding, degraded from 80%, unhealthy below."""
    if source and show_workers:
        raise click.UsageError("give --source or --workers, not both")
    if show_workers:
        document = workers_document(app.redis(), datetime.now(UTC))
        click.echo(json.dumps(document, indent=2) if as_json else format_workers(document))
        return
    catalog = app.optional_catalog  # without one, the sources with a history
    conn = app.postgres()
    try:
        if source:
            document = _source(app, conn, source)
        else:
            document = status_document(conn, app.redis(), catalog.sources if catalog else (), hours,
                                       catalog.sources.values() if catalog else ())
    finally:
        conn.close()
    text = format_source(document) if source else format_status(document)
    click.echo(json.dumps(document, indent=2) if as_json else text)


def _source(app: App, conn: Any, name: str) -> dict[str, Any]:
    catalog = app.optional_catalog
    specs = list(catalog.sources.values()) if catalog else []
    spec = next((s for s in specs if s.name == name), None)
    document = source_document(conn, name, spec, PayloadRedactor(specs, app.env), datetime.now(UTC))
    if spec is None and not document["runs"]:
        raise click.ClickException(f"no source {name} in the catalog or in the last {document['window_days']} "
                                   "days' runs")
    return document
