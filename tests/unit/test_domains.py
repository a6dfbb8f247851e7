from decimal import Decimal

import pytest

from ingest_workers.domains import check_product, parse_price
from ingest_workers.models import Reject


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
