"""Pure checks shared by the domains: each reads one field of a mapped record and
returns the clean value, or raises :class:`Reject` with a reason a person can act on."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.models import Reject

MAX_TEXT = 10_000  # longer strings are refused, not truncated: silent truncation loses data
MAX_BIGINT = 2**63 - 1
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


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
    if not text.isascii():  # ASCII text (most of it) holds no surrogate; isascii() costs nothing
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject(f"{name}: not valid Unicode (a lone surrogate)") from None
    return text


def required_integer(record: dict[str, Any], name: str, minimum: int | None = None) -> int:
    """A whole number given as a JSON number or as digits in text (``"42"``)."""
    value = record.get(name)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Reject(f"{name}: expected a whole number, got {type(value).__name__}")
    if abs(value) > MAX_BIGINT:
        raise Reject(f"{name}: outside the 64-bit range")
    if minimum is not None and value < minimum:
        raise Reject(f"{name}: must be at least {minimum}, got {value}")
    return value


def required_number(record: dict[str, Any], name: str) -> float:
    """A finite number given as a JSON number or as text (``"21.5"``)."""
    value = record.get(name)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Reject(f"{name}: cannot read {value[:40]!r} as a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Reject(f"{name}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise Reject(f"{name}: too large") from None
    if not math.isfinite(number):
        raise Reject(f"{name}: not a finite number")
    return number


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


def currency_code(value: str) -> str:
    if not _CURRENCY_CODE.fullmatch(value):
        raise Reject(f"currency: expected a 3-letter code, got {value[:10]!r}")
    return value


def optional_timestamp(record: dict[str, Any], name: str) -> str | None:
    """An ISO 8601 text or a Unix time in seconds, as ISO 8601 in UTC.

    UTC everywhere makes the text sort in time order, which the cursors rely on.
    """
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (math.isfinite(value) and 0 <= value < 253402300800):  # up to year 9999
            raise Reject(f"{name}: Unix time {value!r} out of range")
        return datetime.fromtimestamp(value, UTC).isoformat()
    if not isinstance(value, str):
        raise Reject(f"{name}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Reject(f"{name}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the catalog's sources serve UTC
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:
        raise Reject(f"{name}: {value[:40]!r} is out of range") from None


def required_timestamp(record: dict[str, Any], name: str) -> str:
    moment = optional_timestamp(record, name)
    if moment is None:
        raise Reject(f"{name}: required timestamp missing")
    return moment
