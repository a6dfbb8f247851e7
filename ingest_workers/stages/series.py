"""Stages for numeric series (sensor readings): threshold filter, normalise to 0..1,
moving average. Pure and lazy like every stage; the moving average keeps the last
``window`` values of each series, so its memory is bounded by series x window.

Ranges are declared, per series (``ranges = { temperature = [-40, 125] }``) or as one
``minimum``/``maximum``: a stream never knows a series' final min and max, and a
declared range maps a value to the same number in every run, window and batch.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from ..core.errors import ConfigError
from ..core.models import Record, Reject, Rejected
from .base import Item


class _Ranges:
    """Valid ranges: one for all records, or one per value of the ``series`` field."""

    def __init__(self, stage: str, minimum: float | None, maximum: float | None, series: str | None,
                 ranges: Mapping[str, Any] | None) -> None:
        self.series = series
        self.default = (_number(stage, "minimum", minimum, -math.inf), _number(stage, "maximum", maximum, math.inf))
        self.by_series: dict[str, tuple[float, float]] = {}
        for name, bounds in (ranges or {}).items():
            if not (isinstance(bounds, list) and len(bounds) == 2):
                raise ConfigError(f"stage {stage}: ranges.{name} must be [minimum, maximum]")
            low, high = (_number(stage, f"ranges.{name}", b, 0.0) for b in bounds)
            if low >= high:
                raise ConfigError(f"stage {stage}: ranges.{name} must have minimum < maximum")
            self.by_series[str(name)] = (low, high)
        if ranges and not series:
            raise ConfigError(f"stage {stage}: 'ranges' needs 'series', the field that names the series")

    def of(self, row: dict[str, Any]) -> tuple[float, float]:
        if self.series is not None:
            found = self.by_series.get(str(row.get(self.series)))
            if found is not None:
                return found
        return self.default


def _number(stage: str, name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"stage {stage}: {name} must be a number, got {value!r}")
    return float(value)


def _value(row: dict[str, Any], field: str) -> float:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not math.isfinite(value):
        raise Reject(f"{field}: expected a finite number, got {type(value).__name__}")
    return float(value)


def _each_record(name: str, items: Iterable[Item], apply: Any) -> Iterator[Item]:
    for item in items:
        if isinstance(item, Rejected):
            yield item
            continue
        try:
            yield apply(item)
        except Reject as exc:
            yield Rejected(item.raw, exc.reason, name)


class ThresholdFilter:
    """Refuse records whose ``field`` lies outside the valid range (sensor noise, faults).

    Refused records go to ``rejected_records`` with the range in the reason: nothing is dropped silently.
    """

    name = "threshold"

    def __init__(self, field: str = "value", minimum: float | None = None, maximum: float | None = None,
                 series: str | None = None, ranges: Mapping[str, Any] | None = None) -> None:
        self.field = field
        self.ranges = _Ranges(self.name, minimum, maximum, series, ranges)

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        def apply(record: Record) -> Record:
            value = _value(record.row, self.field)
            low, high = self.ranges.of(record.row)
            if not low <= value <= high:
                raise Reject(f"{self.field}: {value:g} outside the valid range [{low:g}, {high:g}]")
            return record

        return _each_record(self.name, items, apply)


class Normalise:
    """Scale ``field`` to 0..1 within its series' declared range into ``output`` (clamped)."""

    name = "normalise"

    def __init__(self, field: str = "value", output: str = "normalised", minimum: float | None = None,
                 maximum: float | None = None, series: str | None = None,
                 ranges: Mapping[str, Any] | None = None) -> None:
        self.field, self.output = field, output
        self.ranges = _Ranges(self.name, minimum, maximum, series, ranges)

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        def apply(record: Record) -> Record:
            value = _value(record.row, self.field)
            low, high = self.ranges.of(record.row)
            if not (math.isfinite(low) and math.isfinite(high)):
                raise Reject(f"{self.field}: no declared range to normalise against")
            record.row[self.output] = min(1.0, max(0.0, (value - low) / (high - low)))
            return record

        return _each_record(self.name, items, apply)


class MovingAverage:
    """The mean of the last ``window`` values of each series (``series`` names the field
    that tells series apart, e.g. ``sensor_id``), in stream order, into ``output``."""

    name = "moving_average"

    def __init__(self, field: str = "value", output: str = "moving_avg", window: int = 5,
                 series: str | None = None) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"stage {self.name}: window must be a whole number of at least 1, got {window!r}")
        self.field, self.output, self.window, self.series = field, output, window, series

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        recent: dict[Any, deque[float]] = defaultdict(lambda: deque(maxlen=self.window))

        def apply(record: Record) -> Record:
            values = recent[record.row.get(self.series) if self.series else None]
            values.append(_value(record.row, self.field))
            record.row[self.output] = sum(values) / len(values)
            return record

        return _each_record(self.name, items, apply)
