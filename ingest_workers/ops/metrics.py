"""Prometheus metrics, counted in Redis so they are right under any process model.

Why Redis and not prometheus-client's multiprocess mode: the default ``rq worker``
forks a child per job, and multiprocess mode writes one file per pid, so files
(and scrape time) grow with every job ever run, and a directory cannot be shared
by workers on several hosts. Here each job adds its increments to one Redis hash
in the same round trip that marks its records seen; ``ingest metrics-server``
turns the hash into Prometheus families at scrape time. The hash has one field
per (metric, label values), and label values are bounded (catalog source names,
fixed outcome/stage/status words), so a scrape costs the same after a million jobs.
Counters restart from zero if Redis loses its data; ``rate()`` handles such resets.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

METRICS_KEY = "ingest:metrics"
GAUGES_KEY = "ingest:metrics:gauges"


@dataclass(frozen=True)
class Declared:
    name: str  # counters without the _total suffix, which prometheus-client adds
    kind: str  # "counter" | "histogram" | "gauge"
    doc: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


RECORDS = Declared("ingest_records", "counter", "Records by source, stage and outcome "
                   "(fetched, rejected, duplicate, loaded, updated).", ("source", "stage", "outcome"))
FETCH_REQUESTS = Declared("ingest_fetch_requests", "counter", "HTTP requests to sources by status class "
                          "(2xx, 4xx, 5xx, error = no answer).", ("source", "status_class"))
FETCH_RETRIES = Declared("ingest_fetch_retries", "counter", "HTTP requests retried after a transient failure.",
                         ("source",))
JOBS = Declared("ingest_jobs", "counter",
                "Fetch jobs finished, by source and outcome (success, partial: pages lost, failure).",
                ("source", "outcome"))
JOB_DURATION = Declared("ingest_job_duration_seconds", "histogram", "Wall time of fetch jobs.",
                        ("queue", "outcome"), (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
LOAD_DURATION = Declared("ingest_load_batch_duration_seconds", "histogram",
                         "Time to load one batch into PostgreSQL (one transaction).", ("source",),
                         (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LOAD_ROWS = Declared("ingest_load_batch_rows", "histogram", "Records per loaded batch.", ("source",),
                     (1, 10, 100, 250, 500, 1000, 2500, 5000, 10000))
JOB_RETRIES = Declared("ingest_job_retries", "counter",
                       "Fetch jobs that failed transiently and were scheduled to run again.", ("source",))
LAST_SUCCESS = Declared("ingest_last_success_timestamp_seconds", "gauge",
                        "Unix time of the last fetch job of a source that succeeded.", ("source",))
CIRCUIT_STATE = Declared("ingest_circuit_state", "gauge",
                         "Circuit breaker of each source as last seen: 0 closed, 1 half-open, 2 open.", ("source",))
CIRCUIT_STATES = MappingProxyType({"closed": 0, "half_open": 1, "open": 2})
RATE_LIMIT_WAIT = Declared("ingest_rate_limit_wait_seconds", "counter",
                           "Time spent waiting for the cluster-wide rate limit of a source.", ("source",))
JOBS_DEFERRED = Declared("ingest_jobs_deferred", "counter",
                         "Fetch jobs deferred because a circuit was open or the server asked for a long wait.",
                         ("source",))
FIRST_ATTEMPT = Declared("ingest_first_attempt_timestamp_seconds", "gauge",
                         "Unix time of the first fetch job of a source (staleness of a source never succeeded).",
                         ("source",))
SOURCE_INTERVAL = Declared("ingest_source_interval_seconds", "gauge",
                           "Seconds between scheduled runs of each source (its interval_seconds, or its cron slot).",
                           ("source",))
SLOTS_SKIPPED = Declared("ingest_schedule_slots_skipped", "counter",
                         "Scheduled slots not run because the source's previous run was still in flight.",
                         ("source",))
FANOUT_PARENTS = Declared("ingest_fanout_parents", "counter",
                          "Parent records (or partitions) a child source's jobs processed, by outcome (done, failed).",
                          ("source", "outcome"))
REPLACE_DELETED = Declared("ingest_replace_deleted_rows", "counter",
                           "Rows a replace switch removed: the source's rows its complete run no longer served "
                           "(rows, not fetched records: outside the records' counts).", ("source",))
REQUESTS_SKIPPED = Declared("ingest_requests_skipped", "counter",
                            "HTTP requests answered with a status the source's on_status skips (a deleted parent's "
                            "404): no records, no error.", ("source",))

DECLARED = MappingProxyType({d.name: d for d in (
    RECORDS, FETCH_REQUESTS, FETCH_RETRIES, JOBS, JOB_RETRIES, JOB_DURATION, LOAD_DURATION, LOAD_ROWS, LAST_SUCCESS,
    CIRCUIT_STATE, RATE_LIMIT_WAIT, JOBS_DEFERRED, FIRST_ATTEMPT, SOURCE_INTERVAL, SLOTS_SKIPPED, FANOUT_PARENTS,
    REPLACE_DELETED, REQUESTS_SKIPPED)})

# Series every catalog source has from the start, at zero (a closed circuit), so that
# rate(), ratios and alerts work before the first event instead of seeing no series.
# Sample values are (metric, label values after the source, value).
SOURCE_DEFAULTS: tuple[tuple[Declared, tuple[str, ...], float], ...] = (
    (RECORDS, ("fetch", "fetched"), 0), (RECORDS, ("validate", "rejected"), 0),
    (RECORDS, ("dedup", "duplicate"), 0), (RECORDS, ("load", "duplicate"), 0), (RECORDS, ("load", "loaded"), 0),
    (RECORDS, ("load", "updated"), 0), (RECORDS, ("load", "deleted"), 0), (FETCH_REQUESTS, ("2xx",), 0),
    (FETCH_REQUESTS, ("4xx",), 0), (FETCH_REQUESTS, ("5xx",), 0),
    (FETCH_REQUESTS, ("error",), 0), (FETCH_RETRIES, (), 0), (JOB_RETRIES, (), 0),
    (JOBS, ("success",), 0), (JOBS, ("failure",), 0), (CIRCUIT_STATE, (), CIRCUIT_STATES["closed"]),
    (RATE_LIMIT_WAIT, (), 0), (JOBS_DEFERRED, (), 0),
)


@functools.lru_cache(maxsize=4096)  # labels are bounded; a job counts the same few series per record
def _field(metric: Declared, labels: tuple[str, ...], suffix: str = "") -> str:
    if len(labels) != len(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {labels}")
    return json.dumps([metric.name, list(labels), suffix], separators=(",", ":"))


class MetricsRecorder:
    """Collects increments in memory; :meth:`flush_to` adds them to a Redis pipeline.

    Thread-safe: a job's read-ahead thread counts its HTTP answers while the job flushes.
    """

    def __init__(self) -> None:
        self._counts: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, float] = {}
        self._lock = threading.Lock()

    def inc(self, metric: Declared, *labels: str, amount: float = 1) -> None:
        if amount:
            with self._lock:
                self._counts[_field(metric, labels)] += amount

    def observe(self, metric: Declared, value: float, *labels: str) -> None:
        index = bisect.bisect_left(metric.buckets, value)
        bound = floatToGoString(metric.buckets[index]) if index < len(metric.buckets) else "+Inf"
        with self._lock:
            self._counts[_field(metric, labels, f"le={bound}")] += 1
            self._counts[_field(metric, labels, "sum")] += value

    def set(self, metric: Declared, value: float, *labels: str) -> None:
        with self._lock:
            self._gauges[_field(metric, labels)] = value

    def flush_to(self, pipe: redis.client.Pipeline) -> None:
        """Queue the pending increments on ``pipe`` and forget them (the caller executes it)."""
        with self._lock:
            counts, gauges = self._counts, self._gauges
            self._counts, self._gauges = defaultdict(float), {}
        for field, amount in counts.items():
            if float(amount).is_integer():
                pipe.hincrby(METRICS_KEY, field, int(amount))
            else:
                pipe.hincrbyfloat(METRICS_KEY, field, amount)
        if gauges:
            pipe.hset(GAUGES_KEY, mapping=gauges)


def set_circuit_state(client: redis.Redis | redis.client.Pipeline, source: str, state: str) -> None:
    """Publish the circuit breaker state of ``source`` ("closed", "half_open" or "open").

    The breaker calls this on every transition; on a pipeline, the caller executes it.
    """
    if state not in CIRCUIT_STATES:
        raise ValueError(f"circuit state must be one of {', '.join(CIRCUIT_STATES)}, got {state!r}")
    client.hset(GAUGES_KEY, _field(CIRCUIT_STATE, (source,)), CIRCUIT_STATES[state])


def announce_job(client: redis.Redis, source: str, interval_seconds: int | None, now: float) -> None:
    """What a starting job of ``source`` tells the alerts, whichever catalog the metrics server read:
    both job outcomes exist (at 0 until counted), when the source was first tried, and its interval."""
    pipe = client.pipeline(transaction=False)
    for outcome in ("success", "failure"):
        pipe.hincrby(METRICS_KEY, _field(JOBS, (source, outcome)), 0)
    pipe.hsetnx(GAUGES_KEY, _field(FIRST_ATTEMPT, (source,)), now)
    if interval_seconds:
        pipe.hset(GAUGES_KEY, _field(SOURCE_INTERVAL, (source,)), interval_seconds)
    pipe.execute()


def count_job_retry(client: redis.Redis, source: str) -> None:
    """Count one job of ``source`` that RQ will run again."""
    client.hincrby(METRICS_KEY, _field(JOB_RETRIES, (source,)), 1)


def count_skipped_slot(client: redis.Redis, source: str) -> None:
    """Count one scheduled slot of ``source`` skipped for a run still in flight."""
    client.hincrby(METRICS_KEY, _field(SLOTS_SKIPPED, (source,)), 1)


def read_counters(client: redis.Redis, metric: Declared, label_sets: Iterable[tuple[str, ...]]) -> list[float]:
    """The current values of ``metric`` for each of ``label_sets`` (0 for a series not counted yet)."""
    fields = [_field(metric, labels) for labels in label_sets]
    return [float(value or 0) for value in client.hmget(METRICS_KEY, fields)] if fields else []


class RedisCollector(Collector):
    """Reads the counted metrics from Redis at scrape time; ``extra`` adds live gauges.

    ``sources`` (the catalog's names) get the :data:`SOURCE_DEFAULTS` series until they have their own;
    ``intervals`` (the catalog's ``interval_seconds`` by source) stand in until a job published its own.
    """

    def __init__(self, client: redis.Redis, extra: Collector | None = None, sources: Iterable[str] = (),
                 intervals: dict[str, int] | None = None) -> None:
        self._client = client
        self._extra = extra
        self._sources = tuple(sources)
        self._intervals = dict(intervals or {})

    def collect(self) -> Iterator[Metric]:
        values: dict[str, dict[tuple[str, ...], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for key in (METRICS_KEY, GAUGES_KEY):
            for raw_field, raw_value in self._client.hgetall(key).items():
                try:
                    name, labels, suffix = json.loads(raw_field)
                except (ValueError, TypeError):
                    continue  # not ours; never let one bad field break the scrape
                if name in DECLARED:
                    values[name][tuple(labels)][suffix] = float(raw_value)
        for source in self._sources:
            for metric, rest, value in SOURCE_DEFAULTS:
                values[metric.name][(source, *rest)].setdefault("", value)
        for source, seconds in self._intervals.items():
            values[SOURCE_INTERVAL.name][(source,)].setdefault("", seconds)
        for metric in DECLARED.values():
            yield _family(metric, values.get(metric.name, {}))
        if self._extra is not None:
            yield from self._extra.collect()


def _family(metric: Declared, series: dict[tuple[str, ...], dict[str, float]]) -> Metric:
    labels = list(metric.labels)
    if metric.kind == "counter":
        family: Any = CounterMetricFamily(metric.name, metric.doc, labels=labels)
        for label_values, parts in sorted(series.items()):
            family.add_metric(list(label_values), parts.get("", 0.0))
        return family
    if metric.kind == "gauge":
        family = GaugeMetricFamily(metric.name, metric.doc, labels=labels)
        for label_values, parts in sorted(series.items()):
            family.add_metric(list(label_values), parts.get("", math.nan))
        return family
    family = HistogramMetricFamily(metric.name, metric.doc, labels=labels)
    for label_values, parts in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for bound in [*map(floatToGoString, metric.buckets), "+Inf"]:
            cumulative += parts.get(f"le={bound}", 0.0)
            buckets.append((bound, cumulative))
        family.add_metric(list(label_values), buckets, parts.get("sum", 0.0))
    return family
