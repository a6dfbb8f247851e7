"""``synthetic``: a seeded generator of sensor readings (temperature, pressure, flow).

Reading ``i`` is computed from ``i`` and the seed alone, so a stream of any length
costs no memory and every run serves the same readings. Every ``fault_every``-th
reading is a sensor fault far outside the physical range (the threshold filter's job).

Catalog options: ``records`` (how many), ``seed``, ``sensors``, ``interval_seconds``,
``start`` (ISO 8601) and ``fault_every`` (0: no faults). Values may be text (``${VAR}``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core.errors import ConfigError
from ..core.models import SourceSpec
from .base import SourceContext

KINDS = ("temperature", "pressure", "flow")
# kind -> (unit, centre, amplitude, valid minimum, valid maximum)
PROFILES = {"temperature": ("C", 50.0, 55.0, -40.0, 125.0), "pressure": ("kPa", 150.0, 100.0, 0.0, 300.0),
            "flow": ("L/min", 50.0, 35.0, 0.0, 100.0)}


@dataclass(frozen=True)
class SensorPlan:
    records: int = 1000
    seed: int = 42
    sensors: int = 6
    interval_seconds: int = 60
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    fault_every: int = 50

    def time_of(self, index: int) -> datetime:
        return self.start + timedelta(seconds=(index // self.sensors) * self.interval_seconds)

    def first_index_at_or_after(self, moment: datetime) -> int:
        """The first reading taken at or after ``moment`` (readings are in time order)."""
        steps = math.ceil((moment - self.start).total_seconds() / self.interval_seconds)
        return min(self.records, max(0, steps) * self.sensors)

    def is_fault(self, index: int) -> bool:
        return self.fault_every > 0 and index % self.fault_every == self.fault_every - 1


def reading(plan: SensorPlan, index: int) -> dict[str, Any]:
    """Reading ``index`` of ``plan``: always the same for the same plan and index."""
    sensor = index % plan.sensors
    kind = KINDS[sensor % len(KINDS)]
    unit, centre, amplitude, _, high = PROFILES[kind]
    step = index // plan.sensors
    noise = random.Random(plan.seed * 1_000_003 + index).gauss(0, amplitude * 0.05)
    value = centre + amplitude * math.sin(step / 7 + sensor) + noise
    if plan.is_fault(index):
        value = high + 1000 + sensor  # a stuck or shorted sensor
    return {"sensor_id": f"S-{plan.seed}-{sensor:03d}", "kind": kind,
            "ts": plan.time_of(index).isoformat().replace("+00:00", "Z"), "value": round(value, 3), "unit": unit}


def plan_from_options(name: str, options: Mapping[str, Any]) -> SensorPlan:
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in SensorPlan.__dataclass_fields__:
            raise ConfigError(f"source {name}: unknown synthetic option {key!r}")
        try:
            values[key] = datetime.fromisoformat(value) if key == "start" else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"source {name}: synthetic option {key} = {value!r} is not valid") from None
    plan = SensorPlan(**values)
    if plan.records < 0 or plan.sensors < 1 or plan.interval_seconds < 1 or plan.fault_every < 0:
        raise ConfigError(f"source {name}: synthetic options need records >= 0, sensors >= 1, "
                          "interval_seconds >= 1, fault_every >= 0")
    if plan.start.tzinfo is None:
        plan = SensorPlan(**{**plan.__dict__, "start": plan.start.replace(tzinfo=UTC)})
    return plan


class SyntheticSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        self._plan = plan_from_options(spec.name, spec.options)
        self._first = self._plan.first_index_at_or_after(_moment(spec.name, context.since)) \
            if context.since is not None else 0
        self._end = self._plan.first_index_at_or_after(_moment(spec.name, context.until)) \
            if context.until is not None else self._plan.records

    def stream(self) -> Iterator[Any]:
        for index in range(self._first, self._end):
            yield reading(self._plan, index)


def _moment(name: str, value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"source {name}: {value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
