"""Time for incremental reads: durations (``lookback = "15m"``, ``window = "7d"``), marks read as
moments, the windows a run steps through, and a moment as a request sends it (``time_format``).

Pure functions: the clock comes in as an argument. A mark is what ``source_cursors`` keeps: ISO 8601
text, or a number of seconds since the epoch (milliseconds with ``time_format = "unix_ms"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

DURATION = re.compile(r"(\d+)\s*(s|m|h|d|w)")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIME_FORMATS = ("iso", "unix", "unix_ms")  # or a strftime pattern (holding a %)


def parse_duration(text: str) -> timedelta:
    """``"15m"``, ``"7d"``, ``"1h30m"`` (units s, m, h, d, w) as a timedelta above 0; raises
    :class:`ValueError` saying what is expected."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    parts = DURATION.findall(cleaned)
    if not parts or DURATION.sub("", cleaned).strip():
        raise ValueError(f"expected a duration such as \"15m\", \"6h\" or \"7d\" (units s, m, h, d, w), got {text!r}")
    total = sum((timedelta(**{UNITS[unit]: int(amount)}) for amount, unit in parts), timedelta())
    if total <= timedelta():
        raise ValueError(f"expected a duration longer than 0, got {text!r}")
    return total


def check_time_format(time_format: str) -> None:
    """Raise :class:`ValueError` unless ``time_format`` is one of :data:`TIME_FORMATS` or a strftime pattern."""
    if not isinstance(time_format, str) or (time_format not in TIME_FORMATS and "%" not in time_format):
        raise ValueError(f"expected one of {', '.join(TIME_FORMATS)} or a strftime pattern such as "
                         f"\"%Y-%m-%d\", got {time_format!r}")


def to_moment(mark: Any, time_format: str | None = None) -> datetime:
    """A mark (ISO 8601 text, or epoch seconds; milliseconds with ``unix_ms``) as an aware UTC
    datetime; raises :class:`ValueError` when it is neither."""
    if isinstance(mark, (int, float)) and not isinstance(mark, bool):
        return datetime.fromtimestamp(mark / 1000 if time_format == "unix_ms" else mark, UTC)
    if isinstance(mark, str):
        text = mark.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{mark!r} is not an ISO 8601 time") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise ValueError(f"{mark!r} is not a time (ISO 8601 text or seconds since the epoch)")


def iso(moment: datetime) -> str:
    """``2026-01-01T00:00:00Z``: UTC, to the second (a fraction only when there is one)."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def as_mark(moment: datetime, like: Any, time_format: str | None = None) -> Any:
    """``moment`` as a mark of the kind ``like`` is: a number (seconds, or ms with ``unix_ms``) or ISO text."""
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        seconds = moment.timestamp()
        return int(seconds * 1000) if time_format == "unix_ms" else int(seconds)
    return iso(moment)


def for_request(moment: datetime, time_format: str | None) -> str:
    """``moment`` as a request carries it: ISO 8601 UTC (the default), epoch seconds or ms, or a strftime pattern."""
    if time_format in (None, "iso"):
        return iso(moment)
    if time_format == "unix":
        return str(int(moment.timestamp()))
    if time_format == "unix_ms":
        return str(int(moment.timestamp() * 1000))
    return moment.astimezone(UTC).strftime(time_format)


def step_windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive ``[since, until)`` from ``start`` to ``end``, each at most ``size`` long (the last
    shorter); none when ``start`` is not before ``end``."""
    since = start
    while since < end:
        until = min(since + size, end)
        yield since, until
        since = until


def halves(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """A capped window cut in two at its middle (to the second: a window of one second cannot be cut)."""
    middle = since + timedelta(seconds=(until - since).total_seconds() // 2)
    if middle <= since:
        return []
    return [(since, middle), (middle, until)]
