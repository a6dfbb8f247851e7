"""A cluster-wide request rate per source, held in Redis (GCRA in one Lua script).

Every process on every host that calls a source asks the same Redis key for its
next slot, so together they keep to the source's requests per second. GCRA keeps
one number per source, the "theoretical arrival time" (TAT) of the next request;
the script (``ratelimit.lua``) reserves a slot atomically and answers how long the
caller must wait for it. Redis's own clock is used, so hosts with skewed clocks still agree.

The wait is short by construction (one slot per caller in flight), so the caller
sleeps it off; an open circuit, which can last long, defers the job instead
(see :mod:`breaker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from . import lua_script

RATE_PREFIX = "ingest:rate:"


class RateLimiter:
    """``acquire(source, rate)`` blocks until this process may send one request to ``source``."""

    def __init__(self, client: redis.Redis, burst: int = 1, sleep: Callable[[float], None] = time.sleep) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._reserve = client.register_script(lua_script("ratelimit.lua"))
        self._burst = burst
        self._sleep = sleep

    def acquire(self, source: str, rate: float) -> float:
        """Reserve the next slot of ``source`` at ``rate`` requests/second and wait for it.

        Returns the seconds waited. A rate of 0 or less means "unlimited".
        """
        if rate <= 0:
            return 0.0
        interval = int(1_000_000 / rate)
        wait = int(self._reserve(keys=[RATE_PREFIX + source], args=[interval, interval * (self._burst - 1)]))
        seconds = wait / 1_000_000
        if seconds > 0:
            self._sleep(seconds)
        return seconds
