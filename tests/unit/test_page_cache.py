"""The mock server's page cache: the same bytes as computing the page, and bounded."""

from __future__ import annotations

import requests

from ingest_workers.testing.mock_sources import MockConfig, MockServer
from ingest_workers.testing.mock_sources.page_cache import PageCache


def test_least_recently_used_pages_go_first_past_the_bound() -> None:
    cache = PageCache(max_bytes=10)
    cache.put("/a", b"1234", {})
    cache.put("/b", b"5678", {"Link": "x"})
    assert cache.get("/a") == (b"1234", {})  # /a is now the most recently used
    cache.put("/c", b"90", {})
    assert len(cache) == 3
    cache.put("/d", b"abc", {})  # 13 bytes: the least recently used (/b) goes
    assert cache.get("/b") is None and cache.get("/a") is not None and cache.get("/d") == (b"abc", {})
    cache.put("/huge", b"x" * 11, {})  # larger than the bound: never kept
    assert cache.get("/huge") is None


def _pages(url: str) -> list[tuple[bytes, str | None]]:
    session = requests.Session()
    paths = ["/products?page=2&per_page=50", "/quotes?limit=30", "/shop-c/products?page_size=40",
             "/products?per_page=0"]
    return [(r.content, r.headers.get("Link")) for r in (session.get(url + path) for path in paths)]


def test_a_cached_page_is_the_page_the_server_computes() -> None:
    plain = MockServer("127.0.0.1", 0, MockConfig(records=200))
    cached = MockServer("127.0.0.1", 0, MockConfig(records=200, cache_bytes=2**20))
    for server in (plain, cached):
        server.start_in_thread()
    try:
        expected = _pages(plain.url)
        first, again = _pages(cached.url), _pages(cached.url)
        # The Link header names the server itself, hence the replace.
        assert [(b, link and link.replace(cached.url, plain.url)) for b, link in first] == expected
        assert again == first
        assert len(cached.page_cache) == 3  # the bad request (per_page=0) is not kept
        cached.config = MockConfig(records=100, cache_bytes=2**20)  # a new config starts empty
        assert len(cached.page_cache) == 0
    finally:
        for server in (plain, cached):
            server.shutdown()
            server.server_close()


def test_a_page_of_the_config_a_request_started_with_never_fills_a_newer_config_s_cache() -> None:
    server = MockServer("127.0.0.1", 0, MockConfig(records=200, cache_bytes=2**20))
    try:
        older = server.config
        assert server.cache_for(older) is server.page_cache
        server.config = MockConfig(records=200, revision=2, cache_bytes=2**20)  # the revision changes mid-request
        assert server.cache_for(older) is None  # the request's page is not cached under the new revision
        assert server.cache_for(server.config) is server.page_cache
    finally:
        server.server_close()
