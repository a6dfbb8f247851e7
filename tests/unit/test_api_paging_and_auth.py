"""next_url and after_last paging, relative links, the origin check, static params and
headers, and the auth kinds, against the fixture API (a real local HTTP server)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.errors import ConfigError, PermanentError
from ingest_workers.core.models import Rejected, SourceSpec
from ingest_workers.sources import SourceContext
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import HttpJsonSource
from tests.fixture_api import API_KEY, PASSWORD, TOKEN, USER, FixtureApi, customer, event, invoice

ENV = {"CRM_TOKEN": TOKEN, "BILLING_USER": USER, "BILLING_PASSWORD": PASSWORD, "EVENTS_KEY": API_KEY}


@pytest.fixture
def api() -> Iterator[FixtureApi]:
    server = FixtureApi().start()
    yield server
    server.stop()


def stream(spec: SourceSpec, env: dict[str, str] | None = None) -> list[Any]:
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    return list(HttpJsonSource(spec, SourceContext(client, ENV if env is None else env)).stream())


def customers_spec(api: FixtureApi, **changes: Any) -> SourceSpec:
    values: dict[str, Any] = dict(name="crm", kind="http_json", dataset="posts", url=f"{api.url}/api/customers",
                                  records_path="_embedded.customers", pagination="next_url",
                                  next_url_path="_links.next.href", page_size_param="size", page_size=10,
                                  auth={"kind": "bearer", "token_env": "CRM_TOKEN"})
    return SourceSpec(**{**values, **changes})


def invoices_spec(api: FixtureApi, **changes: Any) -> SourceSpec:
    values: dict[str, Any] = dict(name="billing", kind="http_json", dataset="posts", url=f"{api.url}/v1/invoices",
                                  records_path="data", pagination="after_last", page_size_param="limit",
                                  page_size=10, auth={"kind": "basic", "username_env": "BILLING_USER",
                                                      "password_env": "BILLING_PASSWORD"})
    return SourceSpec(**{**values, **changes})


def test_next_url_follows_a_relative_hal_link_to_the_end(api: FixtureApi) -> None:
    assert stream(customers_spec(api)) == [customer(i) for i in range(53)]
    paths = [path for path, _ in api.data.requests]
    assert paths == ["/api/customers?size=10"] + [f"/api/customers?page={n}&size=10" for n in range(2, 7)]
    assert all(headers["Authorization"] == f"Bearer {TOKEN}" for _, headers in api.data.requests)


def test_a_next_url_on_another_origin_is_refused_before_any_request_goes_there(api: FixtureApi) -> None:
    other = FixtureApi().start()
    try:
        api.data.next_origin = other.url
        with pytest.raises(PermanentError, match="leaves") as caught:
            stream(customers_spec(api))
        assert other.data.requests == [] and len(api.data.requests) == 1
        assert TOKEN not in str(caught.value)
    finally:
        other.stop()


def test_after_last_asks_after_the_last_records_id_while_has_more(api: FixtureApi) -> None:
    assert stream(invoices_spec(api)) == [invoice(i) for i in range(47)]
    paths = [path for path, _ in api.data.requests]
    assert paths == ["/v1/invoices?limit=10"] + [f"/v1/invoices?limit=10&starting_after=in_{n:06d}"
                                                 for n in (9, 19, 29, 39)]
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert {headers["Authorization"] for _, headers in api.data.requests} == {basic}


def test_after_last_without_has_more_stops_at_a_short_page(api: FixtureApi) -> None:
    assert stream(invoices_spec(api, has_more_path="")) == [invoice(i) for i in range(47)]


def test_after_last_names_a_missing_has_more_and_a_missing_after_field(api: FixtureApi) -> None:
    with pytest.raises(PermanentError, match="has_more_path 'more' is missing"):
        stream(invoices_spec(api, has_more_path="more"))
    with pytest.raises(PermanentError, match="after_field 'number'"):
        stream(invoices_spec(api, after_field="number"))


def test_a_relative_link_header_resolves_against_the_page_and_keeps_the_query_api_key(api: FixtureApi) -> None:
    spec = SourceSpec(name="events", kind="http_json", dataset="posts", url=f"{api.url}/linked/events",
                      records_path="", pagination="link", page_size=10,
                      auth={"kind": "api_key", "name": "api_key", "location": "query", "value_env": "EVENTS_KEY"})
    assert stream(spec) == [event(i) for i in range(25)]
    paths = [path for path, _ in api.data.requests]
    assert paths == [f"/linked/events?per_page=10&api_key={API_KEY}",
                     f"/linked/events?page=2&per_page=10&api_key={API_KEY}",
                     f"/linked/events?page=3&per_page=10&api_key={API_KEY}"]


def test_static_params_and_headers_go_with_every_request(api: FixtureApi) -> None:
    spec = customers_spec(api, params={"expand": "address", "active": True}, headers={"Accept-Version": "2"})
    stream(spec)
    for path, headers in api.data.requests:
        assert "expand=address" in path and "active=true" in path
        assert headers["Accept-Version"] == "2"


def test_api_key_in_a_header(api: FixtureApi) -> None:
    spec = customers_spec(api, auth={"kind": "api_key", "name": "X-Api-Key", "value_env": "EVENTS_KEY"})
    with pytest.raises(PermanentError, match="HTTP 401"):
        stream(spec)
    assert api.data.requests[0][1]["X-Api-Key"] == API_KEY


def test_the_older_auth_env_still_works(api: FixtureApi) -> None:
    spec = customers_spec(api, auth=None, auth_env="RAW", auth_header="Authorization")
    assert len(stream(spec, {"RAW": f"Bearer {TOKEN}"})) == 53


def test_the_secret_is_read_from_the_environment_for_each_request(api: FixtureApi) -> None:
    env = dict(ENV)
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1))
    records = HttpJsonSource(customers_spec(api), SourceContext(client, env)).stream()
    next(records)
    env["CRM_TOKEN"] = "rotated"  # the next page goes out with the new value
    with pytest.raises(PermanentError, match="HTTP 401"):
        list(records)
    assert [h["Authorization"] for _, h in api.data.requests] == [f"Bearer {TOKEN}", "Bearer rotated"]


def test_a_missing_secret_names_the_variable_and_the_key(api: FixtureApi) -> None:
    with pytest.raises(ConfigError, match=r"BILLING_PASSWORD \(auth.password_env\) is not set"):
        stream(invoices_spec(api), {"BILLING_USER": USER})
    assert api.data.requests == []


CATALOG = """
[sources.crm]
kind = "http_json"
dataset = "posts"
url = "https://crm.example/api/customers"
pagination = "{pagination}"
{extra}
"""


@pytest.mark.parametrize(("extra", "message"), [
    ('auth = { kind = "bearer", token = "abc" }', r"'auth.token': not a key of auth kind 'bearer'; name the "
                                                  "environment variable holding it with token_env"),
    ('auth = { kind = "oauth" }', r"'auth.kind': unknown auth kind 'oauth'; known: bearer, basic, api_key, "
                                  "oauth2_client_credentials, oauth2_refresh_token"),
    ('auth = { kind = "oauth2_client_credentials", token_url = "https://a/t", client_id_env = "I", '
     'client_secret = "s3cret" }', r"'auth.client_secret': not a key of auth kind 'oauth2_client_credentials'; "
                                   "name the environment variable holding it with client_secret_env"),
    ('auth = { kind = "oauth2_refresh_token", token_url = "https://a/t", client_id_env = "I", '
     'client_secret_env = "S" }', r"auth kind 'oauth2_refresh_token' needs 'auth.refresh_token_env'"),
    ('auth = { kind = "oauth2_client_credentials", token_url = "https://a/t", client_id_env = "I", '
     'client_secret_env = "S", client_auth = "header" }', r"'auth.client_auth': expected one of basic, body"),
    ('auth = { kind = "oauth2_client_credentials", token_url = "ftp://a/t", client_id_env = "I", '
     'client_secret_env = "S" }', r"'auth.token_url': expected an http\(s\) URL"),
    ('auth = { kind = "basic", username_env = "U" }', r"needs 'auth.password_env'"),
    ('auth = { kind = "api_key", name = "k", value_env = "K", location = "cookie" }', r"'auth.location'"),
    ('auth = { kind = "bearer", token_env = "not a name" }', r"'auth.token_env': expected the name of an environment"),
    ('auth = { kind = "bearer", token_env = "T" }\nauth_env = "T"', "either 'auth' or 'auth_env'"),
    ('headers = { Accept = 2 }', r"'headers.Accept': expected text"),
    ('params = { expand = ["a"] }', r"'params.expand': expected text, a number or a boolean"),
])
def test_the_catalog_refuses_bad_auth_params_and_headers(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(pagination="next_url", extra=extra))
    with pytest.raises(ConfigError, match=message):
        load_catalog(path, {})


def test_the_catalog_takes_the_new_paginations_and_auth_kinds(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(pagination="after_last", extra='after_param = "after"\nhas_more_path = "more"\n'
                                   'auth = { kind = "api_key", name = "key", location = "query", value_env = "K" }\n'
                                   'params = { expand = "lines", limit = 100 }\nheaders = { Accept = "json" }'))
    spec = load_catalog(path, {}).sources["crm"]
    assert (spec.pagination, spec.after_param, spec.has_more_path) == ("after_last", "after", "more")
    assert spec.auth == {"kind": "api_key", "name": "key", "location": "query", "value_env": "K"}
    assert spec.params == {"expand": "lines", "limit": 100} and spec.headers == {"Accept": "json"}


def test_a_next_url_naming_the_page_itself_stops_the_source(api: FixtureApi) -> None:
    # The first page is /api/customers?page=1&size=10, and its self link names exactly that URL.
    spec = customers_spec(api, url=f"{api.url}/api/customers?page=1", next_url_path="_links.self.href")
    with pytest.raises(PermanentError, match="links to the same page twice"):
        stream(spec)
    assert len(api.data.requests) == 1


def test_after_last_goes_on_when_the_last_record_is_refused_as_too_deep(api: FixtureApi) -> None:
    client = HttpClient(make_session(), (2, 5), RetryPolicy(max_attempts=1), max_nesting=2)
    items = list(HttpJsonSource(invoices_spec(api), SourceContext(client, ENV)).stream())
    assert len(items) == 47 and all(isinstance(item, Rejected) for item in items)  # lines.data is 4 levels deep
    assert [item.raw["id"] for item in items] == [invoice(i)["id"] for i in range(47)]
