"""``ingest metrics-server``: ``/metrics`` for Prometheus, ``/healthz`` for probes, and the
operator's console (``/``, ``/sources/NAME``, ``/workers`` as HTML, each from its JSON document
under ``/status``: see :mod:`.console`).

Counted metrics come from Redis (see :mod:`.metrics`); queue depths and live
workers are read from RQ's own registries at scrape time. Jobs publish their source's
schedule themselves; the catalog's, when the server has one, stands in until they do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Worker

from ..core.config import Settings
from ..core.connections import connect_postgres
from ..core.errors import ServiceUnavailable
from ..core.models import SourceSpec
from ..core.schedules import period
from .console.routes import Console
from .metrics import RedisCollector
from .queues import queue_depths, worker_counts


class RqCollector(Collector):
    """Queue depth by queue and state, and live workers by queue, from RQ's registries."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("ingest_queue_jobs", "Jobs in each RQ queue by state.", labels=["queue", "state"])
        workers = GaugeMetricFamily("ingest_workers", "Live RQ workers listening on each queue.", labels=["queue"])
        for queue, state, count in queue_depths(self._client):
            depth.add_metric([queue, state], count)
        for queue, count in worker_counts(self._client).items():
            workers.add_metric([queue], count)
        yield depth
        yield workers


def make_registry(client: redis.Redis, sources: Sequence[SourceSpec] = ()) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    now = time.time()
    intervals = {spec.name: seconds for spec in sources if (seconds := period(spec, now))}
    registry.register(RedisCollector(client, extra=RqCollector(client), sources=[s.name for s in sources],
                                     intervals=intervals))
    return registry


def health(client: redis.Redis, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether Redis and PostgreSQL answer and at least one worker is alive."""
    checks: dict[str, Any] = {}
    try:
        client.ping()
        checks["redis"] = "ok"
        checks["workers"] = Worker.count(connection=client)
    except redis.RedisError as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["workers"] = 0
    try:
        connect_postgres(settings.database_url, timeout=2).close()
        checks["postgres"] = "ok"
    except ServiceUnavailable:
        checks["postgres"] = "unreachable"
    ok = checks["redis"] == "ok" and checks["postgres"] == "ok" and checks["workers"] > 0
    return ok, checks


def make_app(client: redis.Redis, settings: Settings, sources: Sequence[SourceSpec] = (),
             env: Mapping[str, str] | None = None) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: the console's pages (``env``: the environment whose values rejected records
    must not show, see :mod:`.console.redaction`), ``/healthz``, and ``/metrics`` for any other path."""
    metrics_app = make_wsgi_app(make_registry(client, sources))
    console = Console(client, settings, sources, env or {})

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        answer = console.answer(path)
        if answer is not None:
            start_response(answer.status, answer.headers())
            return [answer.body]
        if path == "/healthz":
            ok, checks = health(client, settings)
            body = json.dumps({"status": "ok" if ok else "unhealthy", **checks}).encode()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [body]
        return metrics_app(environ, start_response)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        pass


def make_metrics_server(client: redis.Redis, settings: Settings, host: str, port: int,
                        sources: Sequence[SourceSpec] = (), env: Mapping[str, str] | None = None) -> WSGIServer:
    """The server of :func:`make_app` on ``host:port`` (the caller serves it and closes it)."""
    return make_server(host, port, make_app(client, settings, sources, env), handler_class=_QuietHandler)
