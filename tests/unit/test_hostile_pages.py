"""Hostile answers to the HTTP client and the CSV reader: redirects to other hosts, other
schemes, pages that decode to far more than their size, lines without end."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest_workers.core.errors import PermanentError, UnreadableBody
from ingest_workers.core.models import SourceSpec
from ingest_workers.sources.base import SourceContext
from ingest_workers.sources.csv_file import CsvSource
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import HttpJsonSource
from tests.helpers import answer, serving


class Recorder(ThreadingHTTPServer):
    """Answers every GET with ``answer`` (status, headers, body) and records the headers it got."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer: tuple[int, dict[str, str], bytes] = (200, {"Content-Type": "application/json"}, b"[]")
        self.seen: list[tuple[str, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.path, dict(self.headers)))
        status, headers, body = self.server.answer
        if self.path.startswith("/final"):
            status, headers, body = 200, {"Content-Type": "application/json"}, b'{"items": [1]}'
        answer(self, status, headers, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    pair = (Recorder(), Recorder())
    with serving(*pair):
        yield pair


def client(**options: int) -> HttpClient:
    return HttpClient(make_session(), (2, 2), RetryPolicy(max_attempts=2, initial_backoff=0.01),
                      sleep=lambda seconds: None, **options)


def test_a_redirect_to_another_host_is_refused_and_the_credentials_stay(servers: tuple[Recorder, Recorder]) -> None:
    """Issue item 2: a 302 to another origin must not carry the custom auth header there."""
    source, elsewhere = servers
    source.answer = (302, {"Location": f"{elsewhere.url}/final"}, b"")
    spec = SourceSpec(name="s", kind="http_json", dataset="products", url=f"{source.url}/products",
                      auth_env="TOKEN", auth_header="X-Api-Key", pagination="none")
    with pytest.raises(PermanentError, match="another origin") as caught:
        list(HttpJsonSource(spec, SourceContext(client(), {"TOKEN": "top-secret"})).stream())
    assert elsewhere.seen == []
    assert "top-secret" not in str(caught.value)


def test_a_redirect_within_the_origin_is_followed_with_the_credentials(servers: tuple[Recorder, Recorder]) -> None:
    source, _ = servers
    source.answer = (301, {"Location": "/final?x=1"}, b"")
    assert client().get_json(f"{source.url}/products", headers={"X-Api-Key": "top-secret"}) == {"items": [1]}
    assert [path for path, _ in source.seen] == ["/products", "/final?x=1"]
    assert source.seen[1][1]["X-Api-Key"] == "top-secret"


def test_a_redirect_loop_ends(servers: tuple[Recorder, Recorder]) -> None:
    source, _ = servers
    source.answer = (307, {"Location": "/products"}, b"")
    with pytest.raises(PermanentError, match="redirects"):
        client().get_json(f"{source.url}/products")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"])
def test_only_http_and_https_are_fetched(url: str) -> None:
    with pytest.raises(PermanentError, match="only http and https"):
        client().get_json(url)


def test_a_page_of_millions_of_tiny_objects_is_refused_before_it_is_decoded(
        servers: tuple[Recorder, Recorder]) -> None:
    """Issue item 5: 9 MB of ``{}`` decodes to hundreds of MB; it is refused without decoding."""
    source, _ = servers
    body = b'{"items": [' + b"{}," * 3_000_000 + b"{}]}"
    source.answer = (200, {"Content-Type": "application/json"}, body)
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableBody, match="values") as caught:
            client(max_body_bytes=16 * 1024 * 1024).get_json(f"{source.url}/products")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "more than 500000 JSON values" in caught.value.reason
    assert peak < 4 * len(body)  # the body and its chunks, never the decoded page


def test_a_page_deeper_than_the_decoder_keeps_its_other_records(servers: tuple[Recorder, Recorder]) -> None:
    source, _ = servers
    body = b'{"items": [{"id": 1}, {"id": 2, "x": ' + b"[" * 5000 + b"]" * 5000 + b'}, {"id": 3}]}'
    source.answer = (200, {"Content-Type": "application/json"}, body)
    spec = SourceSpec(name="s", kind="http_json", dataset="products", url=f"{source.url}/p", pagination="none")
    records = list(HttpJsonSource(spec, SourceContext(client(max_nesting=20))).stream())
    assert [records[0], records[2]] == [{"id": 1}, {"id": 3}]
    assert records[1].raw == {"id": 2, "x": "<nested too deep>"}
    assert records[1].reason == "page 1: record nested deeper than 20 levels (max_nesting)"
    json.dumps(records[1].raw)  # what is stored for audit serialises


def test_a_csv_line_over_the_cap_is_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("sensor_id,value\na,1\n" + "b" * 200_000 + ",2\nc,3\n", encoding="utf-8")
    spec = SourceSpec(name="s", kind="csv", dataset="sensors", url=str(path), options={"max_line_length": 1000})
    rows = list(CsvSource(spec, SourceContext(client())).stream())
    assert rows[0] == {"sensor_id": "a", "value": "1"} and rows[2] == {"sensor_id": "c", "value": "3"}
    assert "max_line_length" in rows[1]["csv_error"]
