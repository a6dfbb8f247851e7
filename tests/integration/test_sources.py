"""Every source kind and pagination style against the real mock server, and the three
product schemas landing in one unified shape."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.catalog import load_catalog
from ingest_workers.core.models import Lineage, Record, Rejected, SourceSpec
from ingest_workers.datasets import BUILTIN
from ingest_workers.sources import SourceContext, make_source
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.synthetic import SensorPlan, reading
from ingest_workers.stages.base import compose
from ingest_workers.stages.registry import source_stages
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.mock_sources import MockConfig, MockServer, sensors
from ingest_workers.testing.mock_sources.feed import EPOCH
from tests.helpers import broken_products, resolved

pytestmark = pytest.mark.integration

LINEAGE = Lineage("test", "run-1", "job-1", "2026-01-01T00:00:00+00:00")


def catalog_spec(server: MockServer, name: str, **changes: Any) -> SourceSpec:
    spec = resolved(load_catalog(DEMO_CATALOG, {}).sources[name], {"INGEST_MOCK_URL": server.url})
    return SourceSpec(**{**spec.to_dict(), **changes})


def fetch(spec: SourceSpec, since: Any = None, until: Any = None, concurrency: int = 1) -> tuple[list[Any], list[str]]:
    """Every raw record the source yields, and the status of each HTTP request it made
    (fetched one page at a time unless ``concurrency`` says otherwise)."""
    statuses: list[str] = []
    client = HttpClient(make_session(), (5, 30), RetryPolicy(max_attempts=2), on_response=statuses.append)
    context = SourceContext(client, {}, since, until, fetch_concurrency=concurrency)
    return list(make_source(spec, context).stream()), statuses


def rows(spec: SourceSpec, raw: list[Any]) -> list[Record | Rejected]:
    return list(compose(source_stages(spec, BUILTIN[spec.dataset], LINEAGE), (Record(r) for r in raw)))


# Which record each feed serves at position i, by the key that names it (the fixture's numbering; breakage off).
FIRST_QUOTE = ("AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "JPM", "V", "JNJ", "WMT", "PG", "XOM", "KO",
               "PEP", "DIS", "NFLX", "INTC", "AMD", "ORCL", "IBM", "GME", "BRK.B", "DLST")  # each minute, in order
SERVED: dict[str, tuple[Callable[[Any], Any], Callable[[int], Any]]] = {  # feed: (key of a record, key of record i)
    "/products": (lambda r: r["id"], lambda i: f"SKU-{i:08d}"),
    "/v2/catalog": (lambda r: r["sku"], lambda i: f"B-{i:08d}"),
    "/shop-c/products": (lambda r: r["productId"], lambda i: 700_000 + i),
    "/quotes": (lambda r: (r["symbol"], r["time"]),
                lambda i: (FIRST_QUOTE[i % 24], f"{(EPOCH + timedelta(minutes=i // 24)).isoformat()[:19]}Z")),
    "/twitter/tweets": (lambda r: r["id"], lambda i: str(1_790_000_000_000_000_000 + i)),
    "/telegram/getUpdates": (lambda r: r["update_id"], lambda i: 900_000 + i),
    "/posts": (lambda r: r["id"], lambda i: i + 1),
}
TIME_OF = {"/products": "updated_at", "/shop-c/products": "modified", "/quotes": "time",
           "/twitter/tweets": "created_at"}


def keys(path: str, raw: list[Any]) -> list[Any]:
    return [SERVED[path][0](r) for r in raw]


def served_keys(path: str, indexes: range) -> list[Any]:
    return [SERVED[path][1](i) for i in indexes]


PAGINATED = [  # source, feed, requests for 1000 records at page_size 300
    ("shop_products", "/products", 4),  # page numbers: 300, 300, 300, 100 (short page: done)
    ("shop_b_catalog", "/v2/catalog", 4),  # offset/limit
    ("shop_c_products", "/shop-c/products", 4),  # cursor token: the last page has none
    ("market_quotes", "/quotes", 4),  # Link rel=next: the last page has none
    ("twitter_mentions", "/twitter/tweets", 4),
    ("telegram_mentions", "/telegram/getUpdates", 4),
    ("placeholder_posts", "/posts", 4),  # a top-level list, _page/_limit
]


@pytest.mark.parametrize(("name", "path", "requests"), PAGINATED, ids=[p[0] for p in PAGINATED])
def test_each_pagination_style_yields_every_record_once_in_order(
    mock_server: MockServer, name: str, path: str, requests: int,
) -> None:
    mock_server.config = MockConfig(records=1000, invalid_every=0)
    raw, statuses = fetch(catalog_spec(mock_server, name, page_size=300))
    assert keys(path, raw) == served_keys(path, range(1000))
    assert statuses == ["2xx"] * requests


@pytest.mark.parametrize("concurrency", [2, 4, 16])
@pytest.mark.parametrize(("name", "path"), [("shop_products", "/products"), ("shop_b_catalog", "/v2/catalog"),
                                            ("placeholder_posts", "/posts")])
def test_pages_fetched_concurrently_come_out_in_order_with_every_record_once(
        mock_server: MockServer, name: str, path: str, concurrency: int) -> None:
    mock_server.config = MockConfig(records=2000, latency=0.01, invalid_every=0)
    raw, statuses = fetch(catalog_spec(mock_server, name, page_size=100), concurrency=concurrency)
    assert keys(path, raw) == served_keys(path, range(2000))
    assert 21 <= len(statuses) <= 21 + concurrency  # 20 full pages and the empty one, plus any in flight with it


@pytest.mark.parametrize("name", ["shop_products", "shop_b_catalog", "shop_c_products", "market_quotes"])
def test_a_full_last_page_ends_the_stream_too(mock_server: MockServer, name: str) -> None:
    mock_server.config = MockConfig(records=600)
    raw, _ = fetch(catalog_spec(mock_server, name, page_size=300))
    assert len(raw) == 600


@pytest.mark.parametrize(("name", "path"), [("shop_products", "/products"), ("shop_c_products", "/shop-c/products"),
                                            ("market_quotes", "/quotes"), ("twitter_mentions", "/twitter/tweets")])
def test_since_and_until_ask_the_api_for_a_time_range(mock_server: MockServer, name: str, path: str) -> None:
    mock_server.config = MockConfig(records=1000, invalid_every=0)
    spec = catalog_spec(mock_server, name, page_size=100)
    every, _ = fetch(spec)

    def time(record: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(record[TIME_OF[path]]).astimezone(UTC)

    since, until = time(every[250]), time(every[700])
    raw, _ = fetch(spec, since.isoformat(), until.isoformat())
    assert raw == [r for r in every if since <= time(r) < until]
    assert len(every) == 1000 and 0 < len(raw) < 1000


def test_a_last_id_cursor(mock_server: MockServer) -> None:
    raw, _ = fetch(catalog_spec(mock_server, "placeholder_posts"), since=990)
    assert [r["id"] for r in raw] == list(range(990, 1001))


def test_three_product_schemas_land_in_one_unified_shape(mock_server: MockServer) -> None:
    unified, served = {}, {}
    for name in ("shop_products", "shop_b_catalog", "shop_c_products"):
        spec = catalog_spec(mock_server, name)
        served[name] = fetch(spec)[0]
        items = rows(spec, served[name])
        assert sum(isinstance(i, Rejected) for i in items) == broken_products(1000)  # every 97th, in each schema
        unified[name] = {i.row["product_id"]: i.row for i in items if isinstance(i, Record)}
    columns = set(BUILTIN["products"].load_columns)
    assert all(set(row) >= columns for shop in unified.values() for row in shop.values())

    a = unified["shop_products"]["SKU-00000000"]  # flat: number price, list of categories
    assert isinstance(a["price"], Decimal) and a["currency"] == "USD" and isinstance(a["category"], list)
    b, b_served = unified["shop_b_catalog"], served["shop_b_catalog"][1]  # record 1 as shop B served it
    assert b_served["sku"] == "B-00000001"
    assert b["B-00000001"]["currency"] == "EUR" and b["B-00000001"]["price"] == Decimal(
        str(b_served["price"]["amount"])).quantize(Decimal("0.01"))
    assert b["B-00000001"]["category"] == [b_served["category"]]  # text -> list
    assert b["B-00000005"]["category"] is None  # an optional field missing
    assert b["B-00000001"]["in_stock"] is b_served["stock"]["available"]
    c = unified["shop_c_products"]
    assert c["700000"]["currency"] == "USD" and c["700001"]["currency"] == "EUR"  # "$1,299.00" and "12,50 EUR"
    raw_price = served["shop_c_products"][1]["price"]
    assert served["shop_c_products"][1]["productId"] == 700001
    assert str(c["700001"]["price"]) == raw_price.split()[0].replace(",", ".")
    assert c["700000"]["category"] is None and c["700001"]["category"]  # categories missing vs a list
    assert c["700000"]["updated_at"] == "2026-01-01T00:00:00+00:00"  # served as 01:00+01:00
    assert c["700000"]["in_stock"] is None


def test_one_failing_ticker_never_stops_the_others(mock_server: MockServer) -> None:
    spec = catalog_spec(mock_server, "market_quotes")
    items = rows(spec, fetch(spec)[0])
    failing = [i for i in items if isinstance(i, Rejected) and i.raw["symbol"] == "DLST"]
    loaded = {i.row["ticker"] for i in items if isinstance(i, Record)}
    assert failing and all(i.reason == "price: 0.0 is below the minimum 0.000001" for i in failing)
    assert len(loaded) == 23 and "DLST" not in loaded
    assert any(isinstance(i, Rejected) and i.reason == "volume: -100 is below the minimum 0" for i in items)


def test_mentions_from_two_platforms_get_sentiment_and_pump_signal(mock_server: MockServer) -> None:
    for name, platform in (("twitter_mentions", "twitter"), ("telegram_mentions", "telegram")):
        spec = catalog_spec(mock_server, name)
        loaded = [i.row for i in rows(spec, fetch(spec)[0]) if isinstance(i, Record)]
        assert {r["platform"] for r in loaded} == {platform}
        assert {r["sentiment"] for r in loaded} == {"positive", "negative", "neutral"}
        assert {r["pump_signal"] for r in loaded} == {True, False}
        assert all(f"${r['ticker']}" in r["text"] for r in loaded)


def test_csv_over_http_and_from_a_file_give_the_same_rows(mock_server: MockServer, tmp_path: Path) -> None:
    mock_server.config = MockConfig(records=700)
    over_http, statuses = fetch(catalog_spec(mock_server, "sensor_csv"))
    path = tmp_path / "sensors.csv"
    path.write_text("".join(sensors.csv_lines(700, 97)), encoding="utf-8", newline="")
    from_file, _ = fetch(catalog_spec(mock_server, "sensor_csv", url=str(path)))
    assert over_http == from_file and len(from_file) == 700 and statuses == ["2xx"]
    assert from_file[0] == {k: str(v) for k, v in sensors.csv_reading(0).items()}


def test_an_unparsable_csv_row_is_rejected_and_the_rest_flow(mock_server: MockServer, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sensor_id,kind,ts,value,unit\nS1,flow,2026-01-01T00:00:00Z,5,L\n"
                    f"S1,flow,\"{'x' * 200_000}\",5,L\nS1,flow,2026-01-01T00:01:00Z,6,L\n", encoding="utf-8")
    spec = catalog_spec(mock_server, "sensor_csv", url=str(path))
    items = rows(spec, fetch(spec)[0])
    assert [type(i).__name__ for i in items] == ["Record", "Rejected", "Record"]
    assert items[1].stage == "validate"


def test_a_missing_csv_file_fails_the_source_permanently(mock_server: MockServer, tmp_path: Path) -> None:
    from ingest_workers.core.errors import PermanentError

    with pytest.raises(PermanentError, match="cannot open"):
        fetch(catalog_spec(mock_server, "sensor_csv", url=str(tmp_path / "none.csv")))


def test_synthetic_readings_are_seeded_and_windows_partition_the_stream(mock_server: MockServer) -> None:
    spec = catalog_spec(mock_server, "sensor_synthetic", options={"records": 600, "seed": 3, "sensors": 4})
    everything, statuses = fetch(spec)
    assert everything == fetch(spec)[0] == [reading(SensorPlan(records=600, seed=3, sensors=4), i) for i in range(600)]
    assert statuses == []  # no network
    cut = (EPOCH + timedelta(minutes=50)).isoformat()
    first, second = fetch(spec, until=cut)[0], fetch(spec, since=cut)[0]
    assert first + second == everything and len(first) == 200
    assert list(itertools.islice(fetch(spec, since=cut, until=cut)[0], 1)) == []
