"""The clients a job works through: HTTP with its retries, the cluster-wide rate limit and the
circuit breaker (all counted in metrics), and PostgreSQL units that wait out an outage."""

from __future__ import annotations

import logging

from ..core.config import Settings
from ..core.models import SourceSpec
from ..guards.breaker import BreakerPolicy, CircuitBreaker
from ..guards.ratelimit import RateLimiter
from ..load.pgretry import PostgresRetry
from ..ops.metrics import CIRCUIT_STATE, CIRCUIT_STATES, FETCH_REQUESTS, FETCH_RETRIES, RATE_LIMIT_WAIT, MetricsRecorder
from ..sources.http import HttpClient, RetryPolicy
from .resources import Resources

log = logging.getLogger(__name__)


def http_client(spec: SourceSpec, res: Resources, recorder: MetricsRecorder) -> HttpClient:
    """The source's HTTP client: retries, the cluster-wide rate limit and the circuit breaker."""
    settings = res.settings
    limiter = RateLimiter(res.redis)
    breaker = CircuitBreaker(
        res.redis, breaker_policy(settings),
        on_state=lambda source, state: recorder.set(CIRCUIT_STATE, CIRCUIT_STATES[state], source))
    return HttpClient(
        res.http,
        timeout=(settings.http_connect_timeout, settings.http_read_timeout),
        policy=RetryPolicy(max_attempts=settings.http_max_attempts, max_backoff=settings.http_max_backoff),
        on_response=lambda status_class: recorder.inc(FETCH_REQUESTS, spec.name, status_class),
        on_retry=lambda error, delay: _note_retry(recorder, spec.name, error, delay),
        before_attempt=lambda: recorder.inc(RATE_LIMIT_WAIT, spec.name,
                                            amount=limiter.acquire(spec.name, spec.rate_limit)),
        max_body_bytes=settings.http_max_body_bytes,
        max_nesting=settings.max_nesting,
        max_page_values=settings.max_page_values,
        guard=lambda request: breaker.call(spec.name, request),
        on_status={int(status): action for status, action in spec.on_status.items()},
    )


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """A half-open probe holds its slot for ``breaker_probe_timeout``, its own bound (not the
    job's timeout): a probe whose worker died frees the way for the next within that time."""
    return BreakerPolicy(settings.breaker_failures, settings.breaker_cooldown, settings.breaker_probe_timeout)


def postgres_retry(res: Resources) -> PostgresRetry:
    """Units of PostgreSQL work that wait out an outage of up to ``pg_retry_seconds``."""
    return PostgresRetry(lambda: res.pg, res.discard_pg, res.settings.pg_retry_seconds,
                         on_retry=lambda error, delay: log.warning("PostgreSQL: %s; retrying in %.1fs", error, delay))


def _note_retry(recorder: MetricsRecorder, source: str, error: Exception, delay: float) -> None:
    recorder.inc(FETCH_RETRIES, source)
    log.warning("source %s: %s; retrying in %.1fs", source, error, delay)
