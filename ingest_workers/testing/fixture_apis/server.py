"""The fixture API server: routing and paging; the records come from ``github.py`` and ``shop.py``.

    GET  /repos/acme/widgets/issues?page=&per_page=                 [issue, ...]    Link rel="next"
    GET  /repos/acme/widgets/issues/{number}/comments?page=&per_page=  [comment, ...]  Link rel="next"
    GET  /products?page=&limit=        {"products": [{"id", "name"}, ...], "total": N}
    GET  /products/{id}                {"id", "name", "price", "reviews": [...], "tags": [...]}
    GET  /healthz                      {"status": "ok"}   (never faulted, not logged)
    GET  /_requests                    {"path?query": count, ...}  (the request log)
    GET  /_revision, POST /_revision?revision=N (or a JSON body {"revision": N})

GitHub-style pages: ``per_page`` 1..100 (default 30); the ``Link`` header holds absolute URLs with
rel="next" and rel="last" while more pages follow, rel="prev" and rel="first" after the first.
A page past the end is an empty list. Shop pages: ``limit`` 1..100 (default 20).
``latency`` is slept on every comments page and product detail (the child requests).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from . import github, shop
from .traffic import FaultShares, RequestLog

ISSUES_PATH = f"/repos/{github.OWNER}/{github.REPO}/issues"
_COMMENTS = re.compile(rf"^{ISSUES_PATH}/(\d+)/comments$")
_PRODUCT = re.compile(r"^/products/(\d+)$")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class FixtureApiConfig:
    """The server's fixed settings; the revision is changed at runtime (``server.revision``)."""

    issues: int = 60
    products: int = 40
    latency: float = 0.0  # seconds slept per child request (comments page, product detail)
    faults: FaultShares = FaultShares()


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


def _whole(query: dict[str, str], name: str, default: int, low: int = 1, high: int | None = None) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name} must be in {low}..{high or ''}")
    return value


def link_header(url: str, page: int, per_page: int, total: int) -> str:
    """GitHub's ``Link`` header for ``page`` of ``total`` items at ``url`` (absolute, no query)."""
    last = max(1, -(-total // per_page))

    def at(number: int, rel: str) -> str:
        return f'<{url}?{urlencode({"page": number, "per_page": per_page})}>; rel="{rel}"'

    links = [at(page + 1, "next"), at(last, "last")] if page < last else []
    if page > 1:
        links += [at(min(page - 1, last), "prev"), at(1, "first")]
    return ", ".join(links)


def github_page(url: str, query: dict[str, str], total: int,
                item: Callable[[int], dict[str, Any]]) -> Answer:
    """One GitHub-style page of ``total`` items; ``item(i)`` makes the i-th (0-based)."""
    page = _whole(query, "page", 1)
    per_page = _whole(query, "per_page", 30, high=MAX_PAGE_SIZE)
    first = (page - 1) * per_page
    body = [item(i) for i in range(first, min(first + per_page, total))]
    link = link_header(url, page, per_page, total)
    return Answer(200, body, (("Link", link),) if link else ())


class FixtureApiServer(ThreadingHTTPServer):
    """The GitHub-like and shop-like fixture APIs on ``host:port`` (0: any free port).

    ``revision`` (1, 2, 3, ...) may be set while serving; ``requests()`` is the request log.
    Keep-alive (HTTP/1.1) as the real APIs; after ``stop()`` an open connection is closed at its
    next request, unanswered, as by a server that went away.
    """

    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up server_close()

    def __init__(self, config: FixtureApiConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 revision: int = 1) -> None:
        super().__init__((host, port), _Handler)
        self.config = config or FixtureApiConfig()
        self.log = RequestLog()
        self.stopped = threading.Event()
        self._revision_lock = threading.Lock()
        self._revision = 1
        self.revision = revision

    @property
    def revision(self) -> int:
        with self._revision_lock:
            return self._revision

    @revision.setter
    def revision(self, value: int) -> None:
        """Serve ``value`` from now on; each path's first request under it may fault again."""
        if value < 1:
            raise ValueError(f"revisions start at 1, got {value}")
        with self._revision_lock:
            self._revision = value
            self.log.new_revision()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self) -> dict[str, int]:
        """Requests per path (with query) so far."""
        return self.log.counts()

    def start(self) -> FixtureApiServer:
        """Serve in a daemon thread (a short poll, so ``stop()`` is quick)."""
        threading.Thread(target=self.serve_forever, args=(0.05,), name="fixture-api", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away: nothing to report
        super().handle_error(request, client_address)

    def route(self, path: str, query: dict[str, str]) -> Answer:
        """The answer to a GET of a data path (faults aside)."""
        revision, config = self.revision, self.config
        if path == ISSUES_PATH:
            return github_page(self.url + path, query, config.issues, lambda i: github.issue(i + 1, revision))
        if path == "/products":
            page = _whole(query, "page", 1)
            limit = _whole(query, "limit", 20, high=MAX_PAGE_SIZE)
            first = (page - 1) * limit
            ids = range(first + 1, min(first + limit, config.products) + 1)
            return Answer(200, {"products": [shop.product_summary(i) for i in ids], "total": config.products})
        if match := _COMMENTS.match(path):
            time.sleep(config.latency)
            number = int(match[1])
            if not 1 <= number <= config.issues or github.comments_missing(number):
                return Answer(404, {"message": "Not Found"})
            comments = github.comments_of(number, revision)
            return github_page(self.url + path, query, len(comments), comments.__getitem__)
        if match := _PRODUCT.match(path):
            time.sleep(config.latency)
            product_id = int(match[1])
            detail = shop.product_detail(product_id, revision) if 1 <= product_id <= config.products else None
            return Answer(200, detail) if detail else Answer(404, {"error": "no such product"})
        return Answer(404, {"message": f"no such path {path}"})


class _Handler(BaseHTTPRequestHandler):
    server: FixtureApiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall per answer
    timeout = 30  # an idle keep-alive connection's thread ends after this many seconds

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        if self._gone():
            return
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if url.path == "/healthz":
            return self._send(Answer(200, {"status": "ok"}))
        if url.path == "/_requests":
            return self._send(Answer(200, self.server.requests()))
        if url.path == "/_revision":
            return self._send(Answer(200, {"revision": self.server.revision}))
        first = self.server.log.record(self.path) == 1
        try:
            answer = self.server.route(url.path, query)
        except BadRequest as exc:
            answer = Answer(400, {"message": str(exc)})
        fault = self.server.config.faults.status_for(self.path) if first else None
        if fault is not None:
            retry = (("Retry-After", str(self.server.config.faults.retry_after)),) if fault == 429 else ()
            answer = Answer(fault, {"message": "transient fault (fixture)"}, retry)
        self._send(answer)

    def do_POST(self) -> None:  # noqa: N802
        if self._gone():
            return
        url = urlsplit(self.path)
        if url.path != "/_revision":
            return self._send(Answer(404, {"message": f"no such path {url.path}"}))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            given = parse_qs(url.query).get("revision", [None])[0] or json.loads(raw or b"{}").get("revision")
            self.server.revision = int(given)
        except (TypeError, ValueError, AttributeError):
            return self._send(Answer(400, {"message": "revision=N (a whole number >= 1) required"}))
        self._send(Answer(200, {"revision": self.server.revision}))

    def _gone(self) -> bool:
        """After stop(): close a kept-alive connection without an answer."""
        if self.server.stopped.is_set():
            self.close_connection = True
        return self.close_connection

    def _send(self, answer: Answer) -> None:
        data = json.dumps(answer.body, separators=(",", ":")).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass
