"""When a scheduled source runs: every ``interval_seconds``, or at the times of its ``schedule``
(a five-field cron expression, in UTC, read by croniter).

Either way time is cut into slots that depend only on the clock and the catalog entry (an
interval's slots are counted from the Unix epoch; a cron slot starts at each time the expression
names), so every scheduler on every host agrees on them: the slot holding a moment starts at the
latest such time at or before it, and lasts until the next one.
"""

from __future__ import annotations

import math

from croniter import croniter

from .models import SourceSpec

CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def cron_problem(expression: object) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or None when it is one."""
    if not isinstance(expression, str) or len(expression.split()) != len(CRON_FIELDS):
        return (f"expected a cron expression of five fields ({', '.join(CRON_FIELDS)}; UTC), "
                f"e.g. \"0 3 * * *\", got {expression!r}")
    if not croniter.is_valid(expression):
        return f"not a valid cron expression: {expression!r} (fields: {', '.join(CRON_FIELDS)})"
    return None


def is_scheduled(spec: SourceSpec) -> bool:
    """Whether ``ingest schedule`` runs ``spec`` (it has ``interval_seconds`` or ``schedule``)."""
    return bool(spec.interval_seconds or spec.schedule)


def slot_start(spec: SourceSpec, moment: float) -> int:
    """The start (Unix seconds) of the slot of ``spec`` that holds ``moment``."""
    if spec.schedule:
        # croniter's get_prev is strictly before its start: start a second after the whole second
        return int(croniter(spec.schedule, math.floor(moment) + 1).get_prev(float))
    if not spec.interval_seconds:
        raise ValueError(f"source {spec.name} has no schedule")
    return int(moment // spec.interval_seconds) * spec.interval_seconds


def next_run(spec: SourceSpec, moment: float) -> int | None:
    """The start (Unix seconds) of the first slot of ``spec`` after the one holding ``moment``;
    None for a source that is not scheduled."""
    if spec.schedule:
        return int(croniter(spec.schedule, slot_start(spec, moment)).get_next(float))
    if spec.interval_seconds:
        return slot_start(spec, moment) + spec.interval_seconds
    return None


def period(spec: SourceSpec, moment: float) -> int | None:
    """Seconds between runs of ``spec``: its ``interval_seconds``, or the length of the cron slot
    holding ``moment`` (what the staleness alert allows); None for a source that is not scheduled."""
    upcoming = next_run(spec, moment)
    return None if upcoming is None else upcoming - slot_start(spec, moment)


def describe(spec: SourceSpec) -> str:
    """``every 60s`` or ``at cron "0 3 * * *" (UTC)``: how ``spec`` is scheduled, for log lines."""
    if spec.schedule:
        return f'at cron "{spec.schedule}" (UTC)'
    return f"every {spec.interval_seconds}s"
