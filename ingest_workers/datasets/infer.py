"""Columns for a dataset drafted from sample records: a name, a dotted path and a type for
each value seen, and a key candidate. Pure: the records come in, nothing is fetched.

A type is chosen only when almost every value seen looks like it (``FIT``): a few broken
records in a sample (a price of ``"call us"``) must not turn a number column into text,
and a column whose values disagree stays ``text`` or ``json``, which accept what the
stricter types would refuse. Digits in text (``"0042"``, ids) stay text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.models import Reject
from ..core.paths import value_at
from .checks import parse_price

FIT = 0.95  # share of the non-missing values a type must read for the column to get it
MAX_DEPTH = 3  # nested objects are flattened into columns down to a.b.c; deeper ones stay json
RESERVED = frozenset({"source", "run_id", "job_id", "fetched_at", "raw", "loaded_at"})  # columns every table has
_ID_NAMES = frozenset({"id", "sku", "uuid", "guid", "key", "slug", "code", "number"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"\s*-?\d+\.\d+\s*")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")


@dataclass(frozen=True)
class DraftColumn:
    name: str  # the column: snake_case of the path
    path: str  # dotted path in the record
    type: str  # a dataset column type
    present: int  # records that had a value
    distinct: int  # distinct values among them (for the key)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 16 or not _DATE.match(value):
        return False
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        return False
    try:
        date.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _is_decimal_text(value: Any) -> bool:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        return False
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def _is_money_text(value: Any) -> bool:
    """Text naming a currency (``"$1,299.00"``, ``"12,50 EUR"``) that reads as an amount."""
    if not isinstance(value, str) or not any(ch.isdigit() for ch in value) or _is_decimal_text(value):
        return False
    try:
        return parse_price(value)[1] is not None
    except Reject:
        return False


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# In order of preference: the first type that fits the values wins; text and json take anything.
_TYPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("boolean", lambda v: isinstance(v, bool)),
    ("integer", _is_integer),
    ("numeric", lambda v: _is_number(v) or _is_decimal_text(v)),
    ("timestamp", _is_timestamp),
    ("date", _is_date),
    ("money", lambda v: _is_money_text(v) or _is_number(v)),
    ("text[]", _is_text_list),
    ("text", lambda v: isinstance(v, str) or _is_integer(v)),
)


def _leaves(record: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    for key, value in record.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value and len(path) < MAX_DEPTH:
            yield from _leaves(value, path)
        else:
            yield path, value


def column_type(values: list[Any]) -> str:
    """The type of a column whose non-missing values are ``values``."""
    if not values:
        return "text"
    if any(isinstance(v, dict) for v in values) or all(isinstance(v, list) and not v for v in values):
        return "json"  # objects, or only empty lists: nothing says what their items are
    for name, fits in _TYPES:
        if name == "money" and not any(_is_money_text(v) for v in values):
            continue  # plain numbers are numeric; money is for amounts written with a currency
        if sum(1 for v in values if fits(v)) >= FIT * len(values):
            return name
    return "json"


def column_name(path: tuple[str, ...]) -> str:
    """``("message", "fromUser")`` -> ``message_from_user``; always a valid column name."""
    words = [w.lower() for part in path for w in _WORD_BREAK.split(part) if w]
    name = "_".join(words) or "value"
    if not name[0].isalpha():
        name = f"c_{name}"
    return f"{name}_value" if name in RESERVED else name[:63]


def infer_columns(records: Iterable[Any]) -> list[DraftColumn]:
    """One column per leaf path seen in the records (dicts; others are skipped), in first-seen order."""
    seen: dict[tuple[str, ...], list[Any]] = {}
    for record in records:
        if not isinstance(record, dict):
            continue
        for path, value in _leaves(record):
            seen.setdefault(path, [])
            if value is not None and value != "":
                seen[path].append(value)
    columns, names = [], set()
    for path, values in seen.items():
        name = column_name(path)
        while name in names:
            name = f"{name}_{len(names)}"
        names.add(name)
        kind = column_type(values)
        distinct = len({repr(v) for v in values})
        columns.append(DraftColumn(name, ".".join(path), kind, len(values), distinct))
    return columns


def _id_like(column: DraftColumn) -> bool:
    last = column.path.rsplit(".", 1)[-1]
    return last.lower() in _ID_NAMES or last.lower().endswith("_id") or last.endswith(("Id", "ID"))


def key_candidate(columns: list[DraftColumn], records: list[Any]) -> list[str]:
    """A unique id-like column present in almost every record ("id" itself first, then the
    shallowest); else a (dimension, time) pair unique in the sample, the dimension with the
    fewest values; ``[]`` when neither is found."""
    enough = FIT * len(records)
    ids = [c for c in columns if c.type in ("text", "integer") and _id_like(c) and c.present >= enough
           and c.distinct == c.present]
    if ids:
        return [min(ids, key=lambda c: (c.path.rsplit(".", 1)[-1].lower() != "id", c.path.count("."))).name]
    times = [c for c in columns if c.type in ("timestamp", "date") and c.present >= enough]
    dims = sorted((c for c in columns if c.type in ("text", "integer") and c.present >= enough),
                  key=lambda c: c.distinct)
    for dim in dims:
        for time in times:
            pairs = [(value_at(r, dim.path), value_at(r, time.path)) for r in records]
            complete = [repr(p) for p in pairs if None not in p]
            if len(set(complete)) == len(complete):
                return [dim.name, time.name]
    return []


def object_lists(records: Iterable[Any]) -> dict[str, list[list[dict[str, Any]]]]:
    """The dotted paths (as columns are found) whose values are lists of objects, each with the
    non-empty lists seen there: candidates for nested datasets. A path where any list holds
    something else than objects is not one (it stays a column: ``text[]`` or ``json``)."""
    seen: dict[str, list[list[Any]]] = {}
    mixed: set[str] = set()
    for record in records:
        if not isinstance(record, dict):
            continue
        for path, value in _leaves(record):
            if isinstance(value, list) and value:
                dotted = ".".join(path)
                seen.setdefault(dotted, []).append(value)
                if not all(isinstance(item, dict) for item in value):
                    mixed.add(dotted)
    return {path: lists for path, lists in seen.items() if path not in mixed}


def item_key_candidate(columns: list[DraftColumn], lists: list[list[dict[str, Any]]]) -> list[str]:
    """An id-like column of the items present in every item and unique within each list ("id"
    first); ``[]`` when none is (the items are then identified by their position)."""
    def unique_in_every_list(column: DraftColumn) -> bool:
        for items in lists:
            values = [value_at(item, column.path) for item in items]
            if None in values or len({repr(v) for v in values}) != len(values):
                return False
        return True

    ids = [c for c in columns if c.type in ("text", "integer") and _id_like(c) and unique_in_every_list(c)]
    if not ids:
        return []
    return [min(ids, key=lambda c: (c.path.rsplit(".", 1)[-1].lower() != "id", c.path.count("."))).name]
