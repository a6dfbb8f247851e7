"""Sensor readings (temperature, pressure, flow); ``normalised`` and ``moving_avg`` are
filled by the stages of those names when the catalog runs them."""

from __future__ import annotations

from typing import Any

from ..core.models import Reject
from .base import Domain
from .checks import optional_text, required_number, required_text, required_timestamp

SENSOR_KINDS = ("temperature", "pressure", "flow")


def check_reading(record: dict[str, Any]) -> dict[str, Any]:
    kind = required_text(record, "kind", 30).lower()
    if kind not in SENSOR_KINDS:
        raise Reject(f"kind: expected one of {', '.join(SENSOR_KINDS)}, got {kind[:30]!r}")
    return {
        "sensor_id": required_text(record, "sensor_id", 100),
        "kind": kind,
        "ts": required_timestamp(record, "ts"),
        "value": required_number(record, "value"),
        "unit": optional_text(record, "unit", 20),
        "normalised": None,
        "moving_avg": None,
    }


SENSORS = Domain(
    name="sensors",
    table="sensor_readings",
    key=("source", "sensor_id", "ts"),
    fields=("sensor_id", "kind", "ts", "value", "unit", "normalised", "moving_avg"),
    check=check_reading,
    time_field="ts",
    stats=("value", "normalised", "moving_avg"),
)
