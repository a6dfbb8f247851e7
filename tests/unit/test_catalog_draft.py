"""`ingest catalog draft` against every feed of the mock source and the fixture API: where
the records are, how each pages, the column types and the key it proposes."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.models import SourceSpec
from ingest_workers.datasets.infer import column_type, infer_columns, key_candidate
from ingest_workers.sources.draft import default_name
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.fixture_api import API_KEY, PASSWORD, TOKEN, USER, FixtureApi
from tests.oauth_fixture import CLIENT_ID, CLIENT_SECRET, OAuthFixture

# feed -> what a person reading the feed's documentation would write
MOCK_FEEDS: dict[str, dict[str, Any]] = {
    "/products": {"records_path": "items", "pagination": "page", "page_param": "page",
                  "page_size_param": "per_page", "key": ["id"]},
    "/v2/catalog": {"records_path": "data.products", "pagination": "offset", "offset_param": "offset",
                    "page_size_param": "limit", "key": ["sku"]},
    "/shop-c/products": {"records_path": "results", "pagination": "cursor", "token_param": "page_token",
                         "next_token_path": "paging.next", "page_size_param": "page_size", "key": ["product_id"]},
    "/quotes": {"records_path": "data", "pagination": "link", "page_size_param": "limit", "key": ["symbol", "time"]},
    "/twitter/tweets": {"records_path": "data", "pagination": "cursor", "token_param": "pagination_token",
                        "next_token_path": "meta.next_token", "page_size_param": "max_results", "key": ["id"]},
    "/telegram/getUpdates": {"records_path": "result", "pagination": "offset", "offset_param": "offset",
                             "page_size_param": "limit", "key": ["update_id"]},
    "/posts": {"records_path": "", "pagination": "page", "page_param": "_page", "page_size_param": "_limit",
               "key": ["id"]},
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = MockServer("127.0.0.1", 0, MockConfig(records=1000))
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def draft(url: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["catalog", "draft", url, *args], env=env)
    assert result.exit_code == 0, result.output
    return tomllib.loads(result.output)


@pytest.mark.parametrize("path", list(MOCK_FEEDS))
def test_the_draft_of_each_mock_feed_finds_its_records_paging_and_key(mock: MockServer, path: str) -> None:
    fragment = draft(f"{mock.url}{path}", "--name", "feed")
    dataset, source = fragment["datasets"]["feed"], fragment["sources"]["feed"]
    expected = MOCK_FEEDS[path]
    assert source["kind"] == "http_json" and source["dataset"] == "feed" and source["url"] == f"{mock.url}{path}"
    for key, value in expected.items():
        if key != "key":
            assert source.get(key, getattr(SourceSpec, key)) == value, key
    assert dataset["key"] == expected["key"]
    for column in expected["key"]:
        assert dataset["columns"][column]["required"] is True


def test_the_draft_of_the_csv_feed_is_a_csv_source(mock: MockServer) -> None:
    fragment = draft(f"{mock.url}/sensors.csv")
    assert fragment["sources"]["my_sensors"]["kind"] == "csv"
    assert fragment["datasets"]["my_sensors"]["key"] == ["sensor_id", "ts"]
    columns = fragment["datasets"]["my_sensors"]["columns"]
    assert (columns["value"], columns["unit"]) == ("numeric", "text")


def test_nested_objects_become_columns_read_from_their_dotted_path(mock: MockServer) -> None:
    fragment = draft(f"{mock.url}/telegram/getUpdates")
    source, columns = fragment["sources"]["get_updates"], fragment["datasets"]["get_updates"]["columns"]
    assert source["fields"]["message_from_username"] == "message.from.username"
    assert columns["message_from_username"] == "text" and columns["message_date"] == "integer"


def test_the_draft_of_the_fixture_api_shapes(tmp_path: Any) -> None:
    api = FixtureApi().start()
    try:
        env = {"CRM": TOKEN, "BU": USER, "BP": PASSWORD}
        crm = draft(f"{api.url}/api/customers?size=10", "--token-env", "CRM", env=env)
        source = crm["sources"]["customers"]
        assert (source["pagination"], source["next_url_path"]) == ("next_url", "_links.next.href")
        assert source["auth"] == {"kind": "bearer", "token_env": "CRM"} and "params" not in source
        assert crm["datasets"]["customers"]["columns"]["address_lines"] == "text[]"
        billing = draft(f"{api.url}/v1/invoices", "--basic-env", "BU,BP", env=env)
        source = billing["sources"]["invoices"]
        assert (source["pagination"], source.get("after_param", "starting_after")) == ("after_last", "starting_after")
        assert "lines_data" not in billing["datasets"]["invoices"]["columns"]  # a list of objects: nested
        lines = billing["datasets"]["invoices_lines_data"]
        assert (lines["nested_in"], lines["path"], lines["key"], lines["fields"]) == (
            "invoices", "lines.data", ["item_id"], {"item_id": "id"})  # "id" is the invoice's key column
        assert lines["columns"]["amount"] == "integer"
    finally:
        api.stop()
    output = CliRunner().invoke(main, ["catalog", "draft", f"{api.url}/x", "--token-env", "NOPE"], env={}).output
    assert "NOPE is not set" in output


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3], "integer"),
    ([1.5, 2, "call us"] + [3.25] * 60, "numeric"),
    (["2026-01-01T00:00:00Z", "2026-01-02T10:00:00+01:00"], "timestamp"),
    (["2026-01-01", "2026-02-28"], "date"),
    (["$1,299.00", "12,50 EUR"], "money"),
    (["0042", "17"], "text"),
    ([["a"], ["b", "c"]], "text[]"),
    ([[{"a": 1}]], "json"),
    ([True, False], "boolean"),
    (["a", 1, {"x": 1}], "json"),
])
def test_column_types_from_the_values_seen(values: list[Any], expected: str) -> None:
    assert column_type(values) == expected


def test_no_key_is_proposed_when_nothing_is_unique() -> None:
    records = [{"name": "a", "n": 1}, {"name": "a", "n": 1}]
    assert key_candidate(infer_columns(records), records) == []


def test_an_api_key_in_the_query_is_sent_and_named_but_never_drafted() -> None:
    api = FixtureApi().start()
    try:
        result = CliRunner().invoke(main, ["catalog", "draft", f"{api.url}/linked/events", "--api-key-env",
                                           "api_key=EVENTS_KEY", "--api-key-in", "query"], env={"EVENTS_KEY": API_KEY})
        assert result.exit_code == 0, result.output
        assert API_KEY not in result.output
        source = tomllib.loads(result.output)["sources"]["events"]
        assert source["pagination"] == "link" and "params" not in source
        assert source["auth"] == {"kind": "api_key", "name": "api_key", "location": "query", "value_env": "EVENTS_KEY"}
        assert all(f"api_key={API_KEY}" in path for path, _ in api.data.requests)
    finally:
        api.stop()


@pytest.mark.parametrize(("url", "name"), [
    ("https://api.example/v2/getUpdates", "get_updates"),
    ("https://api.example/shop-c/products", "shop_c_products"),  # "products" is a built-in dataset
    ("https://api.example/products", "my_products"),
    ("https://api.example/files/sensors.csv", "files_sensors"),
    ("https://api.example/api/customers?size=10", "customers"),
])
def test_default_names_come_from_the_path_and_avoid_the_built_in_datasets(url: str, name: str) -> None:
    assert default_name(url) == name


def test_the_key_prefers_id_then_the_shallowest_id_like_field() -> None:
    records = [{"uid": i, "id": f"r{i}", "owner": {"user_id": i % 2}} for i in range(20)]
    assert key_candidate(infer_columns(records), records) == ["id"]
    records = [{"message": {"message_id": i}, "update_id": 100 + i} for i in range(20)]
    assert key_candidate(infer_columns(records), records) == ["update_id"]


def test_columns_get_snake_case_names_and_never_a_lineage_name() -> None:
    columns = infer_columns([{"productId": 1, "source": "web", "raw": "x", "a": {"bC": {"d": 1, "e": {"f": 1}}}}])
    assert [(c.name, c.path, c.type) for c in columns] == [
        ("product_id", "productId", "integer"), ("source_value", "source", "text"), ("raw_value", "raw", "text"),
        ("a_b_c_d", "a.bC.d", "integer"), ("a_b_c_e", "a.bC.e", "json")]


def test_the_draft_of_an_oauth2_api_gets_a_token_and_names_the_variables_only() -> None:
    oauth = OAuthFixture()
    try:
        env = {"CRM_ID": CLIENT_ID, "CRM_SECRET": CLIENT_SECRET}
        fragment = draft(oauth.api_url, "--name", "contacts", "--oauth2-client-credentials", oauth.token_url,
                         "--client-id-env", "CRM_ID", "--client-secret-env", "CRM_SECRET", "--scope", "contacts.read",
                         env=env)
        source = fragment["sources"]["contacts"]
        assert source["auth"] == {"kind": "oauth2_client_credentials", "token_url": oauth.token_url,
                                  "client_id_env": "CRM_ID", "client_secret_env": "CRM_SECRET",
                                  "scope": "contacts.read"}
        assert source["records_path"] == "items" and oauth.state.unauthorized == 0
        assert len(oauth.state.token_requests) == 1 and oauth.state.api_requests
        missing = CliRunner().invoke(main, ["catalog", "draft", oauth.api_url, "--oauth2-client-credentials",
                                            oauth.token_url, "--client-id-env", "CRM_ID", "--client-secret-env",
                                            "CRM_SECRET"], env={"CRM_ID": CLIENT_ID})
        assert missing.exit_code == 1 and "--client-secret-env: environment variable CRM_SECRET is not set" in \
            missing.output
    finally:
        oauth.close()
