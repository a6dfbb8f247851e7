"""A circuit breaker per source, shared by every worker through Redis.

    closed ──N consecutive failures──> open ──cool-down over──> half-open
      ^                                  ^                          │
      └──────────── probe succeeds ──────┴──── probe fails ─────────┘

While open, :meth:`CircuitBreaker.check` raises :class:`CircuitOpen` with the
seconds left: the job is deferred with that delay, never slept out. Once the
cool-down is over, one caller (cluster-wide) becomes the probe; others keep
deferring until the probe's answer closes or re-opens the circuit. A probe that
dies (its worker killed) frees the slot after ``probe_timeout``.

Each transition is one Lua script on one hash, so concurrent workers agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from .errors import CircuitOpen, TransientError

BREAKER_PREFIX = "ingest:breaker:"
T = TypeVar("T")

# Every script: KEYS[1] the hash; uses Redis TIME (ms) so all hosts share one clock.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

# ARGV[1]: probe timeout (ms). Returns {state, ms to wait (0: go ahead)}.
_CHECK = _NOW + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {state, 0} end
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if now < until_ms then return {state, until_ms - now} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', now + tonumber(ARGV[1]))
return {'half_open', 0}
"""

# ARGV[1]: failures that open the circuit, ARGV[2]: cool-down (ms). Returns the new state.
_FAILURE = _NOW + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tonumber(ARGV[2]))
  return 'open'
end
return state
"""

_SUCCESS = """
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'until', 0)
return 'closed'
"""


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 3  # consecutive failed requests that open the circuit
    cooldown: float = 30.0  # seconds open before a probe may try
    probe_timeout: float = 60.0  # seconds a half-open probe holds the slot


class CircuitBreaker:
    def __init__(self, client: redis.Redis, policy: BreakerPolicy,
                 on_state: Callable[[str, str], None] = lambda source, state: None) -> None:
        self._client = client
        self._policy = policy
        self._on_state = on_state  # told every state seen, e.g. to publish a gauge
        self._check = client.register_script(_CHECK)
        self._failure = client.register_script(_FAILURE)
        self._success = client.register_script(_SUCCESS)

    def check(self, source: str) -> None:
        """Return when ``source`` may be called; raise :class:`CircuitOpen` while it is open."""
        state, wait_ms = self._check(keys=[BREAKER_PREFIX + source], args=[int(self._policy.probe_timeout * 1000)])
        state = _text(state)
        self._on_state(source, state)
        if int(wait_ms) > 0:
            seconds = int(wait_ms) / 1000
            raise CircuitOpen(f"source {source}: circuit {state}; next try in {seconds:.1f}s", retry_after=seconds)

    def record_success(self, source: str) -> None:
        self._on_state(source, _text(self._success(keys=[BREAKER_PREFIX + source])))

    def record_failure(self, source: str) -> None:
        state = self._failure(keys=[BREAKER_PREFIX + source],
                              args=[self._policy.failures, int(self._policy.cooldown * 1000)])
        self._on_state(source, _text(state))

    def call(self, source: str, request: Callable[[], T]) -> T:
        """Run ``request`` under the breaker: a :class:`TransientError` counts as a failure."""
        self.check(source)
        try:
            result = request()
        except CircuitOpen:
            raise
        except TransientError:
            self.record_failure(source)
            raise
        self.record_success(source)
        return result

    def state(self, source: str) -> str:
        return _text(self._client.hget(BREAKER_PREFIX + source, "state") or b"closed")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
