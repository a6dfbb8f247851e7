"""Products from e-commerce APIs, unified: whatever shape the price, id or category came in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..core.models import Reject
from .base import Domain
from .checks import checked_text, currency_code, optional_text, optional_timestamp, parse_price, required_text

_PRICE_LIMIT = Decimal("1e10")
_CENT = Decimal("0.01")


def check_product(record: dict[str, Any]) -> dict[str, Any]:
    amount, text_currency = parse_price(record.get("price"))
    if amount < 0:
        raise Reject("price: must not be negative")
    if amount >= _PRICE_LIMIT:
        raise Reject("price: larger than 9,999,999,999.99")
    currency = currency_code(optional_text(record, "currency", 3) or text_currency or "USD")
    category = record.get("category")
    if isinstance(category, str):
        category = [category]
    if category is not None and not (isinstance(category, list) and all(isinstance(c, str) for c in category)):
        raise Reject("category: expected text or a list of text")
    in_stock = record.get("in_stock")
    if in_stock is not None and not isinstance(in_stock, bool):
        raise Reject(f"in_stock: expected true or false, got {type(in_stock).__name__}")
    return {
        "product_id": required_text(record, "product_id", 200),
        "name": required_text(record, "name", 1000),
        "price": amount.quantize(_CENT),
        "currency": currency,
        "category": [checked_text("category", c, 200) for c in category] if category else None,
        "in_stock": in_stock,
        "updated_at": optional_timestamp(record, "updated_at"),
    }


PRODUCTS = Domain(
    name="products",
    table="products",
    key=("source", "product_id"),
    fields=("product_id", "name", "price", "currency", "category", "in_stock", "updated_at"),
    check=check_product,
    time_field="updated_at",
    stats=("price",),
)
