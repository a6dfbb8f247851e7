"""The tables records land in: their columns, natural key, and the pure check that
turns a mapped record into a row (or refuses it with a reason).

A domain's table is created by a migration in ``migrations/``; the loader writes
``Domain.columns`` in order, and ``Domain.key`` is the table's unique key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .models import Reject

LINEAGE_COLUMNS = ("source", "run_id", "job_id", "fetched_at")
MAX_TEXT = 10_000  # longer strings are refused, not truncated: silent truncation loses data


@dataclass(frozen=True)
class Domain:
    name: str
    table: str
    key: tuple[str, ...]  # the unique key, ``source`` first
    fields: tuple[str, ...]  # the domain's own columns, as produced by ``check``
    check: Callable[[dict[str, Any]], dict[str, Any]]  # mapped record -> row; raises Reject

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the loader writes, in order; ``raw`` holds the payload as served."""
        return (*self.fields, *LINEAGE_COLUMNS, "raw")


def required_text(record: dict[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Reject(f"{name}: required text missing or of type {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise Reject(f"{name}: required text is empty")
    return checked_text(name, text, limit)


def optional_text(record: dict[str, Any], name: str, limit: int = MAX_TEXT) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Reject(f"{name}: expected text, got {type(value).__name__}")
    return checked_text(name, value.strip(), limit) or None


def checked_text(name: str, text: str, limit: int) -> str:
    if len(text) > limit:
        raise Reject(f"{name}: text longer than {limit} characters")
    if "\x00" in text:
        raise Reject(f"{name}: contains a NUL character")  # PostgreSQL text cannot hold NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Reject(f"{name}: not valid Unicode (a lone surrogate)") from None
    return text


_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def parse_price(value: Any) -> tuple[Decimal, str | None]:
    """Read a price given as a number, or as text such as ``"$1,299.00"`` or ``"12,50 EUR"``.

    Returns the amount and the currency the text named, if any.
    """
    if isinstance(value, bool) or value is None:
        raise Reject(f"price: missing or of type {type(value).__name__}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Reject("price: not a finite number")
        return Decimal(str(value)), None
    if not isinstance(value, str):
        raise Reject(f"price: expected a number or text, got {type(value).__name__}")
    text, currency = value.strip(), None
    for symbol, code in _SYMBOLS.items():
        if symbol in text:
            text, currency = text.replace(symbol, "").strip(), code
    parts = text.split()
    if len(parts) == 2 and _CURRENCY_CODE.fullmatch(parts[1]):
        text, currency = parts[0], parts[1]
    if "," in text and "." not in text and re.fullmatch(r"-?\d+,\d{1,2}", text):
        text = text.replace(",", ".")  # decimal comma: "12,50"
    text = text.replace(",", "")  # thousands separators: "1,299.00"
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Reject(f"price: cannot read {value[:40]!r} as an amount") from None
    if not amount.is_finite():
        raise Reject("price: not a finite number")
    return amount, currency


def check_product(record: dict[str, Any]) -> dict[str, Any]:
    amount, text_currency = parse_price(record.get("price"))
    if amount < 0:
        raise Reject("price: must not be negative")
    if amount >= Decimal("1e10"):
        raise Reject("price: larger than 9,999,999,999.99")
    currency = optional_text(record, "currency", 3) or text_currency or "USD"
    if not _CURRENCY_CODE.fullmatch(currency):
        raise Reject(f"currency: expected a 3-letter code, got {currency[:10]!r}")
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
        "price": amount.quantize(Decimal("0.01")),
        "currency": currency,
        "category": [checked_text("category", c, 200) for c in category] if category else None,
        "in_stock": in_stock,
        "updated_at": optional_timestamp(record, "updated_at"),
    }


def optional_timestamp(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Reject(f"{name}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Reject(f"{name}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the catalog's sources serve UTC
    return moment.isoformat()


PRODUCTS = Domain(
    name="products",
    table="products",
    key=("source", "product_id"),
    fields=("product_id", "name", "price", "currency", "category", "in_stock", "updated_at"),
    check=check_product,
)

DOMAINS: dict[str, Domain] = {d.name: d for d in (PRODUCTS,)}
