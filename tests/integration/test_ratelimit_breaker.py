"""The cluster-wide rate limit and the circuit breaker against the real Redis, used by
several processes at once (as several workers on several hosts would)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time

import pytest
import redis

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import CircuitOpen, TransientError
from ingest_workers.guards.breaker import BreakerPolicy, CircuitBreaker
from ingest_workers.guards.ratelimit import RateLimiter

pytestmark = pytest.mark.integration
CONTEXT = multiprocessing.get_context("spawn")  # a fresh interpreter, like a worker on another host


def take_tokens(url: str, rate: float, seconds: float, out: multiprocessing.Queue) -> None:
    client = redis.Redis.from_url(url)
    limiter, stamps = RateLimiter(client), []
    deadline = time.time() + seconds
    while time.time() < deadline:
        limiter.acquire("shop", rate)
        stamps.append(time.time())
    out.put(stamps)


def run_processes(target: object, args: tuple[object, ...], count: int) -> list[object]:
    out = CONTEXT.Queue()
    processes = [CONTEXT.Process(target=target, args=(*args, out)) for _ in range(count)]
    for process in processes:
        process.start()
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
        assert process.exitcode == 0
    return results


def test_four_processes_together_keep_to_the_configured_rate(redis_client: redis.Redis) -> None:
    rate = 20.0
    stamps = sorted(s for run in run_processes(take_tokens, (dsn(redis_client), rate, 3.0), 4) for s in run)
    # Skip the first second: processes start at different times.
    steady = [s for s in stamps if stamps[0] + 1.0 <= s <= stamps[-1]]
    measured = (len(steady) - 1) / (steady[-1] - steady[0])
    assert abs(measured - rate) / rate < 0.10, f"measured {measured:.2f}/s for {rate}/s"
    counts = [len(run) for run in run_processes(take_tokens, (dsn(redis_client), 10.0, 1.0), 4)]
    assert min(counts) >= 1  # every process got its share, none starved


def test_a_rate_of_zero_is_unlimited(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, sleep=lambda s: pytest.fail("must not wait"))
    assert [limiter.acquire("shop", 0) for _ in range(100)] == [0.0] * 100


def test_the_burst_lets_the_first_requests_through_at_once(redis_client: redis.Redis) -> None:
    waits: list[float] = []
    limiter = RateLimiter(redis_client, burst=3, sleep=waits.append)
    for _ in range(4):
        limiter.acquire("shop", 2.0)
    assert len(waits) == 1 and 0.3 < waits[0] <= 0.5


# Long enough that the circuit is still open when the last of the spawned processes reports
# (starting interpreters on a busy machine takes seconds); the test waits it out once.
COOLDOWN = 5.0


def fail_once(url: str, out: multiprocessing.Queue) -> None:
    breaker = CircuitBreaker(redis.Redis.from_url(url), BreakerPolicy(failures=3, cooldown=COOLDOWN, probe_timeout=5))

    def request() -> None:
        raise TransientError("HTTP 503")

    try:
        breaker.call("shop", request)
    except CircuitOpen:
        out.put("deferred")
    except TransientError:
        out.put("failed")


def probe(url: str, out: multiprocessing.Queue) -> None:
    breaker = CircuitBreaker(redis.Redis.from_url(url), BreakerPolicy(failures=3, cooldown=COOLDOWN, probe_timeout=5))
    try:
        breaker.check("shop")
        out.put("probe")
    except CircuitOpen:
        out.put("deferred")


def dsn(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def test_the_breaker_opens_for_every_process_lets_one_probe_and_closes(redis_client: redis.Redis) -> None:
    url = dsn(redis_client)
    outcomes = run_processes(fail_once, (url,), 5)
    # The first three failures open it; whoever came later was deferred without calling the source.
    assert outcomes.count("failed") >= 3
    breaker = CircuitBreaker(redis_client, BreakerPolicy(failures=3, cooldown=COOLDOWN, probe_timeout=5))
    assert breaker.state("shop") == "open"
    breaker.check("other_shop")  # other sources keep flowing
    with pytest.raises(CircuitOpen) as caught:
        breaker.check("shop")
    assert 0 < caught.value.retry_after <= COOLDOWN

    time.sleep(caught.value.retry_after + 0.1)  # the cool-down (a worker would have deferred its job)
    assert sorted(run_processes(probe, (url,), 4)) == ["deferred", "deferred", "deferred", "probe"]
    assert breaker.state("shop") == "half_open"
    breaker.record_success("shop")
    assert breaker.state("shop") == "closed"
    breaker.check("shop")


def test_a_failed_probe_opens_the_circuit_again(redis_client: redis.Redis) -> None:
    states: list[tuple[str, str]] = []
    breaker = CircuitBreaker(redis_client, BreakerPolicy(failures=2, cooldown=2.0, probe_timeout=5),
                             on_state=lambda source, state: states.append((source, state)))
    for _ in range(2):
        breaker.record_failure("shop")
    time.sleep(2.05)
    breaker.check("shop")  # the probe
    breaker.record_failure("shop")
    with pytest.raises(CircuitOpen):
        breaker.check("shop")
    assert [s for _, s in states] == ["closed", "open", "half_open", "open", "open"]


def test_a_success_resets_the_count_of_consecutive_failures(redis_client: redis.Redis) -> None:
    breaker = CircuitBreaker(redis_client, BreakerPolicy(failures=3, cooldown=10))
    for _ in range(5):
        breaker.record_failure("shop")
        breaker.record_success("shop")
    assert breaker.state("shop") == "closed"


def test_the_breaker_probe_is_bounded_by_its_own_timeout(redis_client: redis.Redis, settings: Settings) -> None:
    """after a probe took the half-open slot, the next may try within
    breaker_probe_timeout, not the job's 30 minutes."""
    settings = dataclasses.replace(settings, job_timeout=1800, breaker_failures=1, breaker_cooldown=0.05,
                                   breaker_probe_timeout=5)
    breaker = CircuitBreaker(redis_client, pipeline.breaker_policy(settings))
    breaker.record_failure("src")
    time.sleep(0.1)  # the cool-down is over
    breaker.check("src")  # this caller is the probe (and its worker dies here)
    with pytest.raises(CircuitOpen) as caught:
        breaker.check("src")
    assert 0 < caught.value.retry_after <= 5
