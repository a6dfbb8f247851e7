"""The mock source server: routing and paging in one place; the records come from the
per-dataset feed modules. Everything is computed per request from the record index,
so the size knob (``records`` per feed) can reach millions without memory.

    /products            shop A   page/per_page            {"items": [...], "total": N}
    /v2/catalog          shop B   offset/limit             {"data": {"products": [...]}, "paging": {...}}
    /shop-c/products     shop C   page_token/page_size     {"results": [...], "paging": {"next": token}}
    /quotes              quotes   limit + Link rel=next    {"data": [...]}
    /twitter/tweets      tweets   pagination_token/max_results  {"data": [...], "meta": {"next_token": ...}}
    /telegram/getUpdates updates  offset/limit             {"ok": true, "result": [...]}
    /posts               posts    _page/_limit             [...]
    /sensors.csv         CSV of sensor readings, streamed
    /healthz             {"status": "ok"}
    /moved/PATH          301 to /PATH with the same query (a source that moved, same origin)
    /stuck/PATH          PATH's first page whatever page is asked (a paginator that never ends)

Time-ordered feeds take a ``since`` parameter (records at or after) and an ``until``
parameter (before); their names are in the table below.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ..mock_faults import FaultInjector
from . import mentions, posts, products, quotes, sensors
from .feed import Feed
from .page_cache import PageCache
from .revisions import revise

MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class MockConfig:
    records: int = 10_000  # per feed
    invalid_every: int = 97  # 0: every record is valid
    latency: float = 0.0  # seconds added to every page
    cache_bytes: int = 0  # keep served JSON pages up to this many bytes (0: compute every page)
    revision: int = 0  # > 0: every changed_every-th valid record changes its price, stock or text (revisions.py)
    changed_every: int = 10


@dataclass(frozen=True)
class Endpoint:
    feed: Feed
    paging: str  # page | offset | cursor | link
    envelope: Callable[[list[Any], str | None, int], Any]  # (records, next token, total) -> body
    start_param: str  # page number, offset or cursor token
    size_param: str
    since_param: str | None = None
    until_param: str | None = None


ROUTES: dict[str, Endpoint] = {
    "/products": Endpoint(products.SHOP_A, "page", lambda r, _, n: {"items": r, "total": n}, "page", "per_page",
                          "updated_since", "updated_before"),
    "/v2/catalog": Endpoint(products.SHOP_B, "offset",
                            lambda r, _, n: {"data": {"products": r}, "paging": {"total": n}}, "offset", "limit",
                            "changed_since", "changed_before"),
    "/shop-c/products": Endpoint(products.SHOP_C, "cursor",
                                 lambda r, t, _: {"results": r, "paging": {"next": t}}, "page_token", "page_size",
                                 "modified_since", "modified_before"),
    "/quotes": Endpoint(quotes.QUOTES, "link", lambda r, _, n: {"data": r, "count": len(r)}, "page", "limit",
                        "from", "to"),
    "/twitter/tweets": Endpoint(mentions.TWITTER, "cursor",
                                lambda r, t, _: {"data": r, "meta": {"result_count": len(r), "next_token": t}},
                                "pagination_token", "max_results", "start_time", "end_time"),
    "/telegram/getUpdates": Endpoint(mentions.TELEGRAM, "offset", lambda r, _, n: {"ok": True, "result": r},
                                     "offset", "limit"),
    "/posts": Endpoint(posts.POSTS, "page", lambda r, _, n: r, "_page", "_limit", "id_gte"),
}


class BadRequest(Exception):
    pass


def _whole(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query.get(name, [str(default)])[0])
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


def _range(endpoint: Endpoint, query: dict[str, list[str]], total: int) -> tuple[int, int]:
    """The records the query's since/until filters leave: indexes [first, end)."""
    first, end = 0, total
    try:
        if endpoint.since_param and endpoint.since_param in query:
            first = endpoint.feed.first_index(query[endpoint.since_param][0])
        if endpoint.until_param and endpoint.until_param in query:
            end = endpoint.feed.first_index(query[endpoint.until_param][0])
    except ValueError:
        raise BadRequest(f"{endpoint.since_param}/{endpoint.until_param}: not a valid value") from None
    return min(first, total), min(end, total)


