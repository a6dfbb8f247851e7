"""A column's ``default``, checked when its dataset is parsed. A record without the value gets the
default as written, through the column's own rules but not its type's reader, so a default of
another type crashed both record paths at load time (``case`` lowering a number, ``min`` comparing
text, a TOML date no COPY text can carry). It is refused here instead, in one sentence that names
the column and says what to write. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from ..core.models import Reject
from .rowcheck import RowCheck
from .types import as_date, as_numeric, as_timestamp

if TYPE_CHECKING:
    from .model import Column


def check_default(here: str, column: Column) -> None:
    """Refuse ``column``'s default unless it is a value of the column's type that its own rules accept."""
    value = column.default
    if value is None:
        return
    expected, instead = _FITS[column.type](value)
    if expected:
        raise ConfigError(f"{here} 'default': the default of this {column.type} column must be {expected}, "
                          f"got {value!r}; write default = {instead}")
    try:
        RowCheck((column,))({})  # a record without the value, as both record paths read it
    except Reject as exc:
        raise ConfigError(f"{here} 'default': {value!r} breaks the column's own rules ({exc}); "
                          "write a default they accept") from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # e.g. 1e300 kept to 6 decimals
        raise ConfigError(f"{here} 'default': {value!r} cannot be stored in this {column.type} column "
                          f"({type(exc).__name__}); write a default within its bounds and scale") from None


Fit = tuple[str, str]  # (what the default must be, what to write instead); ("", "") when it fits
OK: Fit = ("", "")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _quoted(value: Any) -> str:
    """``value`` as TOML text in quotes (a TOML date or time as ISO 8601)."""
    if isinstance(value, bool):
        return json.dumps(str(value).lower())
    if isinstance(value, (date, datetime)):
        return json.dumps(value.isoformat())
    return json.dumps(str(value)) if isinstance(value, (str, int, float)) else '"..."'


def _reads(reader: Callable[[str, Any], Any], value: Any) -> bool:
    try:
        reader("default", value)
    except Reject:
        return False
    return True


def _text(value: Any) -> Fit:
    return OK if isinstance(value, str) else ("text in quotes", _quoted(value))


def _texts(value: Any) -> Fit:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return OK
    items = value if isinstance(value, list) else [value]
    return "a list of text", f"[{', '.join(_quoted(item) for item in items)}]"


def _integer(value: Any) -> Fit:
    if isinstance(value, int) and not isinstance(value, bool):
        return OK
    whole = value.strip() if isinstance(value, str) and value.strip().lstrip("-").isdigit() else None
    if _is_number(value) and float(value).is_integer():
        whole = str(int(value))
    return "a whole number without quotes", whole or "0"


def _numeric(value: Any) -> Fit:
    if _is_number(value):
        return OK
    return "a number without quotes", value.strip() if isinstance(value, str) and _reads(as_numeric, value) else "0"


def _money(value: Any) -> Fit:
    return OK if _is_number(value) or isinstance(value, str) else ("a number or an amount in text", "0")


def _boolean(value: Any) -> Fit:
    if isinstance(value, bool):
        return OK
    word = value.strip().lower() if isinstance(value, str) else ""
    return "true or false without quotes", word if word in ("true", "false") else "false"


def _timestamp(value: Any) -> Fit:
    if isinstance(value, str) and _reads(as_timestamp, value):
        return OK
    moment = as_timestamp("default", value.isoformat()) if isinstance(value, (date, datetime)) else None
    return "an ISO 8601 timestamp in quotes", json.dumps(moment or "2024-01-01T00:00:00Z")


def _date(value: Any) -> Fit:
    if isinstance(value, str) and _reads(as_date, value):
        return OK
    day = value.isoformat()[:10] if isinstance(value, (date, datetime)) else "2024-01-01"
    return "an ISO 8601 date in quotes", json.dumps(day)


def _json(value: Any) -> Fit:
    # loaded as written, not as JSON text: only a table's or a number's text is the JSON value itself
    return OK if isinstance(value, dict) or _is_number(value) else ("a table or a number", "{ ... }")


_FITS: dict[str, Callable[[Any], Fit]] = {
    "text": _text, "text[]": _texts, "integer": _integer, "numeric": _numeric, "money": _money,
    "boolean": _boolean, "timestamp": _timestamp, "date": _date, "json": _json,
}
