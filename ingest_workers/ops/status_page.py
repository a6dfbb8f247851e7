"""The status page of ``ingest metrics-server``: ``GET /status`` is the document of
``ingest status --json``, ``GET /`` the same as an HTML page that refreshes itself (one row per
source: health, last run, records loaded, latest failure). Plain HTML, no JavaScript: every
value is escaped, and holds only what ``ingest status`` prints (errors are masked where they
are recorded)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import redis

from ..core.config import Settings
from ..core.connections import connect_postgres
from .readiness import check_schema
from .status import status_document

REFRESH_SECONDS = 10


def read_status(client: redis.Redis, settings: Settings, sources: Iterable[str], hours: float = 24) -> dict[str, Any]:
    """The status document, from PostgreSQL and Redis now. Raises :class:`ServiceUnavailable`
    (or :class:`SchemaMissing`) in one sentence when either cannot answer."""
    conn = connect_postgres(settings.database_url, timeout=2)
    try:
        check_schema(conn)
        return status_document(conn, client, sources, hours)
    finally:
        conn.close()


def render_page(document: dict[str, Any] | None, error: str | None = None) -> str:
    """The HTML page of ``document`` (or of ``error``, when the status could not be read)."""
    body = [f"<p class=\"error\">status unavailable: {_e(error)}</p>"] if error else _tables(document or {})
    generated = _e((document or {}).get("generated_at", ""))
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">",
        "<title>ingest-workers status</title>", f"<style>{_STYLE}</style></head><body>",
        f"<h1>ingest-workers status</h1><p class=\"generated\">generated {generated}, every {REFRESH_SECONDS}s "
        "(JSON: <a href=\"/status\">/status</a>, metrics: <a href=\"/metrics\">/metrics</a>)</p>",
        *body, "</body></html>", ""])


def _tables(document: dict[str, Any]) -> list[str]:
    hours = f"{document.get('window_hours', 24):g}h"
    rows = [f"<table id=\"sources\"><thead><tr><th>source</th><th>health</th><th>last run</th><th>outcome</th>"
            f"<th>success {hours}</th><th>loaded {hours}</th><th>latest failure</th></tr></thead><tbody>"]
    for name, s in document.get("sources", {}).items():
        last = s.get("last_run") or {}
        rate = "-" if s.get("success_rate") is None else f"{s['success_rate']:.0%} of {s['jobs']}"
        failure = (s.get("recent_failures") or [None])[0]
        failure_text = f"{failure['at'] or ''} {failure['error'] or ''}".strip() if failure else ""
        health = str(s.get("health", ""))
        rows.append(f"<tr class=\"source {_e(health.replace(' ', '-'))}\" data-source=\"{_e(name)}\">"
                    f"<td class=\"name\">{_e(name)}</td><td class=\"health\">{_e(health)}</td>"
                    f"<td>{_e(last.get('started_at') or '-')}</td><td>{_e(last.get('status') or 'never')}</td>"
                    f"<td>{_e(rate)}</td><td class=\"loaded\">{int(s.get('loaded', 0)):,}</td>"
                    f"<td class=\"failure\">{_e(failure_text)}</td></tr>")
    rows.append("</tbody></table>")
    queues = document.get("queues", {})
    rows.append("<h2>queues</h2><table id=\"queues\"><thead><tr><th>queue</th><th>state</th><th>jobs</th></tr>"
                "</thead><tbody>")
    for queue, states in sorted(queues.items()):
        for state, count in states.items():
            rows.append(f"<tr><td>{_e(queue)}</td><td>{_e('live workers' if state == 'workers' else state)}</td>"
                        f"<td>{int(count)}</td></tr>")
    rows.append("</tbody></table>")
    return rows


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}"
          "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}td.loaded{text-align:right}"
          "tr.healthy td.health{background:#cfc}tr.degraded td.health{background:#ffc}"
          "tr.unhealthy td.health{background:#fcc;font-weight:bold}.error{color:#a00}")
