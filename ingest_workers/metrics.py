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
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
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
                   "(fetched, rejected, duplicate, loaded).", ("source", "stage", "outcome"))
FETCH_REQUESTS = Declared("ingest_fetch_requests", "counter", "HTTP requests to sources by status class "
                          "(2xx, 4xx, 5xx, error = no answer).", ("source", "status_class"))
FETCH_RETRIES = Declared("ingest_fetch_retries", "counter", "HTTP requests retried after a transient failure.",
                         ("source",))
JOBS = Declared("ingest_jobs", "counter", "Fetch jobs finished, by source and outcome (success, failure).",
                ("source", "outcome"))
JOB_DURATION = Declared("ingest_job_duration_seconds", "histogram", "Wall time of fetch jobs.",
                        ("queue", "outcome"), (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
LOAD_DURATION = Declared("ingest_load_batch_duration_seconds", "histogram",
                         "Time to load one batch into PostgreSQL (one transaction).", ("source",),
                         (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LOAD_ROWS = Declared("ingest_load_batch_rows", "histogram", "Records per loaded batch.", ("source",),
                     (1, 10, 100, 250, 500, 1000, 2500, 5000, 10000))
LAST_SUCCESS = Declared("ingest_last_success_timestamp_seconds", "gauge",
                        "Unix time of the last fetch job of a source that succeeded.", ("source",))
CIRCUIT_STATE = Declared("ingest_circuit_state", "gauge",
                         "Circuit breaker of a source as last seen: 0 closed, 1 half-open, 2 open.", ("source",))
RATE_LIMIT_WAIT = Declared("ingest_rate_limit_wait_seconds", "counter",
                           "Time spent waiting for the cluster-wide rate limit of a source.", ("source",))
JOBS_DEFERRED = Declared("ingest_jobs_deferred", "counter", "Fetch jobs deferred because a circuit was open.",
                         ("source",))

DECLARED = {d.name: d for d in (RECORDS, FETCH_REQUESTS, FETCH_RETRIES, JOBS, JOB_DURATION, LOAD_DURATION,
                                LOAD_ROWS, LAST_SUCCESS, CIRCUIT_STATE, RATE_LIMIT_WAIT, JOBS_DEFERRED)}


def _field(metric: Declared, labels: tuple[str, ...], suffix: str = "") -> str:
    if len(labels) != len(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {labels}")
    return json.dumps([metric.name, list(labels), suffix], separators=(",", ":"))


class MetricsRecorder:
    """Collects increments in memory; :meth:`flush_to` adds them to a Redis pipeline."""

    def __init__(self) -> None:
        self._counts: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, float] = {}

    def inc(self, metric: Declared, *labels: str, amount: float = 1) -> None:
        if amount:
            self._counts[_field(metric, labels)] += amount

    def observe(self, metric: Declared, value: float, *labels: str) -> None:
        index = bisect.bisect_left(metric.buckets, value)
        bound = floatToGoString(metric.buckets[index]) if index < len(metric.buckets) else "+Inf"
        self._counts[_field(metric, labels, f"le={bound}")] += 1
        self._counts[_field(metric, labels, "sum")] += value

    def set(self, metric: Declared, value: float, *labels: str) -> None:
        self._gauges[_field(metric, labels)] = value

    def flush_to(self, pipe: redis.client.Pipeline) -> None:
        """Queue the pending increments on ``pipe`` and forget them (the caller executes it)."""
        for field, amount in self._counts.items():
            if float(amount).is_integer():
                pipe.hincrby(METRICS_KEY, field, int(amount))
            else:
                pipe.hincrbyfloat(METRICS_KEY, field, amount)
        if self._gauges:
            pipe.hset(GAUGES_KEY, mapping=self._gauges)
        self._counts.clear()
        self._gauges.clear()


class RedisCollector(Collector):
    """Reads the counted metrics from Redis at scrape time; ``extra`` adds live gauges."""

    def __init__(self, client: redis.Redis, extra: Collector | None = None) -> None:
        self._client = client
        self._extra = extra

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
