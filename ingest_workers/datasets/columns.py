"""A dataset's columns: what each declares, and the row check made of them, which turns a mapped
record into a row or raises :class:`Reject` naming the column and the rule. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..core.models import Reject
from .checks import checked_text
from .types import NUMBER_TYPES, TEXT_TYPES, TYPES, UNLIMITED, as_money, as_text

COLUMN_KEYS = {"type", "required", "min", "max", "max_length", "one_of", "pattern", "default", "case",
               "currency_column", "scale", "computed"}


@dataclass(frozen=True)
class Column:
    """One declared column: its type, its constraints, and where its value comes from."""

    name: str
    type: str
    required: bool = False
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    one_of: tuple[Any, ...] | None = None
    pattern: str | None = None
    default: Any = None  # the value of a record that has none
    case: str | None = None  # "lower" | "upper": text is changed to that case before the checks
    currency_column: str | None = None  # money: the column that receives the currency the amount named
    scale: int | None = None  # numeric, money: decimals kept (rounded half to even)
    computed: bool = False  # filled by a stage (sentiment, moving average, ...), not read from the record

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in sorted(COLUMN_KEYS - {"type"}):
            value = getattr(self, name)
            if value is not None and value is not False:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


class RowCheck:
    """A mapped record -> the dataset's row, each column read by its type and checked against its
    constraints; the first value that fails raises :class:`Reject` naming the column and the rule.

    Each column's reading is put together once, from only the checks it declares: this runs for
    every record."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        # Money first: the currency its text names fills the currency column read after it.
        self._readers = tuple([(c.name, _money_reader(c)) for c in columns if c.type == "money"]
                              + [(c.name, _column_reader(c)) for c in columns if c.type != "money"])

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        implied: dict[str, Any] = {}  # a currency the money text named, for its currency column
        get = record.get
        return {name: read(get(name), implied) for name, read in self._readers}


Reader = Callable[[Any, dict[str, Any]], Any]


def _column_reader(column: Column) -> Reader:
    name, default, required = column.name, column.default, column.required
    if column.computed:
        return lambda value, implied: None
    if column.type == "text":
        return _text_reader(column)
    read = TYPES[column.type][0]
    steps = _steps(column)

    def value_of(value: Any, implied: dict[str, Any]) -> Any:
        if value is not None:
            value = read(name, value)
        if value is None:
            value = implied.get(name, default) if implied else default
            if value is None:
                if required:
                    raise Reject(f"{name}: required value missing")
                return None
        for step in steps:
            value = step(value)
        return value

    return value_of


def _text_reader(column: Column) -> Reader:
    """The most common column, read in one function (it runs for most columns of every record)."""
    name, default, required, limit = column.name, column.default, column.required, column.max_length
    pattern = re.compile(column.pattern) if column.pattern else None
    change = None if column.case is None else str.lower if column.case == "lower" else str.upper
    allowed = frozenset(column.one_of) if column.one_of is not None else None
    listed = ", ".join(map(str, column.one_of or ()))

    def text_of(value: Any, implied: dict[str, Any]) -> Any:
        if value.__class__ is str:
            text = value.strip() or None
            if text is not None and ("\x00" in text or not text.isascii()):
                checked_text(name, text, UNLIMITED)  # NUL or a lone surrogate: refused with its reason
        else:
            text = None if value is None else as_text(name, value)
        if text is None:
            text = implied.get(name, default) if implied else default
            if text is None:
                if required:
                    raise Reject(f"{name}: required value missing")
                return None
        if change is not None:
            text = change(text)
        if limit is not None and len(text) > limit:
            raise Reject(f"{name}: {len(text)} characters is above the maximum length {limit}")
        if pattern is not None and not pattern.fullmatch(text):
            raise Reject(f"{name}: {_shown(text)} does not match the pattern {column.pattern}")
        if allowed is not None and text not in allowed:
            raise Reject(f"{name}: {_shown(text)} is not one of {listed}")
        return text

    return text_of


def _money_reader(column: Column) -> Reader:
    name, default, required, companion = column.name, column.default, column.required, column.currency_column
    bounded = _bounds_step(column)

    def amount_of(value: Any, implied: dict[str, Any]) -> Any:
        if value is None:
            value = default
        if value is None:
            if required:
                raise Reject(f"{name}: required value missing")
            return None
        amount, currency = as_money(name, value)
        if companion and currency:
            implied[companion] = currency
        return bounded(amount) if bounded is not None else amount

    return amount_of


def _steps(column: Column) -> list[Callable[[Any], Any]]:
    """What a present value goes through after its type's reader, in order."""
    name, steps = column.name, []
    if column.case is not None:
        change = str.lower if column.case == "lower" else str.upper
        steps.append(lambda value: change(value) if isinstance(value, str) else value)
    if column.type in TEXT_TYPES and (column.max_length is not None or column.pattern):
        limit, pattern = column.max_length, re.compile(column.pattern) if column.pattern else None

        def check_text(text: str) -> None:
            if limit is not None and len(text) > limit:
                raise Reject(f"{name}: {len(text)} characters is above the maximum length {limit}")
            if pattern is not None and not pattern.fullmatch(text):
                raise Reject(f"{name}: {_shown(text)} does not match the pattern {column.pattern}")

        def texts(value: Any) -> Any:
            for text in value if isinstance(value, list) else (value,):
                check_text(text)
            return value

        steps.append(texts)
    if column.one_of is not None:
        allowed, listed = frozenset(column.one_of), ", ".join(map(str, column.one_of))

        def one_of(value: Any) -> Any:
            if value not in allowed:
                raise Reject(f"{name}: {_shown(value)} is not one of {listed}")
            return value

        steps.append(one_of)
    bounded = _bounds_step(column) if column.type in NUMBER_TYPES else None
    if bounded is not None:
        steps.append(bounded)
    return steps


def _bounds_step(column: Column) -> Callable[[Any], Any] | None:
    # Bounds as exact decimals: the float 9999999999.99 is a little below the amount "9999999999.99".
    name, low, high = column.name, _exact(column.min), _exact(column.max)
    quantum = Decimal(1).scaleb(-column.scale) if column.scale is not None else None
    if low is None and high is None and quantum is None:
        return None

    def bounded(number: Any) -> Any:
        if low is not None and number < low:
            raise Reject(f"{name}: {number} is below the minimum {low:f}")
        if high is not None and number > high:
            raise Reject(f"{name}: {number} is above the maximum {high:f}")
        if quantum is not None:
            return (number if isinstance(number, Decimal) else Decimal(str(number))).quantize(quantum)
        return number

    return bounded


def _exact(bound: int | float | None) -> Decimal | None:
    return None if bound is None else Decimal(repr(bound))


def _shown(value: Any) -> str:
    return repr(value[:40]) if isinstance(value, str) else str(value)
