"""Sensor readings as a CSV file (``/sensors.csv``), streamed row by row: the synthetic
source's readings (seed 7), with every ``invalid_every``-th value unreadable (``n/a``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...sources.synthetic import PROFILES, SensorPlan, reading
from .feed import is_invalid

COLUMNS = ("sensor_id", "kind", "ts", "value", "unit")
CSV_PLAN = SensorPlan(records=0, seed=7, sensors=9, interval_seconds=60, fault_every=50)


def csv_reading(index: int, invalid_every: int = 97) -> dict[str, Any]:
    row = reading(CSV_PLAN, index)
    if is_invalid(index, invalid_every):
        row["value"] = "n/a"
    return row


def refused(index: int, invalid_every: int) -> bool:
    """Unreadable, or outside the kind's valid range (the threshold stage)."""
    if is_invalid(index, invalid_every):
        return True
    row = reading(CSV_PLAN, index)
    _, _, _, low, high = PROFILES[row["kind"]]
    return not low <= row["value"] <= high


def csv_lines(records: int, invalid_every: int) -> Iterator[str]:
    yield ",".join(COLUMNS) + "\r\n"
    for index in range(records):
        row = csv_reading(index, invalid_every)
        yield ",".join(str(row[c]) for c in COLUMNS) + "\r\n"
