"""Run one fetch job: source -> stages -> dedup -> load, counting as it goes.

Records flow lazily from the source through the stages and are loaded in
batches of ``settings.batch_size``. Per batch: one Redis round trip to drop keys
already loaded, one PostgreSQL transaction (rows and rejections), then one Redis
round trip that marks the committed keys seen and adds the batch's metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice

from .breaker import STATES, BreakerPolicy, CircuitBreaker
from .connections import redis_errors
from .dedup import RedisDedup
from .domains import DOMAINS, Domain
from .errors import CircuitOpen
from .http import HttpClient, RetryPolicy
from .loader import PostgresLoader
from .metrics import (
    CIRCUIT_STATE,
    FETCH_REQUESTS,
    FETCH_RETRIES,
    JOB_DURATION,
    JOBS,
    JOBS_DEFERRED,
    LAST_SUCCESS,
    LOAD_DURATION,
    LOAD_ROWS,
    RATE_LIMIT_WAIT,
    RECORDS,
    MetricsRecorder,
)
from .models import Counts, Lineage, Record, Rejected, SourceSpec
from .ratelimit import RateLimiter
from .resources import Resources
from .runs import JobHistory
from .sources import make_source
from .stages import Item, compose, default_stages

log = logging.getLogger(__name__)


def run_fetch_job(spec: SourceSpec, run_id: str, job_id: str, queue: str, res: Resources) -> Counts:
    """Ingest ``spec`` for ``run_id``; record the job in ``ingest_jobs`` and in metrics.

    Any exception is recorded and re-raised, so RQ marks the job failed (or retries it).
    """
    history = JobHistory(res.pg)
    history.started(job_id, run_id, spec.name)
    lineage = Lineage(spec.name, run_id, job_id, datetime.now(UTC).isoformat())
    recorder, counts, started = MetricsRecorder(), Counts(), time.monotonic()
    log.info("job %s: fetching source %s (run %s)", job_id, spec.name, run_id)
    try:
        with redis_errors():  # the breaker and the rate limit talk to Redis too
            for batch_counts in ingest(spec, lineage, res, recorder):
                counts.add(batch_counts)
    except CircuitOpen as exc:
        log.warning("job %s: %s; deferring after %s", job_id, exc, counts.to_dict())
        recorder.inc(JOBS_DEFERRED, spec.name)
        _finish(res, recorder, spec.name, queue, "deferred", started)
        history.failed(job_id, counts, f"deferred: {exc}")
        raise
    except Exception as exc:
        log.error("job %s: source %s failed after %s: %s", job_id, spec.name, counts.to_dict(), exc)
        _finish(res, recorder, spec.name, queue, "failure", started)
        history.failed(job_id, counts, f"{type(exc).__name__}: {exc}")
        raise
    history.finished(job_id, counts)
    recorder.set(LAST_SUCCESS, time.time(), spec.name)
    _finish(res, recorder, spec.name, queue, "success", started)
    log.info("job %s: source %s done: %s", job_id, spec.name, counts.to_dict())
    return counts


def _finish(res: Resources, recorder: MetricsRecorder, source: str, queue: str, outcome: str,
            started: float) -> None:
    recorder.inc(JOBS, source, outcome)
    recorder.observe(JOB_DURATION, time.monotonic() - started, queue, outcome)
    with redis_errors():
        pipe = res.redis.pipeline(transaction=False)
        recorder.flush_to(pipe)
        pipe.execute()


def ingest(spec: SourceSpec, lineage: Lineage, res: Resources, recorder: MetricsRecorder) -> Iterator[Counts]:
    """Stream the source through the stages and load it batch by batch; yield each batch's counts."""
    domain = DOMAINS[spec.domain]
    settings = res.settings
    limiter = RateLimiter(res.redis)
    breaker = CircuitBreaker(
        res.redis, BreakerPolicy(settings.breaker_failures, settings.breaker_cooldown, settings.job_timeout),
        on_state=lambda source, state: recorder.set(CIRCUIT_STATE, STATES.index(state), source))
    client = HttpClient(
        res.http,
        timeout=(settings.http_connect_timeout, settings.http_read_timeout),
        policy=RetryPolicy(max_attempts=settings.http_max_attempts, max_backoff=settings.http_max_backoff),
        on_response=lambda status_class: recorder.inc(FETCH_REQUESTS, spec.name, status_class),
        on_retry=lambda error, delay: _note_retry(recorder, spec.name, error, delay),
        before_attempt=lambda: recorder.inc(RATE_LIMIT_WAIT, spec.name,
                                            amount=limiter.acquire(spec.name, spec.rate_limit)),
        max_body_bytes=settings.http_max_body_bytes,
        guard=lambda request: breaker.call(spec.name, request),
    )
    raw = _counted(make_source(spec, client, res.env).stream(), recorder, spec.name)
    # A source yields a Rejected itself for a page it could not read; stages pass it through.
    items = compose(default_stages(spec.fields, domain, lineage),
                    (r if isinstance(r, Rejected) else Record(r) for r in raw))
    batch_loader = BatchLoader(domain, lineage, res, recorder)
    while batch := list(islice(items, settings.batch_size)):
        yield batch_loader.load(batch)


