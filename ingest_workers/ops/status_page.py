"""The front page of the console of ``ingest metrics-server``: ``GET /status`` is the document of
``ingest status --json``, ``GET /`` the same as an HTML page that refreshes itself in place (one
row per source: health, last run, records loaded, latest failure; a child source without any job
says why; each source links to its own page, see :mod:`.console`). Every value is escaped, and
holds only what ``ingest status`` prints (errors are masked where they are recorded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from ..core.config import Settings
from ..core.connections import connect_postgres
from ..core.models import SourceSpec
from .console.layout import cell, e, number, page, table
from .console.source_page import source_href
from .readiness import check_schema
from .status import status_document

_QUEUE_STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished", "workers")


def read_status(client: redis.Redis, settings: Settings, specs: Sequence[SourceSpec],
                hours: float = 24.0) -> dict[str, Any]:
    """The status document of the catalog's sources ``specs`` (``ingest status --json``'s), from
    PostgreSQL and Redis now. Raises :class:`ServiceUnavailable` (or :class:`SchemaMissing`) in one
    sentence when either cannot answer."""
    conn = connect_postgres(settings.database_url, timeout=2)
    try:
        check_schema(conn)
        return status_document(conn, client, [spec.name for spec in specs], hours, specs)
    finally:
        conn.close()


def render_page(document: dict[str, Any] | None, error: str | None = None) -> str:
    """The HTML page of ``document`` (or of ``error``, when the status could not be read)."""
    body = [f'<p class="error">status unavailable: {e(error)}</p>'] if error else _tables(document or {})
    return page("status", str((document or {}).get("generated_at", "")), "/status", body)


def _tables(document: dict[str, Any]) -> list[str]:
    hours = f"{document.get('window_hours', 24):g}h"
    headers = ("source", "health", "last run", "outcome", f"success {hours}", f"loaded {hours}", "latest failure")
    rows = [_source_row(name, s) for name, s in document.get("sources", {}).items()]
    queues = [f'<tr data-queue="{e(queue)}">{cell(queue)}'
              + "".join(cell(number(states.get(state, 0)), f"n {state}") for state in _QUEUE_STATES) + "</tr>"
              for queue, states in sorted(document.get("queues", {}).items())]
    return ["<h1>sources</h1>", table("sources", headers, rows, "no source yet"),
            '<h2>queues <a class="note" href="/workers">(workers and backlog)</a></h2>',
            table("queues", ("queue", *_QUEUE_STATES[:-1], "live workers"), queues, "no queues in Redis yet")]


def _source_row(name: str, s: dict[str, Any]) -> str:
    last = s.get("last_run") or {}
    rate = "-" if s.get("success_rate") is None else f"{s['success_rate']:.0%} of {s['jobs']}"
    failure = (s.get("recent_failures") or [None])[0]
    failure_text = f"{failure['at'] or ''} {failure['error'] or ''}".strip() if failure else ""
    health = str(s.get("health", ""))
    return (f'<tr class="source {e(health.replace(" ", "-"))}" data-source="{e(name)}">'
            f'<td class="name"><a href="{e(source_href(name))}">{e(name)}</a></td>{cell(health, "health")}'
            f'{cell(last.get("started_at") or "-")}{_outcome(last.get("status"), s.get("state"))}{cell(rate)}'
            f'{cell(number(s.get("loaded", 0)), "n loaded")}{cell(failure_text, "failure")}</tr>')


def _outcome(status: str | None, state: str | None) -> str:
    """The last run's outcome; for a child source without any job, why, in a sentence."""
    return cell(state, "outcome state") if state and not status else cell(status or "never", "outcome")
