"""A circuit breaker per source, shared by every worker through Redis.

    closed ──N consecutive failures──> open ──cool-down over──> half-open
      ^                                  ^                          │
      └──────────── probe succeeds ──────┴──── probe fails ─────────┘

While open, :meth:`CircuitBreaker.check` raises :class:`CircuitOpen` with the
seconds left: the job is deferred with that delay, never slept out. Once the
cool-down is over, one caller (cluster-wide) becomes the probe; others keep
deferring until the probe's answer closes or re-opens the circuit. A probe that
dies (its worker killed) frees the slot after ``probe_timeout``.

Each transition is one Lua script on one hash (``breaker_*.lua``), so concurrent workers agree;
the scripts use Redis's clock, so hosts whose clocks differ agree too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from ..core.errors import CircuitOpen, TransientError
from . import lua_script

BREAKER_PREFIX = "ingest:breaker:"
T = TypeVar("T")


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
        self._check = client.register_script(lua_script("breaker_check.lua"))
        self._failure = client.register_script(lua_script("breaker_failure.lua"))
        self._success = client.register_script(lua_script("breaker_success.lua"))

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
