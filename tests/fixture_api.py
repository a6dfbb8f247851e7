"""A fixture API shaped unlike the mock feeds, for the "your own API" tests.

    /api/customers   HAL-style: {"_embedded": {"customers": [...]}, "_links": {"next": {"href": RELATIVE}}}
                     page/size; needs "Authorization: Bearer <token>"
    /v1/invoices     Stripe-style: {"object": "list", "data": [...], "has_more": bool}; limit/starting_after;
                     needs HTTP basic auth
    /linked/events   a top-level list; the next page in a *relative* ``Link`` header; needs ``?api_key=``

Records are computed from their index and the server's ``revision``, with nested objects
and arrays; the tests compute what they expect from the same functions, never from the
loader. Every request is kept in ``requests`` (path with query, and headers).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fixture-bearer-token"
USER, PASSWORD = "billing", "fixture-password"
API_KEY = "fixture-api-key"
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
PLANS = ("free", "pro", "team")
COUNTRIES = ("DE", "FR", "NL", "US")


def customer(index: int, revision: int = 1) -> dict[str, Any]:
    """Customer ``index`` as served in ``revision``: from revision 2 every third one changed."""
    changed = revision >= 2 and index % 3 == 0
    return {
        "customer_id": f"cus_{index:05d}",
        "email": f"user{index}@{'new.example' if changed else 'example.com'}",
        "plan": PLANS[(index + (1 if changed else 0)) % 3],
        "age": 18 + index % 60,
        "address": {"city": f"City {index % 7}", "country": COUNTRIES[index % 4],
                    "lines": [f"{index} Main Street"] + (["Floor 2"] if changed else [])},
        "tags": ["vip"] if index % 5 == 0 else [],
        "updated": (EPOCH + timedelta(minutes=index + (10_000 if changed else 0))).isoformat().replace("+00:00", "Z"),
    }


def invoice(index: int, revision: int = 1) -> dict[str, Any]:
    """Invoice ``index`` as served in ``revision``: from revision 2 every fourth one is paid."""
    paid = index % 2 == 0 or (revision >= 2 and index % 4 == 1)
    return {
        "id": f"in_{index:06d}",
        "object": "invoice",
        "customer": f"cus_{index % 40:05d}",
        "amount_due": 1000 + index * 7,
        "currency": "eur",
        "status": "paid" if paid else "open",
        "lines": {"object": "list",
                  "data": [{"id": f"il_{index}_{n}", "amount": 500 + n} for n in range(1 + index % 3)]},
        "metadata": {"order": str(9000 + index)},
        "created": int((EPOCH + timedelta(hours=index)).timestamp()),
    }


def event(index: int, revision: int = 1) -> dict[str, Any]:
    return {"event_id": index + 1, "kind": ("click", "view")[index % 2],
            "at": (EPOCH + timedelta(seconds=index)).isoformat()}


@dataclass
class FixtureData:
    customers: int = 53
    invoices: int = 47
    events: int = 25
    revision: int = 1
    # /api/customers?... next links point here instead when set (a test of the origin check)
    next_origin: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class FixtureApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: FixtureData | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data or FixtureData()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FixtureApi:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FixtureApi

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        data = self.server.data
        data.requests.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/api/customers":
                return self._customers(query)
            if url.path == "/v1/invoices":
                return self._invoices(query)
            if url.path == "/linked/events":
                return self._events(query)
        except ValueError as exc:
            return self._send(400, {"error": str(exc)})
        self._send(404, {"error": "not found"})

    def _customers(self, query: dict[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"error": "bearer token required"})
        data = self.server.data
        page, size = int(query.get("page", "1")), int(query.get("size", "10"))
        first = (page - 1) * size
        records = [customer(i, data.revision) for i in range(first, min(first + size, data.customers))]
        links: dict[str, Any] = {"self": {"href": f"/api/customers?page={page}&size={size}"}}
        if first + size < data.customers:  # relative to /api/customers: "customers?..." is a sibling path
            links["next"] = {"href": f"{data.next_origin}{'/api/' if data.next_origin else ''}"
                                     f"customers?page={page + 1}&size={size}"}
        self._send(200, {"_embedded": {"customers": records}, "_links": links,
                         "page": {"number": page, "size": size, "totalElements": data.customers}})

    def _invoices(self, query: dict[str, str]) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, {"error": {"message": "basic auth required"}})
        data = self.server.data
        limit = int(query.get("limit", "10"))
        first = 0
        if "starting_after" in query:
            first = int(query["starting_after"].removeprefix("in_")) + 1
        records = [invoice(i, data.revision) for i in range(first, min(first + limit, data.invoices))]
        self._send(200, {"object": "list", "url": "/v1/invoices", "data": records,
                         "has_more": first + limit < data.invoices})

    def _events(self, query: dict[str, str]) -> None:
        if query.get("api_key") != API_KEY:
            return self._send(403, {"error": "api_key required"})
        data = self.server.data
        page, per_page = int(query.get("page", "1")), int(query.get("per_page", "10"))
        first = (page - 1) * per_page
        records = [event(i, data.revision) for i in range(first, min(first + per_page, data.events))]
        headers = {}
        if first + per_page < data.events:  # relative to the page's URL: keeps the path, new query
            headers["Link"] = f'<?page={page + 1}&per_page={per_page}>; rel="next"'
        self._send(200, records, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass
