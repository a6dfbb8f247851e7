"""Pure checks shared by the column types (:mod:`.types`): text PostgreSQL can hold, and prices
in the shapes APIs serve them; each raises :class:`Reject` with a reason a person can act on."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.models import Reject

MAX_TEXT = 10_000  # longer strings are refused, not truncated: silent truncation loses data
MAX_BIGINT = 2**63 - 1
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def checked_text(name: str, text: str, limit: int) -> str:
    if len(text) > limit:
        raise Reject(f"{name}: text longer than {limit} characters")
    if "\x00" in text:
        raise Reject(f"{name}: contains a NUL character")  # PostgreSQL text cannot hold NUL
    if not text.isascii():  # ASCII text (most of it) holds no surrogate; isascii() costs nothing
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject(f"{name}: not valid Unicode (a lone surrogate)") from None
    return text


def parse_price(value: Any, name: str = "price") -> tuple[Decimal, str | None]:
    """Read a price given as a number, or as text such as ``"$1,299.00"`` or ``"12,50 EUR"``.

    Returns the amount and the currency the text named, if any.
    """
    if isinstance(value, bool) or value is None:
        raise Reject(f"{name}: missing or of type {type(value).__name__}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Reject(f"{name}: not a finite number")
        return Decimal(str(value)), None
    if not isinstance(value, str):
        raise Reject(f"{name}: expected a number or text, got {type(value).__name__}")
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
        raise Reject(f"{name}: cannot read {value[:40]!r} as an amount") from None
    if not amount.is_finite():
        raise Reject(f"{name}: not a finite number")
    return amount, currency
