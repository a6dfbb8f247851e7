"""A cluster-wide request rate per source, held in Redis (GCRA in one Lua script).

Every process on every host that calls a source asks the same Redis key for its
next slot, so together they keep to the source's requests per second. GCRA keeps
one number per source, the "theoretical arrival time" (TAT) of the next request;
the script reserves a slot atomically and answers how long the caller must wait
for it. Redis's own clock is used, so hosts with skewed clocks still agree.

The wait is short by construction (one slot per caller in flight), so the caller
sleeps it off; an open circuit, which can last long, defers the job instead
(see :mod:`breaker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

RATE_PREFIX = "ingest:rate:"

# KEYS[1]: the source's TAT (microseconds). ARGV[1]: emission interval (us), ARGV[2]: burst tolerance (us).
# Returns the microseconds the caller waits before its request.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait
"""


class RateLimiter:
    """``acquire(source, rate)`` blocks until this process may send one request to ``source``."""

    def __init__(self, client: redis.Redis, burst: int = 1, sleep: Callable[[float], None] = time.sleep) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._reserve = client.register_script(_RESERVE)
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
