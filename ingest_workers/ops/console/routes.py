"""The console's addresses, each answered from one document: ``/`` and ``/status`` (the status
of every source), ``/sources/NAME`` and ``/status/sources/NAME`` (one source), ``/workers`` and
``/status/workers`` (workers and queues), and the console's own script and style sheet under
``/static/``. GET only, and nothing here changes anything (there are no action buttons)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

import redis

from ...core.config import Settings
from ...core.connections import connect_postgres
from ...core.errors import IngestError
from ...core.models import SourceSpec
from ..readiness import check_schema
from ..status_page import read_status, render_page
from .documents import source_document, workers_document
from .layout import CONTENT_SECURITY_POLICY, e, page, static_file
from .redaction import PayloadRedactor
from .source_page import render_source_page
from .workers_page import render_workers_page

JSON = "application/json"
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    status: str
    content_type: str
    body: bytes

    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type), ("Cache-Control", "no-store"),
                ("Content-Security-Policy", CONTENT_SECURITY_POLICY), ("X-Content-Type-Options", "nosniff")]


class NotFound(Exception):
    """No such page (a source neither in the catalog nor in the history)."""


class Console:
    """Answers the console's addresses from PostgreSQL and Redis, read at each request."""

    def __init__(self, client: redis.Redis, settings: Settings, specs: Sequence[SourceSpec],
                 env: Mapping[str, str]) -> None:
        self._client = client
        self._settings = settings
        self._specs = {spec.name: spec for spec in specs}
        self._redactor = PayloadRedactor(specs, env)

    def answer(self, path: str) -> Answer | None:
        """The answer to a GET of ``path``, or None when the path is not the console's."""
        if path.startswith("/static/"):
            found = static_file(path.removeprefix("/static/"))
            return Answer("200 OK", found[1], found[0]) if found else _not_found(path, HTML)
        if path in ("/", "/status"):
            return self._serve(path == "/status", self._status, render_page)
        if path in ("/workers", "/status/workers"):
            return self._serve(path == "/status/workers", lambda: workers_document(self._client, _now()),
                               render_workers_page)
        for prefix in ("/sources/", "/status/sources/"):
            if path.startswith(prefix) and len(path) > len(prefix):
                name = unquote(path.removeprefix(prefix))
                return self._serve(prefix == "/status/sources/", partial(self._source, name), render_source_page)
        return None

    def _serve(self, as_json: bool, read: Callable[[], dict[str, Any]],
               render: Callable[[dict[str, Any]], str]) -> Answer:
        try:
            document, error, status = read(), None, "200 OK"
        except NotFound as exc:
            return _not_found(str(exc), JSON if as_json else HTML)
        except (IngestError, redis.RedisError) as exc:
            document, status = None, "503 Service Unavailable"
            error = str(exc) if isinstance(exc, IngestError) else f"Redis: {type(exc).__name__}"
        if as_json:
            return Answer(status, JSON, json.dumps(document if error is None else {"error": error}, indent=2).encode())
        html = render(document) if document is not None else render_page(None, error)
        return Answer(status, HTML, html.encode())

    def _status(self) -> dict[str, Any]:
        return read_status(self._client, self._settings, list(self._specs.values()))

    def _source(self, name: str) -> dict[str, Any]:
        conn = connect_postgres(self._settings.database_url, timeout=2)
        try:
            check_schema(conn)
            document = source_document(conn, name, self._specs.get(name), self._redactor, _now())
        finally:
            conn.close()
        if name not in self._specs and not document["runs"]:
            raise NotFound(f"no source {name} in the catalog or in the last {document['window_days']} days' runs")
        return document


def _not_found(what: str, kind: str) -> Answer:
    if kind == JSON:
        return Answer("404 Not Found", JSON, json.dumps({"error": what}).encode())
    return Answer("404 Not Found", HTML, page("not found", "", "/status", [f'<p class="error">{e(what)}</p>']).encode())


def _now() -> datetime:
    return datetime.now(UTC)
