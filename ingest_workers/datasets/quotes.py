"""Stock quotes: one price and volume per ticker and moment."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from ..core.models import Reject
from .base import Domain
from .checks import currency_code, optional_text, parse_price, required_integer, required_text, required_timestamp

_TICKER = re.compile(r"[A-Z][A-Z0-9.\-]{0,14}")


def check_ticker(value: str) -> str:
    ticker = value.upper()
    if not _TICKER.fullmatch(ticker):
        raise Reject(f"ticker: {value[:20]!r} is not a ticker symbol")
    return ticker


def check_quote(record: dict[str, Any]) -> dict[str, Any]:
    price, text_currency = parse_price(record.get("price"))
    if price <= 0:
        raise Reject("price: must be greater than 0")
    if price >= Decimal("1e12"):
        raise Reject("price: larger than 999,999,999,999")
    volume = required_integer(record, "volume")
    if volume < 0:
        raise Reject("volume: must not be negative")
    return {
        "ticker": check_ticker(required_text(record, "ticker", 15)),
        "ts": required_timestamp(record, "ts"),
        "price": price.quantize(Decimal("0.000001")),
        "volume": volume,
        "currency": currency_code(optional_text(record, "currency", 3) or text_currency or "USD"),
        "exchange": optional_text(record, "exchange", 50),
    }


QUOTES = Domain(
    name="quotes",
    table="stock_quotes",
    key=("source", "ticker", "ts"),
    fields=("ticker", "ts", "price", "volume", "currency", "exchange"),
    check=check_quote,
    time_field="ts",
    stats=("price", "volume"),
)