def _counted(records: Iterable[object], recorder: MetricsRecorder, source: str) -> Iterator[object]:
    for record in records:
        recorder.inc(RECORDS, source, "fetch", "fetched")
        yield record


def _note_retry(recorder: MetricsRecorder, source: str, error: Exception, delay: float) -> None:
    recorder.inc(FETCH_RETRIES, source)
    log.warning("source %s: %s; retrying in %.1fs", source, error, delay)


class BatchLoader:
    """Dedup, load and account for one batch at a time."""

    def __init__(self, domain: Domain, lineage: Lineage, res: Resources, recorder: MetricsRecorder) -> None:
        self._domain = domain
        self._lineage = lineage
        self._res = res
        self._recorder = recorder
        self._dedup = RedisDedup(res.redis)
        self._loader = PostgresLoader(res.pg)

    def load(self, batch: list[Item]) -> Counts:
        source, inc = self._lineage.source, self._recorder.inc
        records = [item for item in batch if isinstance(item, Record)]
        rejected = [item for item in batch if isinstance(item, Rejected)]
        keys = [self._key(record) for record in records]
        with redis_errors():
            unseen = self._dedup.unseen(source, keys)
        fresh = [(record.row, key) for record, key, new in zip(records, keys, unseen) if new]

        started = time.monotonic()
        inserted, refused = self._loader.load_batch(self._domain, [row for row, _ in fresh], rejected,
                                                    self._lineage)
        self._recorder.observe(LOAD_DURATION, time.monotonic() - started, source)
        self._recorder.observe(LOAD_ROWS, len(fresh), source)

        for item in (*rejected, *refused):
            inc(RECORDS, source, item.stage, "rejected")
        counts = Counts(rejected=len(rejected) + len(refused), loaded=inserted)
        counts.duplicate = len(records) - counts.loaded - len(refused)
        inc(RECORDS, source, "dedup", "duplicate", amount=len(records) - len(fresh))
        inc(RECORDS, source, "load", "duplicate", amount=len(fresh) - len(refused) - inserted)
        inc(RECORDS, source, "load", "loaded", amount=inserted)
        counts.fetched = len(batch)

        # Only now, after the commit: mark what PostgreSQL holds, and publish the counts.
        refused_payloads = {id(item.raw) for item in refused}
        committed = [key for row, key in fresh if id(row["raw"]) not in refused_payloads]
        with redis_errors():
            pipe = self._res.redis.pipeline(transaction=False)
            self._dedup.mark_seen(pipe, source, committed)
            self._recorder.flush_to(pipe)
            pipe.execute()
        return counts

    def _key(self, record: Record) -> str:
        # The natural key without ``source``: the Redis set is per source already.
        return "\x1f".join(str(record.row[column]) for column in self._domain.key[1:])
