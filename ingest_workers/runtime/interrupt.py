"""Ctrl+C on a run with local workers: the first press stops gently, the second at once.

The workers run in sessions of their own (:func:`.workerpool.start_worker`), so the
terminal's SIGINT reaches this process only: it decides what happens to them. The first
press raises :class:`StopGently` where the run waits (it says so at once, from the signal
handler, whatever the run was doing); the second raises :class:`StopNow`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class StopGently(Exception):
    """The first Ctrl+C: cancel the jobs not started, let the running ones finish."""


class StopNow(Exception):
    """The second Ctrl+C: stop the running jobs and the workers now."""


FIRST = ("Ctrl+C: stopping the run: the jobs not started are cancelled, the running ones finish first "
         "(Ctrl+C again stops them now)")
SECOND = "Ctrl+C again: stopping now: the running jobs are stopped (what they did not commit rolls back)"


@contextmanager
def ctrl_c(say: Callable[[str], None]) -> Iterator[list[int]]:
    """SIGINT raises :class:`StopGently`, then :class:`StopNow`, for the duration of the block, each
    announced at once through ``say``. The list yielded holds one item per press."""
    presses: list[int] = []

    def pressed(signum: int, frame: FrameType | None) -> None:
        presses.append(signum)
        if len(presses) == 1:
            say(FIRST)
            raise StopGently
        if len(presses) == 2:
            say(SECOND)
            raise StopNow
        say("stopping now: a moment")  # a third press must not break off the hard stop itself

    previous = signal.signal(signal.SIGINT, pressed)
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, previous)
