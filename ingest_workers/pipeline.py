"""Run one fetch job: source -> stages -> dedup -> load, counting as it goes.

Records flow lazily from the source through the stages and are loaded in
batches of ``settings.batch_size``. Per batch: one Redis round trip to drop keys
already loaded, one PostgreSQL transaction (rows, rejections, the source's cursor
mark and the transactional sinks), then one Redis round trip that marks the
committed keys seen and adds the batch's metrics.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

import psycopg2.extensions
import redis
import requests

from .core.config import Settings
from .core.connections import redis_errors
from .core.envrefs import resolve_entry
from .core.errors import CircuitOpen, PermanentError
from .core.models import Counts, Lineage, LostPage, Record, Rejected, SourceSpec, Window
from .core.permissions import Permissions
from .core.redact import redact
from .datasets import Dataset, dataset_of
from .guards.breaker import BreakerPolicy, CircuitBreaker
from .guards.progress import JobProgress
from .guards.ratelimit import RateLimiter
from .load.cursors import CursorStore, highest
from .load.dedup import RedisDedup, fingerprint
from .load.loader import PostgresLoader
from .load.pgretry import Connection, PostgresRetry
from .load.schema import differences
from .load.sinks import Sink, SinkContext, make_sink
from .ops.history import JobHistory
from .ops.metrics import (
    CIRCUIT_STATE,
    CIRCUIT_STATES,
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
    announce_job,
)
from .sources import SourceContext, make_source
from .sources.http import HttpClient, RetryPolicy
from .sources.prefetch import read_ahead
from .stages.base import Item, compose
from .stages.registry import source_stages

log = logging.getLogger(__name__)


class Resources(Protocol):
    """The clients a job runs with (:class:`ingest_workers.runtime.resources.Resources` is one):
    this process's, so a forked job never shares a parent's socket."""

    settings: Settings
    env: Mapping[str, str]  # where sources look up the secrets their catalog entry names

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def pg(self) -> psycopg2.extensions.connection: ...

    @property
    def http(self) -> requests.Session: ...

    def discard_pg(self) -> None: ...


def run_fetch_job(spec: SourceSpec, run_id: str, job_id: str, queue: str, res: Resources,
                  window: Window | None = None) -> Counts:
    """Ingest ``spec`` for ``run_id`` (only ``window``, for a backfill job); record the job
    in ``ingest_jobs`` and in metrics.

    Any exception is recorded and re-raised, so RQ marks the job failed (or retries it).
    """
    postgres = postgres_retry(res)
    history = HistoryWriter(postgres)
    history.started(job_id, run_id, spec.name)
    with redis_errors():
        announce_job(res.redis, spec.name, spec.interval_seconds, time.time())
    lineage = Lineage(spec.name, run_id, job_id, datetime.now(UTC).isoformat())
    recorder, counts, started = MetricsRecorder(), Counts(), time.monotonic()
    log.info("job %s: fetching source %s (run %s)", job_id, spec.name, run_id)
    try:
        with redis_errors():  # the breaker and the rate limit talk to Redis too
            for batch_counts in ingest(spec, lineage, res, recorder, window):
                counts.add(batch_counts)
    except CircuitOpen as exc:
        log.warning("job %s: %s; deferring after %s", job_id, exc, counts.to_dict())
        recorder.inc(JOBS_DEFERRED, spec.name)
        _finish(res, recorder, spec.name, queue, "deferred", started)
        history.failed(job_id, counts, redact(f"deferred: {exc}"))
        raise
    except Exception as exc:
        log.error("job %s: source %s failed after %s: %s", job_id, spec.name, counts.to_dict(), exc)
        _finish(res, recorder, spec.name, queue, "failure", started)
        history.failed(job_id, counts, redact(f"{type(exc).__name__}: {exc}"))
        raise
    if counts.lost_pages:  # what was read is loaded, but not all of the source: never a success
        reason = lost_pages_reason(counts.lost_pages)
        log.error("job %s: source %s partial: %s; %s", job_id, spec.name, reason, counts.to_dict())
        history.partial(job_id, counts, reason)
        _finish(res, recorder, spec.name, queue, "partial", started)
        return counts
    history.finished(job_id, counts)
    history.record_stats(job_id, dataset_of(spec.dataset, spec.declaration), spec.name, run_id)
    recorder.set(LAST_SUCCESS, time.time(), spec.name)
    _finish(res, recorder, spec.name, queue, "success", started)
    log.info("job %s: source %s done: %s", job_id, spec.name, counts.to_dict())
    return counts


def lost_pages_reason(lost: Sequence[str], shown: int = 10) -> str:
    """``lost 2 pages: page 3: the body is not JSON; page 9: ...`` (the first ``shown`` of them)."""
    more = f"; and {len(lost) - shown} more" if len(lost) > shown else ""
    return f"lost {len(lost)} page{'s' if len(lost) != 1 else ''}: {'; '.join(lost[:shown])}{more}"


def _finish(res: Resources, recorder: MetricsRecorder, source: str, queue: str, outcome: str,
            started: float) -> None:
    recorder.inc(JOBS, source, outcome)
    recorder.observe(JOB_DURATION, time.monotonic() - started, queue, outcome)
    with redis_errors():
        pipe = res.redis.pipeline(transaction=False)
        recorder.flush_to(pipe)
        pipe.execute()


def ingest(spec: SourceSpec, lineage: Lineage, res: Resources, recorder: MetricsRecorder,
           window: Window | None = None) -> Iterator[Counts]:
    """Stream the source through the stages and load it batch by batch; yield each batch's counts.

    An incremental run starts at the source's cursor and advances it with each batch;
    a backfill ``window`` reads only that window and leaves the cursor alone. A source
    without a cursor that can resume (page paging) starts where an earlier run of the
    same job left off, its progress saved after each committed batch.
    """
    spec = resolved(spec, res)
    dataset = dataset_of(spec.dataset, spec.declaration)
    postgres = postgres_retry(res)
    _check_table(postgres, dataset)
    client = _http_client(spec, res, recorder)
    cursor_field = spec.cursor_field if window is None else None
    if window is not None:
        context = SourceContext(client, res.env, since=window.since, until=window.until,
                                fetch_concurrency=res.settings.fetch_concurrency)
    else:
        since = postgres.run(lambda conn: CursorStore(conn).position(spec.name)) if cursor_field else None
        context = SourceContext(client, res.env, since=since, fetch_concurrency=res.settings.fetch_concurrency)
    sinks = [make_sink(entry, SinkContext(dataset, lineage, lambda: res.pg)) for entry in spec.sinks]
    source = make_source(spec, context)
    # A cursor is itself the resume point: page numbers under a newer mark address other records.
    progress = (JobProgress(res.redis, lineage.job_id)
                if getattr(source, "resumable", False) and cursor_field is None else None)
    if progress is not None:
        start = progress.page()
        if start > 1:
            log.info("job %s: resuming source %s at page %d", lineage.job_id, spec.name, start)
        source.resume_from(start)
    # Read ahead in a thread, so the source's latency overlaps the work on what it served. The
    # thread runs pages ahead, so each record carries the page to resume at as of its reading.
    # A source that fetches its own pages ahead (concurrently, handed over in order) needs none.
    depth = 0 if getattr(source, "fetches_ahead", False) else res.settings.prefetch_pages
    stream = read_ahead(_with_resume_page(source), depth, spec.page_size)
    position = _Position()
    raw = _counted(position.follow(stream), recorder, spec.name)
    # A source yields a Rejected itself for a page it could not read; stages pass it through.
    items = compose(source_stages(spec, dataset, lineage),
                    (r if isinstance(r, Rejected) else Record(r) for r in raw))
    batch_loader = BatchLoader(dataset, lineage, res, recorder, postgres, cursor_field, sinks)
    with closing(stream):  # stops the read-ahead thread when a batch fails
        while batch := list(islice(items, res.settings.batch_size)):
            counts = batch_loader.load(batch)
            if progress is not None:
                # A resume page past a lost page would skip it, like a cursor: it stops at the gap.
                gap = batch_loader.first_lost_page
                resume = position.resume_page if gap is None or position.resume_page is None \
                    else min(position.resume_page, gap)
                with redis_errors():
                    progress.save(resume)
            yield counts
    if progress is not None:
        with redis_errors():
            progress.clear()


def resolved(spec: SourceSpec, res: Resources) -> SourceSpec:
    """The job's entry with its ``${VAR}`` references expanded from this worker's environment
    (their values, and those of the ``*_env`` variables it names, hidden from every message), once
    the worker's permissions allow the variables, plugins and local files it names (:class:`Refused`
    otherwise)."""
    permissions = Permissions.of(res.settings)
    permissions.check_variables(spec)
    spec = SourceSpec.from_dict(resolve_entry(spec.to_dict(), res.env, f"source {spec.name}"))
    permissions.check(spec)
    return spec


_TABLES_MATCHING: set[tuple[int, str]] = set()  # (pid, declaration) this process found its table to match


def _check_table(postgres: PostgresRetry, dataset: Dataset) -> None:
    """Fail the job (permanently: running it again cannot help) when the dataset's table is missing
    or differs from the declaration the job carries, saying how; checked once per process."""
    marker = (os.getpid(), repr(dataset.to_dict()))
    if marker in _TABLES_MATCHING:
        return
    differ = postgres.run(lambda conn: differences(conn, dataset.family))
    if differ:
        raise PermanentError("the table does not match the dataset; run `ingest db migrate` with the catalog "
                             "that declares it: " + "; ".join(differ))
    _TABLES_MATCHING.add(marker)


def _http_client(spec: SourceSpec, res: Resources, recorder: MetricsRecorder) -> HttpClient:
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
    )


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """A half-open probe holds its slot for ``breaker_probe_timeout``, its own bound (not the
    job's timeout): a probe whose worker died frees the way for the next within that time."""
    return BreakerPolicy(settings.breaker_failures, settings.breaker_cooldown, settings.breaker_probe_timeout)


def _with_resume_page(source: Any) -> Iterator[tuple[object, int | None]]:
    """The source's records, each with the page it would resume at right after that record."""
    for record in source.stream():
        yield record, getattr(source, "resume_page", None)


class _Position:
    """The resume page of the last record the job took (not of the page read ahead)."""

    resume_page: int | None = None

    def follow(self, pairs: Iterable[tuple[object, int | None]]) -> Iterator[object]:
        for record, resume_page in pairs:
            self.resume_page = resume_page
            yield record


def _counted(records: Iterable[object], recorder: MetricsRecorder, source: str) -> Iterator[object]:
    for record in records:
        recorder.inc(RECORDS, source, "fetch", "fetched")
        yield record


def _note_retry(recorder: MetricsRecorder, source: str, error: Exception, delay: float) -> None:
    recorder.inc(FETCH_RETRIES, source)
    log.warning("source %s: %s; retrying in %.1fs", source, error, delay)


class BatchLoader:
    """Dedup, load and account for one batch at a time; advance the cursor and feed the
    sinks with the batch.

    The cursor covers only records before the job's first lost page (:class:`LostPage`):
    the mark stays before the gap, so the next run fetches the lost page again.
    """

    def __init__(self, dataset: Dataset, lineage: Lineage, res: Resources, recorder: MetricsRecorder,
                 postgres: PostgresRetry, cursor_field: str | None = None, sinks: Sequence[Sink] = ()) -> None:
        self._dataset = dataset
        self._lineage = lineage
        self._res = res
        self._recorder = recorder
        self._dedup = RedisDedup(res.redis, res.settings.dedup_ttl)
        self._postgres = postgres
        self._loader: PostgresLoader | None = None
        self._cursor_field = cursor_field
        self._sinks_in_transaction = [s for s in sinks if getattr(s, "in_transaction", False)]
        self._sinks_after_commit = [s for s in sinks if not getattr(s, "in_transaction", False)]
        self.lost_pages: list[str] = []  # the reasons of the pages lost so far in this job
        self.first_lost_page: int | None = None  # page paging: the number of the job's first lost page

    def load(self, batch: list[Item]) -> Counts:
        source, inc, dataset = self._lineage.source, self._recorder.inc, self._dataset
        records = [item for item in batch if isinstance(item, Record)]
        rejected = [item for item in batch if isinstance(item, Rejected)]
        keys = [dataset.natural_key(record.row) for record in records]
        merge = dataset.write == "merge"
        fresh, all_new = self._not_loaded(records, keys)
        fresh_rows = [row for row, _, _ in fresh]

        started = time.monotonic()
        in_transaction = self._in_transaction(self._covered_by_cursor(batch))
        result = self._postgres.run(
            lambda conn: self._loader_for(conn).load_batch(dataset, fresh_rows, rejected, self._lineage,
                                                           in_transaction, all_new, self._feed_transactional_sinks))
        inserted, refused, updated, written = result.inserted, result.refused, result.updated, result.written
        self._recorder.observe(LOAD_DURATION, time.monotonic() - started, source)
        self._recorder.observe(LOAD_ROWS, len(fresh), source)

        for item in (*rejected, *refused):
            inc(RECORDS, source, item.stage, "rejected")
        counts = Counts(rejected=len(rejected) + len(refused), loaded=inserted, updated=updated,
                        nested=result.nested)  # items of nested datasets: apart from the identity
        counts.duplicate = len(records) - inserted - updated - len(refused)
        inc(RECORDS, source, "dedup", "duplicate", amount=len(records) - len(fresh))
        inc(RECORDS, source, "load", "duplicate", amount=len(fresh) - len(refused) - inserted - updated)
        inc(RECORDS, source, "load", "loaded", amount=inserted)
        inc(RECORDS, source, "load", "updated", amount=updated)
        counts.fetched = len(batch)
        lost = [item for item in batch if isinstance(item, LostPage)]
        counts.lost_pages = [item.reason for item in lost]
        if lost and self.first_lost_page is None and isinstance(lost[0].raw, dict):
            page = lost[0].raw.get("page")
            self.first_lost_page = page if isinstance(page, int) else None
        self.lost_pages.extend(counts.lost_pages)

        # Only now, after the commit: mark what PostgreSQL holds (inserted now or before), and
        # publish the counts.
        refused_payloads = {id(item.raw) for item in refused}
        committed = [(row, key, current) for row, key, current in fresh if id(row["raw"]) not in refused_payloads]
        with redis_errors():
            pipe = self._res.redis.pipeline(transaction=False)
            if merge:  # in batch order: a key that repeats is remembered with its last record's print
                self._dedup.remember(pipe, source, {key: current for _, key, current in committed}, self._dedup.ttl)
            else:
                self._dedup.mark_seen(pipe, source, [key for _, key, _ in committed], self._dedup.ttl)
            self._recorder.flush_to(pipe)
            pipe.execute()
        for sink in self._sinks_after_commit:  # exactly the rows this batch inserted or updated
            sink.consume(iter(written))
        return counts

    def _covered_by_cursor(self, batch: list[Item]) -> list[Record]:
        """The batch's records the cursor's mark may cover: those before the job's first lost page."""
        if self.lost_pages:
            return []
        covered = []
        for item in batch:
            if isinstance(item, LostPage):
                break
            if isinstance(item, Record):
                covered.append(item)
        return covered

    def _not_loaded(self, records: list[Record], keys: list[str]) -> tuple[list[tuple[dict[str, Any], str, str]], bool]:
        """The records Redis does not know as loaded (row, key, fingerprint), and whether none of
        their keys was ever loaded. Append: the key is enough. Merge: a changed record must get
        through, so what was loaded is compared (its fingerprint), not just the key."""
        source, dataset = self._lineage.source, self._dataset
        with redis_errors():
            if dataset.write != "merge":
                unseen = self._dedup.unseen(source, keys)
                return [(r.row, key, "") for r, key, new in zip(records, keys, unseen) if new], False
            prints = [fingerprint(dataset, record.row) for record in records]
            known = self._dedup.remembered(source, keys)
        fresh = [(r.row, key, current) for r, key, current, remembered in zip(records, keys, prints, known)
                 if remembered != current]
        all_new = all(remembered is None for remembered, current in zip(known, prints) if remembered != current)
        return fresh, all_new

    def _loader_for(self, conn: Connection) -> PostgresLoader:
        if self._loader is None or self._loader.connection is not conn:
            self._loader = PostgresLoader(conn)  # after a reconnect: new connection, new staging table
        return self._loader

    def _in_transaction(self, records: list[Record]) -> Callable[[Any], None] | None:
        """What commits with the batch's last rows: the cursor's new mark (the highest among
        the batch's valid ``records`` it may cover, loaded now or before)."""
        mark = highest(r.row.get(self._cursor_field) for r in records) if self._cursor_field else None
        if mark is None or self._cursor_field is None:
            return None
        field = self._cursor_field
        return lambda cur: CursorStore.advance(cur, field, mark, self._lineage)

    def _feed_transactional_sinks(self, cur: Any, inserted: list[dict[str, Any]]) -> None:
        """In each transaction that inserts rows: the transactional sinks get exactly those rows,
        so what they write commits, or rolls back, with them."""
        for sink in self._sinks_in_transaction:
            sink.consume(inserted)


def postgres_retry(res: Resources) -> PostgresRetry:
    """Units of PostgreSQL work that wait out an outage of up to ``pg_retry_seconds``."""
    return PostgresRetry(lambda: res.pg, res.discard_pg, res.settings.pg_retry_seconds,
                         on_retry=lambda error, delay: log.warning("PostgreSQL: %s; retrying in %.1fs", error, delay))


class HistoryWriter:
    """:class:`JobHistory` writes that survive a PostgreSQL outage."""

    def __init__(self, postgres: PostgresRetry) -> None:
        self._postgres = postgres

    def started(self, job_id: str, run_id: str, source: str) -> None:
        self._postgres.run(lambda conn: JobHistory(conn).started(job_id, run_id, source))

    def finished(self, job_id: str, counts: Counts) -> None:
        self._postgres.run(lambda conn: JobHistory(conn).finished(job_id, counts))

    def record_stats(self, job_id: str, dataset: Dataset, source: str, run_id: str) -> None:
        """The column statistics of the rows this job loaded, for a dataset with ``stats``."""
        if dataset.stats_columns:
            self._postgres.run(lambda conn: JobHistory(conn).record_stats(job_id, dataset.table, source, run_id,
                                                                          dataset.stats_columns))

    def failed(self, job_id: str, counts: Counts, error: str) -> None:
        self._postgres.run(lambda conn: JobHistory(conn).failed(job_id, counts, error))

    def partial(self, job_id: str, counts: Counts, reason: str) -> None:
        self._postgres.run(lambda conn: JobHistory(conn).partial(job_id, counts, reason))
