"""The column types a dataset may declare: each reads one value of a mapped record and returns
the clean value, or raises :class:`Reject` with a reason that names the column.

``None`` stands for a missing value; the column's constraints (:mod:`.columns`) decide whether
that is allowed. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.models import Reject
from .checks import MAX_BIGINT, checked_text, parse_price

UNLIMITED = 1 << 62  # text without a declared max_length: PostgreSQL's own limit applies
_DIGITS = re.compile(r"\s*-?\d{1,19}\s*")
_UNIX_MILLISECONDS = 1e11  # a Unix time above this is in milliseconds (1e11 seconds is the year 5138)
_LATEST_UNIX = 253402300800  # 10000-01-01T00:00:00Z


class JsonText(str):
    """A ``json`` column's value, already JSON text: the loader sends it as is (never as a
    PostgreSQL array, which a list would become)."""


def _shown(value: Any) -> str:
    return repr(value[:40]) if isinstance(value, str) else repr(value)


def as_text(name: str, value: Any) -> str | None:
    """Text, or a whole number as text (ids often come as numbers); blank text is missing."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Reject(f"{name}: expected text, got {type(value).__name__}")
    return checked_text(name, value.strip(), UNLIMITED) or None


def as_integer(name: str, value: Any) -> int:
    """A 64-bit whole number: a JSON number or digits in text (``"42"``)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Reject(f"{name}: expected a whole number, got {_shown(value)}")
    if abs(value) > MAX_BIGINT:
        raise Reject(f"{name}: {value} is outside the 64-bit range")
    return value


def as_numeric(name: str, value: Any) -> int | float | Decimal:
    """A finite number: a JSON number or a number in text (``"21.5"``, kept exact)."""
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise Reject(f"{name}: cannot read {_shown(value)} as a number") from None
        if not value.is_finite():
            raise Reject(f"{name}: not a finite number")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Reject(f"{name}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Reject(f"{name}: not a finite number")
    return value


def as_money(name: str, value: Any) -> tuple[Decimal, str | None]:
    """An amount and the currency it named: ``12.5``, ``"12,50 EUR"``, ``"$1,299.00"`` or
    ``{"amount": ..., "currency": ...}``."""
    if isinstance(value, dict):
        currency = value.get("currency")
        amount, named = parse_price(value.get("amount"), name)
        return amount, currency if isinstance(currency, str) and currency else named
    return parse_price(value, name)


def as_boolean(name: str, value: Any) -> bool:
    """JSON true or false, or that word as text ("yes", 1 and the like are refused: too ambiguous)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Reject(f"{name}: expected true or false, got {_shown(value)}")


def as_timestamp(name: str, value: Any) -> str:
    """ISO 8601 with or without an offset (UTC when none), or Unix seconds or milliseconds;
    returned as ISO 8601 in UTC, which sorts in time order (the cursors rely on it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= _UNIX_MILLISECONDS else value
        if not (math.isfinite(seconds) and 0 <= seconds < _LATEST_UNIX):
            raise Reject(f"{name}: Unix time {value!r} out of range")
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    if not isinstance(value, str):
        raise Reject(f"{name}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Reject(f"{name}: {_shown(value)} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:
        raise Reject(f"{name}: {_shown(value)} is out of range") from None


def as_date(name: str, value: Any) -> str:
    """An ISO 8601 date (``2026-01-31``); a timestamp gives its date."""
    if not isinstance(value, str):
        raise Reject(f"{name}: expected an ISO 8601 date, got {type(value).__name__}")
    text = value.strip()
    try:
        return (date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text).date()).isoformat()
    except ValueError:
        raise Reject(f"{name}: {_shown(value)} is not an ISO 8601 date") from None


def as_json(name: str, value: Any) -> JsonText:
    """Any JSON value, kept as JSON text for the ``jsonb`` column."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise Reject(f"{name}: not representable as JSON (NaN or Infinity)") from None
    if "\\u0000" in text:
        raise Reject(f"{name}: contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Reject(f"{name}: not valid Unicode (a lone surrogate)") from None
    return JsonText(text)


def as_text_array(name: str, value: Any) -> list[str] | None:
    """A list of text; one text alone is a list of one. An empty list is stored as NULL."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise Reject(f"{name}: expected text or a list of text, got {type(value).__name__}")
    items = []
    for item in value:
        if not isinstance(item, str):
            raise Reject(f"{name}: expected text or a list of text, got an item of type {type(item).__name__}")
        items.append(checked_text(name, item, UNLIMITED))
    return items or None


# type name -> (reader, PostgreSQL type of a new column, PostgreSQL types an existing column may have)
TYPES: dict[str, tuple[Callable[[str, Any], Any], str, frozenset[str]]] = {
    "text": (as_text, "text", frozenset({"text", "varchar", "bpchar"})),
    "integer": (as_integer, "bigint", frozenset({"int8", "int4", "int2"})),
    "numeric": (as_numeric, "numeric", frozenset({"numeric", "float8", "float4"})),
    "money": (as_money, "numeric", frozenset({"numeric"})),
    "boolean": (as_boolean, "boolean", frozenset({"bool"})),
    "timestamp": (as_timestamp, "timestamptz", frozenset({"timestamptz"})),
    "date": (as_date, "date", frozenset({"date"})),
    "json": (as_json, "jsonb", frozenset({"jsonb"})),  # not json: it has no equality, which merge compares with
    "text[]": (as_text_array, "text[]", frozenset({"_text", "_varchar"})),
}
NUMBER_TYPES = frozenset({"integer", "numeric", "money"})
TEXT_TYPES = frozenset({"text", "text[]"})
