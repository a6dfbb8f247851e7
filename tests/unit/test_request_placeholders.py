"""{since}, {until}, {page}, {offset}, {cursor} in a request: filled per request, left out without a
value, refused when unknown; POST bodies paged in the body and resent as they were on a retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import SourceSpec
from ingest_workers.sources import RangedSource, SourceContext
from ingest_workers.sources.auth import ApiRequest
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import http_json_source
from ingest_workers.sources.templates import fill, filled_body, filled_request, request_values_in
from tests.helpers import answer, serving
from tests.oauth_fixture import CLIENT_ID, CLIENT_SECRET, SCOPE, OAuthFixture, contact
from tests.requests_fixture import RequestsApi, RequestsData, deal

VALUES = {"since": "2024-01-01T00:00:00Z", "until": None, "page": 3}


def test_fill_puts_values_in_text_and_keeps_a_lone_value_s_type() -> None:
    assert fill("lastSeen:>{since}", VALUES) == "lastSeen:>2024-01-01T00:00:00Z"
    assert fill("{page}", VALUES) == 3  # a page number stays a number in a JSON body
    assert fill("updated_at[between]={since},{until}", VALUES) is None  # no until: left out
    assert fill("/items/{since}", VALUES, in_url=True) == "/items/2024-01-01T00%3A00%3A00Z"
    assert fill("{parent.id} {other}", VALUES) == "{parent.id} {other}"  # not a request value: as written


def test_a_body_is_filled_at_any_depth_and_keys_without_a_value_are_left_out() -> None:
    body = {"filter": {"after": "{since}", "before": "{until}"}, "page": "{page}", "size": 10,
            "tags": ["a", "{page}"], "none": None}
    assert filled_body(body, VALUES) == {"filter": {"after": "2024-01-01T00:00:00Z"}, "page": 3, "size": 10,
                                         "tags": ["a", 3], "none": None}


def test_the_paging_position_moves_from_the_query_into_its_placeholder() -> None:
    spec = SourceSpec(name="s", kind="http_json", dataset="posts", url="http://h/search", method="POST",
                      body={"page": "{page}", "q": "x"}, params={"f": "since:{since}"})
    request = ApiRequest(spec.url, {"page": 2, "f": "since:{since}", "per_page": 10}, {}, "POST", spec.body)
    filled = filled_request(request, spec, {"since": "S", "until": None}, request_values_in(spec))
    assert (filled.params, filled.body, filled.method) == ({"f": "since:S", "per_page": 10}, {"page": 2, "q": "x"},
                                                          "POST")
    assert request_values_in(spec) == {"page", "since"}


CATALOG = """
[sources.deals]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/deals"
cursor_field = "updated_at"
"""


def load(tmp_path: Path, extra: str) -> SourceSpec:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG + extra, encoding="utf-8")
    return load_catalog(path, {}).sources["deals"]


@pytest.mark.parametrize(("extra", "message"), [
    ('params = { q = "lastSeen:>{sinse}" }', r"key 'params.q': unknown placeholder \{sinse\}"),
    ('headers = { X-Since = "{since.day}" }', r"key 'headers.X-Since': unknown placeholder \{since.day\}"),
    ('method = "POST"\nbody = { f = { after = "{after}" } }', r"key 'body': unknown placeholder \{after\}"),
    ('method = "PUT"', "key 'method': expected \"GET\" or \"POST\""),
    ('body = { page = "{page}" }', "key 'body': a JSON body is a table sent with method = \"POST\""),
    ('window = "7d"\ninitial_value = "2024-01-01T00:00:00Z"', r"key 'window': each window ends at \{until\}"),
])
def test_the_catalog_refuses_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, extra + "\n")


def test_an_environment_reference_is_no_placeholder(tmp_path: Path) -> None:
    spec = load(tmp_path, 'params = { key = "${api_key}", q = "since:{since}" }\n')
    assert spec.params == {"key": "${api_key}", "q": "since:{since}"}  # kept for the worker to expand


def test_a_graphql_query_keeps_its_braces_and_a_window_may_end_at_a_placeholder(tmp_path: Path) -> None:
    spec = load(tmp_path, 'method = "POST"\nwindow = "1d"\ninitial_value = "2024-01-01T00:00:00Z"\n'
                          'body = { query = "query { deals {id} }", variables = { before = "{until}" } }\n')
    assert spec.body == {"query": "query { deals {id} }", "variables": {"before": "{until}"}}


@pytest.fixture
def api() -> Iterator[RequestsApi]:
    server = RequestsApi(RequestsData(start=datetime(2024, 1, 1, tzinfo=UTC), deals=25, search_cap=1000))
    with serving(server):
        yield server


def read(spec: SourceSpec, since: Any = None, until: Any = None) -> list[Any]:
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    return list(http_json_source(spec, SourceContext(client, {}, since=since, until=until)).stream())


def test_a_post_search_is_paged_in_its_body(api: RequestsApi) -> None:
    spec = SourceSpec(name="s", kind="http_json", dataset="posts", url=f"{api.url}/v3/deals/search",
                      method="POST", records_path="results", page_size=10, page_size_param="", concurrency=1,
                      body={"filter": {"updated_after": "{since}", "updated_before": "{until}"},
                            "page": "{page}", "size": 10})
    assert read(spec, since="2024-01-02T00:00:00Z") == [deal(i, api.data.start) for i in range(4, 25)]
    bodies = [body for _, _, body in api.data.requests]
    assert [b["page"] for b in bodies] == [1, 2, 3]
    assert bodies[0] == {"filter": {"updated_after": "2024-01-02T00:00:00Z"}, "page": 1, "size": 10}
    assert all(path == "/v3/deals/search" for _, path, _ in api.data.requests)  # nothing in the query


def test_graphql_pages_by_its_end_cursor(api: RequestsApi) -> None:
    spec = SourceSpec(name="s", kind="http_json", dataset="posts", url=f"{api.url}/graphql", method="POST",
                      records_path="data.deals.nodes", pagination="cursor", page_size_param="",
                      next_token_path="data.deals.pageInfo.endCursor",
                      body={"query": "{ deals(first: $first) { nodes { id } } }",
                            "variables": {"first": 10, "after": "{cursor}"}})
    assert read(spec) == [deal(i, api.data.start) for i in range(25)]
    afters = [body["variables"].get("after") for _, _, body in api.data.requests]
    assert afters == [None, "cursor:10", "cursor:20", "cursor:25"]
    assert "after" not in api.data.requests[0][2]["variables"]  # the first page: no cursor, the key is left out


def test_a_retry_resends_the_same_body() -> None:
    """A 503 and then the page: the second POST carries the body of the first."""
    seen: list[bytes] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            status, body = (503, b"{}") if len(seen) == 1 else (200, b'{"results": []}')
            answer(self, status, {"Content-Type": "application/json"}, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    with serving(server):
        spec = SourceSpec(name="s", kind="http_json", dataset="posts", method="POST", records_path="results",
                          url=f"http://127.0.0.1:{server.server_address[1]}/search", pagination="none",
                          body={"since": "{since}"})
        client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=3, max_backoff=0.01))
        assert list(http_json_source(spec, SourceContext(client, {}, since="S")).stream()) == []
    assert [json.loads(b) for b in seen] == [{"since": "S"}, {"since": "S"}]


def test_one_source_reads_every_window_of_a_job_with_one_oauth2_token() -> None:
    """The pipeline points the same source at each window (RangedSource): its token is kept."""
    oauth = OAuthFixture()
    try:
        auth = {"kind": "oauth2_client_credentials", "token_url": oauth.token_url, "client_id_env": "ID",
                "client_secret_env": "SECRET", "scope": SCOPE}
        spec = SourceSpec(name="crm", kind="http_json", dataset="posts", url=oauth.api_url, page_size=50,
                          auth=auth, since_param="since", until_param="until", concurrency=1)
        client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
        env = {"ID": CLIENT_ID, "SECRET": CLIENT_SECRET}
        source = http_json_source(spec, SourceContext(client, env, since="A", until="B"))
        assert isinstance(source, RangedSource)
        assert list(source.stream()) == [contact(i) for i in range(45)]
        source.read_range("B", "C")
        assert list(source.stream()) == [contact(i) for i in range(45)]
        asked = [path for path, _ in oauth.state.api_requests]
        assert asked == ["/v3/contacts?since=A&until=B&per_page=50&page=1",
                         "/v3/contacts?since=B&until=C&per_page=50&page=1"]
        assert len(oauth.state.token_requests) == 1
    finally:
        oauth.close()
