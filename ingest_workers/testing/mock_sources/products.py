"""Three e-commerce APIs whose product schemas differ the way real ones do.

- shop A (``/products``): flat; ``id``, ``title``, price a number, categories a list; page numbers.
- shop B (``/v2/catalog``): ``sku``, nested ``price: {amount, currency}``, category a string
  (sometimes missing), stock nested; offset/limit, records at ``data.products``.
- shop C (``/shop-c/products``): numeric ``productId``, prices as text (``"$1,299.00"``,
  ``"12,50 EUR"``), ``categories`` list or missing, times with a +01:00 offset; cursor tokens.
"""

from __future__ import annotations

import random
from datetime import timedelta, timezone
from typing import Any

from .feed import EPOCH, Feed, is_invalid, iso

_ADJECTIVES = ("Compact", "Deluxe", "Eco", "Ergonomic", "Portable", "Rugged", "Smart", "Wireless")
_NOUNS = ("Blender", "Backpack", "Headphones", "Kettle", "Lamp", "Monitor", "Keyboard", "Tent")
_CATEGORIES = ("home", "kitchen", "outdoor", "electronics", "office", "travel")
_CET = timezone(timedelta(hours=1))
_BREAKAGES_A = (("price", -9.99), ("title", None), ("price", "call us"), ("in_stock", "yes"))
_BREAKAGES_B = (("price", {"amount": -1, "currency": "EUR"}), ("name", None), ("price", {"amount": "n/a"}),
                ("sku", None))
_BREAKAGES_C = (("price", "TBD"), ("productName", ""), ("price", "-3,00 EUR"), ("modified", "last tuesday"))


def _break(record: dict[str, Any], index: int, invalid_every: int, breakages: tuple[tuple[str, Any], ...]) -> None:
    if is_invalid(index, invalid_every):
        field, value = breakages[(index // invalid_every) % len(breakages)]
        record[field] = value


def product(index: int, invalid_every: int = 97) -> dict[str, Any]:
    """Product ``index`` as shop A serves it (always the same for the same index)."""
    rnd = random.Random(index)
    record: dict[str, Any] = {
        "id": f"SKU-{index:08d}",
        "title": f"{rnd.choice(_ADJECTIVES)} {rnd.choice(_NOUNS)} {index}",
        "price": round(rnd.uniform(1, 2000), 2),
        "currency": "USD",
        "category": rnd.sample(_CATEGORIES, rnd.randint(1, 2)),
        "in_stock": rnd.random() > 0.2,
        "updated_at": iso(EPOCH + timedelta(seconds=index)),
        "description": "A dependable product for everyday use, tested by our team. " * 2,
    }
    _break(record, index, invalid_every, _BREAKAGES_A)
    return record


def shop_b_product(index: int, invalid_every: int = 97) -> dict[str, Any]:
    rnd = random.Random(index + 1_000_000)
    record: dict[str, Any] = {
        "sku": f"B-{index:08d}",
        "name": f"{rnd.choice(_NOUNS)} {rnd.choice(_ADJECTIVES).lower()} #{index}",
        "price": {"amount": round(rnd.uniform(1, 900), 2), "currency": "EUR"},
        "stock": {"available": rnd.random() > 0.3, "warehouse": "DE-1"},
        "updatedAt": iso(EPOCH + timedelta(seconds=index)),
    }
    if index % 5:
        record["category"] = rnd.choice(_CATEGORIES)  # optional: every fifth has none
    _break(record, index, invalid_every, _BREAKAGES_B)
    return record


def shop_c_product(index: int, invalid_every: int = 97) -> dict[str, Any]:
    rnd = random.Random(index + 2_000_000)
    amount = round(rnd.uniform(1, 3000), 2)
    price = f"${amount:,.2f}" if index % 2 == 0 else f"{amount:.2f}".replace(".", ",") + " EUR"
    record: dict[str, Any] = {
        "productId": 700_000 + index,
        "productName": f"{rnd.choice(_ADJECTIVES)} {rnd.choice(_NOUNS)} C{index}",
        "price": price,
        "modified": (EPOCH + timedelta(seconds=index)).astimezone(_CET).isoformat(),
    }
    if index % 3:
        record["categories"] = rnd.sample(_CATEGORIES, rnd.randint(1, 3))
    _break(record, index, invalid_every, _BREAKAGES_C)
    return record


SHOP_A = Feed(product, is_invalid)
SHOP_B = Feed(shop_b_product, is_invalid)
SHOP_C = Feed(shop_c_product, is_invalid)
