"""What one job asks its source for: the ranges of time it reads, in order (a read plan).

- An incremental run of a source without ``window`` reads once, from its mark (``initial_value``
  before the first run; nothing: everything) minus ``lookback``; the records' highest cursor value
  moves the mark, batch by batch.
- With ``window``, the run steps from its mark (minus ``lookback``) to its own start in windows of
  at most that length. Each window read whole moves the mark to its end, in the transaction of its
  last batch: a job killed mid-way starts again at the window it was in. The records do not move
  the mark themselves, so an API serving a window's records in any order (a search endpoint sorts
  by relevance) loses none. A window that serves ``max_records_per_window`` records is capped by
  the API: it is cut in two and both halves are read (what came twice is counted as duplicate).
- A backfill job reads its window (the producer split the range into window jobs, so they run in
  parallel), stepped by ``window`` when the source has one. It never moves the mark.

Windows are stepped inside one job rather than fanned out as jobs: the mark is one per source and
only moves forward, so windows of one incremental run must commit in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..core.errors import ConfigError
from ..core.models import SourceSpec, Window
from ..core.timewindows import as_mark, for_request, halves, parse_duration, step_windows, to_moment


@dataclass(frozen=True)
class Part:
    """One range a job reads. ``since``/``until`` go to the source as given (None: unbounded);
    ``mark``: where the cursor's mark moves once the part is read whole (None: the records move it)."""

    since: Any = None
    until: Any = None
    mark: Any = None
    bounds: tuple[datetime, datetime] | None = field(default=None, compare=False)  # a window's, to cut it


class ReadPlan:
    """The parts of one job, in order (:meth:`parts`); a capped window is cut (:meth:`cut`)."""

    def __init__(self, spec: SourceSpec, mark: Any, window: Window | None, now: datetime) -> None:
        self._spec = spec
        self.windowed = spec.window is not None
        # Marks move batch by batch with the records only in an unwindowed incremental run.
        self.marks_from_records = window is None and not self.windowed
        self.single = not self.windowed  # one part: a source that can resume at a page may
        self._like = mark if mark is not None else spec.initial_value  # the kind of mark (text or number)
        self._queue: deque[Part] = deque(self._first_parts(mark, window, now))

    def parts(self) -> Iterator[Part]:
        """The parts in order, with the halves of a cut window read next."""
        while self._queue:
            yield self._queue.popleft()

    def capped(self, taken: int) -> bool:
        """A window that served ``max_records_per_window`` records or more was cut short by the API."""
        cap = self._spec.max_records_per_window
        return cap is not None and self.windowed and taken >= cap

    def cut(self, part: Part) -> bool:
        """Read ``part``'s two halves next; False when it cannot be cut (a window of one second)."""
        pieces = halves(*part.bounds) if part.bounds else []
        for since, until in reversed(pieces):
            self._queue.appendleft(self._window(since, until, part.mark is not None))
        return bool(pieces)

    def _first_parts(self, mark: Any, window: Window | None, now: datetime) -> list[Part]:
        spec = self._spec
        if window is not None:  # a backfill job: its window, stepped by the source's
            if not self.windowed:  # the bounds as the producer wrote them, unless a time_format says how
                if spec.time_format is None:
                    return [Part(window.since, window.until)]
                return [Part(*(for_request(to_moment(b), spec.time_format) for b in (window.since, window.until)))]
            return [self._window(s, u, False) for s, u in
                    step_windows(to_moment(window.since), to_moment(window.until), self._step())]
        if spec.cursor_field is None:
            return [Part()]
        start = mark if mark is not None else spec.initial_value
        if start is None:
            return [Part()]  # the first run of a source without initial_value reads everything
        if not self.windowed and spec.lookback is None and spec.time_format is None:
            return [Part(start)]  # the mark as stored (a time or any other increasing value)
        moment = self._moment(start) - (self._lookback() if mark is not None else timedelta())  # a mark, not a start
        if not self.windowed:
            return [Part(for_request(moment, spec.time_format))]
        return [self._window(s, u, True) for s, u in step_windows(moment, now, self._step())]

    def _window(self, since: datetime, until: datetime, moves_mark: bool) -> Part:
        time_format = self._spec.time_format
        mark = as_mark(until, self._like, time_format) if moves_mark else None
        return Part(for_request(since, time_format), for_request(until, time_format), mark, (since, until))

    def _moment(self, value: Any) -> datetime:
        try:
            return to_moment(value, self._spec.time_format)
        except ValueError as exc:
            raise ConfigError(f"source {self._spec.name}: the mark {exc}: lookback and window need a time") from None

    def _step(self) -> timedelta:
        return parse_duration(self._spec.window or "")

    def _lookback(self) -> timedelta:
        return parse_duration(self._spec.lookback) if self._spec.lookback else timedelta()
