"""What a served feed is: record ``i`` computed from ``i`` alone (so a million records
cost no memory), in time order, and whether the catalog's stages will refuse it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def is_invalid(index: int, invalid_every: int) -> bool:
    """Every ``invalid_every``-th record is broken on purpose (0: none)."""
    return invalid_every > 0 and index % invalid_every == invalid_every - 1


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Feed:
    record: Callable[[int, int], dict[str, Any]]  # (index, invalid_every) -> the record as served
    refused: Callable[[int, int], bool]  # (index, invalid_every) -> will the catalog's stages refuse it
    seconds_per_step: int = 1  # record i happened at EPOCH + (i // per_step) * seconds_per_step
    per_step: int = 1

    def time_of(self, index: int) -> datetime:
        return EPOCH + timedelta(seconds=(index // self.per_step) * self.seconds_per_step)

    def first_index(self, since: str) -> int:
        """The first record at or after ``since`` (ISO 8601); ValueError when unreadable."""
        moment = datetime.fromisoformat(since)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        steps = math.ceil((moment - EPOCH).total_seconds() / self.seconds_per_step)
        return max(0, steps) * self.per_step

    def count_refused(self, records: int, invalid_every: int) -> int:
        return sum(self.refused(i, invalid_every) for i in range(records))
