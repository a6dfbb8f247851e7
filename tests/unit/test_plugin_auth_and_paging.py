"""A plug-in authenticator and a plug-in paginator (tests/plugins.py), named in a catalog by dotted
path, against a scroll API that checks each request's HMAC signature (a real local HTTP server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.errors import ConfigError, PermanentError
from ingest_workers.sources import Authenticator, Paginator, SourceContext
from ingest_workers.sources.auth_kinds import authenticator_class
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import HttpJsonSource
from ingest_workers.sources.paginators import PAGINATIONS, paginator_class
from tests.helpers import answer, serving
from tests.plugins import sign

KEY = "planted-signing-key-0c4d"
DOCS = [{"id": i, "userId": 1, "title": f"doc {i}"} for i in range(1, 26)]
PAGE = 10


class ScrollApi(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.asked: list[dict[str, str]] = []
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/search"


class _Handler(BaseHTTPRequestHandler):
    server: ScrollApi

    def do_GET(self) -> None:  # noqa: N802
        query = dict(parse_qsl(urlsplit(self.path).query))
        if self.headers.get("X-Signature") != sign(KEY.encode(), self.server.url, query):
            self.server.refused += 1
            return answer(self, 401, {}, b"")
        self.server.asked.append(query)
        start = int(query.get("scroll_id", "s0")[1:]) * PAGE
        body = {"hits": DOCS[start:start + PAGE], "scroll_id": f"s{start // PAGE + 1}"}
        answer(self, 200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ScrollApi]:
    server = ScrollApi()
    with serving(server):
        yield server


CATALOG = """
[sources.search]
kind = "http_json"
dataset = "posts"
url = "{url}"
records_path = "hits"
auth = {{ kind = "tests.plugins:HmacSigner", key_env = "SIGNING_KEY" }}
pagination = "tests.plugins:ScrollPaginator"
options = {{ keep_alive = "5m" }}
fields = {{ post_id = "id", user_id = "userId" }}
"""


def test_a_plugin_authenticator_and_paginator_read_every_page(api: ScrollApi, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CATALOG.format(url=api.url))
    spec = load_catalog(tmp_path / "c.toml", {}).sources["search"]
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    records = list(HttpJsonSource(spec, SourceContext(client, {"SIGNING_KEY": KEY})).stream())
    assert records == DOCS
    assert api.asked == [{"scroll": "5m"}, {"scroll": "5m", "scroll_id": "s1"}, {"scroll": "5m", "scroll_id": "s2"},
                         {"scroll": "5m", "scroll_id": "s3"}]  # the last one came back empty
    assert api.refused == 0
    with pytest.raises(PermanentError, match="HTTP 401"):  # the signature is what the API checks
        list(HttpJsonSource(spec, SourceContext(client, {"SIGNING_KEY": "planted-other-key"})).stream())


def test_the_built_ins_and_the_plugins_implement_the_same_protocols() -> None:
    assert issubclass(authenticator_class("tests.plugins:HmacSigner"), Authenticator)
    assert issubclass(paginator_class("tests.plugins:ScrollPaginator"), Paginator)
    assert all(issubclass(cls, Paginator) for cls in PAGINATIONS.values())
    for kind in ("bearer", "basic", "api_key", "oauth2_client_credentials", "oauth2_refresh_token"):
        assert issubclass(authenticator_class(kind), Authenticator)


def test_the_catalog_refuses_a_plugin_that_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CATALOG.format(url="https://x.example/s").replace(
        "tests.plugins:HmacSigner", "tests.plugins:ShoutTitles"))
    with pytest.raises(ConfigError, match=r"key 'auth.kind': tests.plugins:ShoutTitles has no authorize\(request\)"):
        load_catalog(tmp_path / "c.toml", {})


def test_a_signer_signs_the_request_as_sent_with_its_placeholders_filled(api: ScrollApi, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CATALOG.format(url=api.url) + 'params = { q = "since:{since}" }\n')
    spec = load_catalog(tmp_path / "c.toml", {}).sources["search"]
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    records = list(HttpJsonSource(spec, SourceContext(client, {"SIGNING_KEY": KEY}, since="2024-01-01")).stream())
    assert records == DOCS and api.refused == 0  # the API checks the signature over q=since:2024-01-01
    assert api.asked[0] == {"q": "since:2024-01-01", "scroll": "5m"}