def serve_page(endpoint: Endpoint, query: dict[str, list[str]], config: MockConfig,
               path: str) -> tuple[Any, str | None]:
    """The body of one page and, for Link paging, the URL of the next page."""
    size = _whole(query, endpoint.size_param, 100)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequest(f"1 <= {endpoint.size_param} <= {MAX_PAGE_SIZE}")
    first, end = _range(endpoint, query, config.records)
    if endpoint.paging in ("page", "link"):
        page = _whole(query, endpoint.start_param, 1)
        if page < 1:
            raise BadRequest(f"{endpoint.start_param} >= 1")
        start = first + (page - 1) * size
    elif endpoint.paging == "offset":
        start = first + _whole(query, endpoint.start_param, 0)
    else:
        token = query.get(endpoint.start_param, [""])[0]
        try:
            start = int(token[1:], 36) if token else first
        except ValueError:
            raise BadRequest(f"{endpoint.start_param}: not a token this server gave") from None
    stop = max(start, min(start + size, end))
    records = [revise(endpoint.feed.record(i, config.invalid_every), i, config.revision, config.changed_every,
                      config.invalid_every) for i in range(start, stop)]
    more = stop < end
    token = f"c{_base36(stop)}" if endpoint.paging == "cursor" and more else None
    link = None
    if endpoint.paging == "link" and more:
        link = f"{path}?{urlencode({**{k: v[0] for k, v in query.items()}, endpoint.start_param: page + 1})}"
    return endpoint.envelope(records, token, config.records), link


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


class _Handler(BaseHTTPRequestHandler):
    server: MockServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        config = self.server.config
        if url.path == "/healthz":
            return self._send(200, {"status": "ok"})
        if config.latency:
            time.sleep(config.latency)
        if url.path == "/sensors.csv":
            return self._send_csv(config)
        if url.path.startswith("/moved/"):
            return self._redirect(self.path.removeprefix("/moved"))
        if url.path.startswith("/stuck/"):
            query = {k: v for k, v in query.items() if k not in ("page", "offset", "_page")}
            url = url._replace(path=url.path.removeprefix("/stuck"))
        endpoint = ROUTES.get(url.path)
        if endpoint is None:
            return self._send(404, {"error": f"no such path {url.path}"})
        cache = self.server.cache_for(config)
        page = cache.get(self.path) if cache is not None else None
        if page is None:
            try:
                body, link = serve_page(endpoint, query, config, url.path)
            except BadRequest as exc:
                return self._send(400, {"error": str(exc)})
            page = (_encode(body), {"Link": f'<{self.server.url}{link}>; rel="next"'} if link else {})
            if cache is not None:
                cache.put(self.path, *page)
        data, headers = page
        if self.server.faults.respond(self, data):  # the one place faults are injected
            return
        self._send(200, data, headers)

    def _redirect(self, location: str) -> None:
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else _encode(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_csv(self, config: MockConfig) -> None:
        """No Content-Length: the body ends when the connection closes (HTTP/1.0), written as it is made."""
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk: list[str] = []
        for line in sensors.csv_lines(config.records, config.invalid_every):
            chunk.append(line)
            if len(chunk) >= 1000:
                self.wfile.write("".join(chunk).encode())
                chunk.clear()
        self.wfile.write("".join(chunk).encode())
        self.close_connection = True

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
        self._cache: tuple[MockConfig, PageCache | None] | None = None

    @property
    def page_cache(self) -> PageCache | None:
        """The pages served under the current config (a new config, e.g. from a test, starts empty)."""
        if self._cache is None or self._cache[0] is not self.config:
            self._cache = (self.config, PageCache(self.config.cache_bytes) if self.config.cache_bytes else None)
        return self._cache[1]

    def cache_for(self, config: MockConfig) -> PageCache | None:
        """The page cache of ``config``, or None once the config changed: a page computed from the
        config a request started with must never fill the cache of a newer one (a revision read
        after the switch would get the older revision's page)."""
        current = self.page_cache
        return current if self._cache is not None and self._cache[0] is config else None

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (or a dropped-connection fault): nothing to report
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        # A short poll makes shutdown() quick (tests start and stop many servers).
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="mock-sources", daemon=True)
        thread.start()
        return thread
