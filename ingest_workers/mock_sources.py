"""A local source server for the demo, the tests and the benchmarks (this machine has
no internet). It serves deterministic, paginated JSON computed from the record's
index, so a million records cost no memory.

    GET /products?page=1&per_page=500  ->  {"items": [...], "page": 1, "per_page": 500, "total": N}
    GET /healthz                        ->  {"status": "ok"}

Every ``invalid_every``-th product is broken in one of a few realistic ways
(negative price, missing title, unreadable price, ...), so the reject path is
exercised; :func:`count_invalid` says how many of ``records`` are.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .mock_faults import FaultInjector

MAX_PAGE_SIZE = 10_000
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_ADJECTIVES = ("Compact", "Deluxe", "Eco", "Ergonomic", "Portable", "Rugged", "Smart", "Wireless")
_NOUNS = ("Blender", "Backpack", "Headphones", "Kettle", "Lamp", "Monitor", "Keyboard", "Tent")
_CATEGORIES = ("home", "kitchen", "outdoor", "electronics", "office", "travel")
_BREAKAGES = (
    ("price", -9.99),  # negative price
    ("title", None),  # missing name
    ("price", "call us"),  # unreadable price
    ("in_stock", "yes"),  # wrong type
)


@dataclass(frozen=True)
class MockConfig:
    records: int = 10_000
    invalid_every: int = 97  # 0: every record is valid
    latency: float = 0.0  # seconds added to every page


def product(index: int, invalid_every: int = 97) -> dict[str, Any]:
    """Product ``index`` as the first e-commerce API serves it (always the same for the same index)."""
    rnd = random.Random(index)
    record: dict[str, Any] = {
        "id": f"SKU-{index:08d}",
        "title": f"{rnd.choice(_ADJECTIVES)} {rnd.choice(_NOUNS)} {index}",
        "price": round(rnd.uniform(1, 2000), 2),
        "currency": "USD",
        "category": rnd.sample(_CATEGORIES, rnd.randint(1, 2)),
        "in_stock": rnd.random() > 0.2,
        "updated_at": (_EPOCH + timedelta(seconds=index)).isoformat().replace("+00:00", "Z"),
        "description": "A dependable product for everyday use, tested by our team. " * 2,
    }
    if is_invalid(index, invalid_every):
        field, value = _BREAKAGES[(index // invalid_every) % len(_BREAKAGES)]
        record[field] = value
    return record


def is_invalid(index: int, invalid_every: int) -> bool:
    return invalid_every > 0 and index % invalid_every == invalid_every - 1


def count_invalid(records: int, invalid_every: int) -> int:
    return records // invalid_every if invalid_every > 0 else 0


class _Handler(BaseHTTPRequestHandler):
    server: MockServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self._send(200, {"status": "ok"})
        if url.path != "/products":
            return self._send(404, {"error": f"no such path {url.path}"})
        query = parse_qs(url.query)
        try:
            page = int(query.get("page", ["1"])[0])
            per_page = int(query.get("per_page", ["100"])[0])
        except ValueError:
            return self._send(400, {"error": "page and per_page must be whole numbers"})
        if page < 1 or not 1 <= per_page <= MAX_PAGE_SIZE:
            return self._send(400, {"error": f"page >= 1 and 1 <= per_page <= {MAX_PAGE_SIZE}"})
        config = self.server.config
        if config.latency:
            time.sleep(config.latency)
        start = (page - 1) * per_page
        items = [product(i, config.invalid_every) for i in range(start, min(start + per_page, config.records))]
        page_body = {"items": items, "page": page, "per_page": per_page, "total": config.records}
        if self.server.faults.respond(self, _encode(page_body)):
            return
        self._send(200, page_body)

    def _send(self, status: int, body: Any) -> None:
        data = _encode(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass  # quiet: the demo prints its own progress


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, config: MockConfig, faults: FaultInjector | None = None) -> None:
        super().__init__((host, port), _Handler)
        self.config = config
        self.faults = faults or FaultInjector()  # tests may swap it for another

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (or a dropped-connection fault): nothing to report
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="mock-sources", daemon=True)
        thread.start()
        return thread
