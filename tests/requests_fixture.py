"""A fixture API for request shapes and time (issue 26), its records laid out in time from ``start``:

    POST /v3/deals/search       a search endpoint paged in its JSON body:
                                {"filter": {"updated_after", "updated_before"}, "page", "size"} ->
                                {"results": [...]}; a query matching more than ``search_cap`` records
                                serves only the first ``search_cap`` (as search engines cap result sets)
    POST /graphql               {"query", "variables": {"first", "after", "since"}} ->
                                {"data": {"deals": {"nodes": [...], "pageInfo": {"endCursor", "hasNextPage"}}}}
    GET  /api/0/issues/         a filter expression: ?query=lastSeen:>ISO (strictly after; no query:
                                all), paged by a ``Link`` rel="next" carrying ?cursor=N
    GET  /ranged/deals          ?from=&to= (epoch seconds, [from, to)) &page=&per_page=: HTTP 400 for a
                                range longer than 7 days or without both bounds

Deal ``i`` was updated at ``start + i * 7 h``; issue ``i`` last seen at ``start + i * 5 h``. The tests
compute what they expect from :func:`deal` and :func:`issue`, never from the loader. Every request
is kept in ``requests`` (method, path with query, JSON body). ``hold`` makes a /ranged/deals request
whose ``from`` equals it wait for ``release`` (a worker is killed meanwhile).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.helpers import answer

DEAL_STEP, ISSUE_STEP = timedelta(hours=7), timedelta(hours=5)
MAX_RANGE = timedelta(days=7)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def deal(index: int, start: datetime) -> dict[str, Any]:
    return {"id": f"deal-{index:04d}", "name": f"Deal {index}", "amount": 100 + 3 * index,
            "updated_at": iso(start + index * DEAL_STEP)}


def issue(index: int, start: datetime) -> dict[str, Any]:
    return {"id": str(5000 + index), "title": f"TypeError #{index}", "lastSeen": iso(start + index * ISSUE_STEP)}


@dataclass
class RequestsData:
    start: datetime
    deals: int = 96
    issues: int = 30
    search_cap: int = 20
    late: list[dict[str, Any]] = field(default_factory=list)  # deals added after the first run
    hold: int | None = None  # /ranged/deals: a request with from=hold waits for release
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def all_deals(self) -> list[dict[str, Any]]:
        return sorted([deal(i, self.start) for i in range(self.deals)] + self.late, key=lambda d: d["updated_at"])


class RequestsApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: RequestsData) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Handler(BaseHTTPRequestHandler):
    server: RequestsApi

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
        self.server.data.requests.append(("POST", self.path, body))
        if self.path == "/v3/deals/search":
            return self._search(body)
        if self.path == "/graphql":
            return self._graphql(body)
        self._send(404, {"error": "not found"})

    def do_GET(self) -> None:  # noqa: N802
        self.server.data.requests.append(("GET", self.path, None))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/api/0/issues/":
            return self._issues(query)
        if url.path == "/ranged/deals":
            return self._ranged(query)
        self._send(404, {"error": "not found"})

    def _search(self, body: dict[str, Any]) -> None:
        data, where = self.server.data, body.get("filter", {})
        after, before = where.get("updated_after"), where.get("updated_before")
        found = [d for d in data.all_deals() if (after is None or _moment(d["updated_at"]) >= _moment(after))
                 and (before is None or _moment(d["updated_at"]) < _moment(before))][:data.search_cap]
        page, size = int(body["page"]), int(body["size"])
        self._send(200, {"results": found[(page - 1) * size:page * size], "total": len(found)})

    def _graphql(self, body: dict[str, Any]) -> None:
        data, variables = self.server.data, body.get("variables", {})
        if "deals(" not in body.get("query", ""):
            return self._send(200, {"errors": [{"message": "unknown query"}]})
        since = variables.get("since")
        found = [d for d in data.all_deals() if since is None or _moment(d["updated_at"]) >= _moment(since)]
        first = int(variables.get("after", "cursor:0").split(":")[1]) if variables.get("after") else 0
        size = int(variables["first"])
        nodes = found[first:first + size]
        end = f"cursor:{first + len(nodes)}" if nodes else None
        self._send(200, {"data": {"deals": {"nodes": nodes, "pageInfo": {
            "endCursor": end, "hasNextPage": first + size < len(found)}}}})

    def _issues(self, query: dict[str, str]) -> None:
        data = self.server.data
        found = [issue(i, data.start) for i in range(data.issues)]
        if "query" in query:
            expression = query["query"]
            if not expression.startswith("lastSeen:>"):
                return self._send(400, {"detail": f"bad query {expression!r}"})
            since = _moment(expression.removeprefix("lastSeen:>"))
            found = [i for i in found if _moment(i["lastSeen"]) > since]
        first, size = int(query.get("cursor", "0")), 10
        headers = {}
        if first + size < len(found):
            rest = urlencode({"query": query["query"]}) + "&" if "query" in query else ""
            headers["Link"] = f'<{self.server.url}/api/0/issues/?{rest}cursor={first + size}>; rel="next"'
        self._send(200, found[first:first + size], headers)

    def _ranged(self, query: dict[str, str]) -> None:
        data = self.server.data
        if "from" not in query or "to" not in query:
            return self._send(400, {"error": "from and to are required"})
        since, until = (datetime.fromtimestamp(int(query[k]), UTC) for k in ("from", "to"))
        if until - since > MAX_RANGE:
            return self._send(400, {"error": "the range may not be longer than 7 days"})
        if data.hold is not None and int(query["from"]) == data.hold:
            data.held.set()
            data.release.wait(60)
        found = [d for d in data.all_deals() if since <= _moment(d["updated_at"]) < until]
        page, size = int(query.get("page", "1")), int(query.get("per_page", "10"))
        self._send(200, {"items": found[(page - 1) * size:page * size]})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        answer(self, status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass
