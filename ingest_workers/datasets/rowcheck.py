"""A dataset's row check: a mapped record -> the dataset's row, each column read by its type
(:mod:`.types`) and checked against its declared constraints; the first value that fails raises
:class:`Reject` naming the column and the rule.

Each column's reader is put together once, from only the checks it declares: this runs for every
record. Text, alone or in a ``text[]`` list, goes through one check, :func:`text_rule`. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..core.models import Reject
from .checks import checked_text
from .types import NUMBER_TYPES, TYPES, UNLIMITED, as_money, as_text

if TYPE_CHECKING:
    from .model import Column

Reader = Callable[[Any, dict[str, Any]], Any]  # (value, currencies named so far) -> clean value


class RowCheck:
    """Callable: a mapped record -> the row of the dataset whose ``columns`` it was made from."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        # Money first: the currency its text names fills the currency column read after it.
        self._readers = tuple([(c.name, _money_reader(c)) for c in columns if c.type == "money"]
                              + [(c.name, _column_reader(c)) for c in columns if c.type != "money"])

    @property
    def readers(self) -> tuple[tuple[str, Reader], ...]:
        """(column name, reader) in the order they run; a reader takes the value and the currencies
        named so far (a dict it may add to) and returns the clean value or raises :class:`Reject`."""
        return self._readers

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        implied: dict[str, Any] = {}  # a currency the money text named, for its currency column
        get = record.get
        return {name: read(get(name), implied) for name, read in self._readers}


def text_rule(column: Column) -> Callable[[str], str] | None:
    """The check of one text value against the column's rules, in order: ``case``, ``max_length``,
    ``pattern``, ``one_of``; returns the text as stored. ``None`` when the column declares none."""
    name, limit = column.name, column.max_length
    pattern = re.compile(column.pattern) if column.pattern else None
    change = None if column.case is None else str.lower if column.case == "lower" else str.upper
    allowed = frozenset(column.one_of) if column.one_of is not None and column.type == "text" else None
    listed = ", ".join(map(str, column.one_of or ()))
    if change is None and limit is None and pattern is None and allowed is None:
        return None

    def checked(text: str) -> str:
        if change is not None:
            text = change(text)
        if limit is not None and len(text) > limit:
            raise Reject(f"{name}: {len(text)} characters is above the maximum length {limit}")
        if pattern is not None and not pattern.fullmatch(text):
            raise Reject(f"{name}: {_shown(text)} does not match the pattern {column.pattern}")
        if allowed is not None and text not in allowed:
            raise Reject(f"{name}: {_shown(text)} is not one of {listed}")
        return text

    return checked


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
    name, default, required = column.name, column.default, column.required
    rule = text_rule(column)

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
        return text if rule is None else rule(text)

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
    """What a present value of a column that is neither text nor money goes through after its
    type's reader, in order."""
    name, steps = column.name, []
    rule = text_rule(column) if column.type == "text[]" else None
    if rule is not None:
        steps.append(lambda texts: [rule(text) for text in texts])
    if column.one_of is not None and column.type != "text[]":
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
