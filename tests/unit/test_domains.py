from decimal import Decimal

import pytest

from ingest_workers.core.models import Reject
from ingest_workers.datasets import check_product, parse_price
from ingest_workers.datasets.mentions import check_mention
from ingest_workers.datasets.posts import check_post
from ingest_workers.datasets.quotes import check_quote
from ingest_workers.datasets.sensors import check_reading


@pytest.mark.parametrize(
    ("value", "amount", "currency"),
    [
        (12, Decimal("12"), None),
        (12.5, Decimal("12.5"), None),
        ("$1,299.00", Decimal("1299.00"), "USD"),
        ("12,50 EUR", Decimal("12.50"), "EUR"),
        ("€ 3.10", Decimal("3.10"), "EUR"),
        (" 7 ", Decimal("7"), None),
    ],
)
def test_prices_in_the_shapes_apis_serve(value: object, amount: Decimal, currency: str | None) -> None:
    assert parse_price(value) == (amount, currency)


@pytest.mark.parametrize("value", [None, True, "call us", float("nan"), float("inf"), [1], "NaN", "1.2.3", "--5"])
def test_unreadable_prices_are_rejected_with_a_reason(value: object) -> None:
    with pytest.raises(Reject, match="price"):
        parse_price(value)


GOOD = {"product_id": "SKU-1", "name": "Lamp", "price": "$5.00", "category": "home", "in_stock": True,
        "updated_at": "2026-01-01T00:00:00Z"}


def test_a_good_product_is_normalised() -> None:
    row = check_product(GOOD)
    assert row == {"product_id": "SKU-1", "name": "Lamp", "price": Decimal("5.00"), "currency": "USD",
                   "category": ["home"], "in_stock": True, "updated_at": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": -1}, "price: must not be negative"),
        ({"price": 1e12}, "price: larger than"),
        ({"price": "1e999999"}, "price: larger than"),
        ({"name": None}, "name: required text missing"),
        ({"name": "   "}, "name: required text is empty"),
        ({"name": "a\x00b"}, "name: contains a NUL character"),
        ({"name": "x" * 1001}, "name: text longer than 1000"),
        ({"name": "bad \ud800 surrogate"}, "name: not valid Unicode"),
        ({"product_id": 1.5}, "product_id: required text missing or of type float"),
        ({"in_stock": "yes"}, "in_stock: expected true or false"),
        ({"category": [1, 2]}, "category: expected text or a list of text"),
        ({"currency": "dollars"}, "currency: text longer than 3"),
        ({"currency": "us"}, "currency: expected a 3-letter code"),
        ({"updated_at": "yesterday"}, "updated_at: 'yesterday' is not an ISO 8601 timestamp"),
        ({"updated_at": True}, "updated_at: expected an ISO 8601 timestamp"),
        ({"updated_at": [5]}, "updated_at: expected an ISO 8601 timestamp"),
        ({"updated_at": -5}, "updated_at: Unix time -5 out of range"),
    ],
)
def test_bad_products_are_rejected_with_a_specific_reason(change: dict, reason: str) -> None:
    with pytest.raises(Reject) as caught:
        check_product({**GOOD, **change})
    assert caught.value.reason.startswith(reason)


def test_integer_ids_become_text() -> None:
    assert check_product({**GOOD, "product_id": 42})["product_id"] == "42"


def test_times_are_stored_in_utc_whatever_offset_they_came_with() -> None:
    row = check_product({**GOOD, "updated_at": "2026-01-01T01:00:00+01:00"})
    assert row["updated_at"] == "2026-01-01T00:00:00+00:00"
    assert check_product({**GOOD, "updated_at": 1767225600})["updated_at"] == "2026-01-01T00:00:00+00:00"


QUOTE = {"ticker": "aapl", "ts": "2026-01-01T00:00:00Z", "price": 189.5, "volume": "1200", "exchange": "NASDAQ"}


def test_a_good_quote_is_normalised() -> None:
    assert check_quote(QUOTE) == {"ticker": "AAPL", "ts": "2026-01-01T00:00:00+00:00", "price": Decimal("189.500000"),
                                  "volume": 1200, "currency": "USD", "exchange": "NASDAQ"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": 0}, "price: must be greater than 0"),
        ({"price": -3}, "price: must be greater than 0"),
        ({"volume": -1}, "volume: must not be negative"),
        ({"volume": 1.5}, "volume: expected a whole number"),
        ({"volume": 2**70}, "volume: outside the 64-bit range"),
        ({"ticker": "not a ticker"}, "ticker: 'not a ticker' is not a ticker symbol"),
        ({"ts": None}, "ts: required timestamp missing"),
    ],
)
def test_bad_quotes_are_rejected_with_a_specific_reason(change: dict, reason: str) -> None:
    with pytest.raises(Reject) as caught:
        check_quote({**QUOTE, **change})
    assert caught.value.reason.startswith(reason)


def test_a_mention_without_a_ticker_field_takes_the_first_cashtag() -> None:
    row = check_mention({"platform": "telegram", "mention_id": 7, "ts": 1767225600, "text": "Long $tsla and $AAPL"})
    assert (row["ticker"], row["mention_id"], row["ts"]) == ("TSLA", "7", "2026-01-01T00:00:00+00:00")
    with pytest.raises(Reject, match="no \\$CASHTAG"):
        check_mention({"platform": "telegram", "mention_id": 8, "ts": 1767225600, "text": "gm"})


def test_posts_and_sensor_readings() -> None:
    assert check_post({"post_id": "3", "user_id": 1, "title": "t", "body": None}) == \
        {"post_id": 3, "user_id": 1, "title": "t", "body": None}
    with pytest.raises(Reject, match="post_id: must be at least 1"):
        check_post({"post_id": 0, "user_id": 1, "title": "t"})
    row = check_reading({"sensor_id": "S1", "kind": "Flow", "ts": "2026-01-01T00:00:00Z", "value": "12.5"})
    assert (row["kind"], row["value"]) == ("flow", 12.5)
    for value, reason in (("n/a", "value: cannot read 'n/a'"), ("inf", "value: not a finite number"),
                          (None, "value: expected a number")):
        with pytest.raises(Reject) as caught:
            check_reading({**row, "value": value})
        assert caught.value.reason.startswith(reason)
