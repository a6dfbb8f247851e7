"""A real Prometheus (Debian's package) scrapes a real `ingest metrics-server` while real
workers ingest: its counters equal the rows in PostgreSQL, every expression of the shipped
dashboard and alert rules works against the real metrics (no silent breakage), each alert
rule fires under its own fault, and none fires in a healthy run."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.ops.metrics import JOBS, MetricsRecorder, announce_job, set_circuit_state
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.conftest import ROOT
from tests.helpers import free_port, metrics_server, scalar, wait_until

pytestmark = pytest.mark.integration

ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "ingest.json"
ALERT_NAMES = {"IngestMetricsServerDown", "IngestSourceUnhealthy", "IngestSourceDegraded", "IngestSourceStale",
               "IngestFailedJobsGrowing", "IngestQueueBackingUp", "IngestNoWorkers", "IngestCircuitOpen"}


class PrometheusAPI:
    def __init__(self, url: str) -> None:
        self.url = url
        self.config = Path("prometheus.yml")  # set by the fixture

    def get(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, str]]:
        """The labels of every pending or firing alert (pending: its condition holds, its `for` runs)."""
        return [alert["labels"] for alert in self.get("alerts")["alerts"]]

    def active_alerts(self) -> set[tuple[str, str]]:
        return {(labels["alertname"], labels.get("source") or labels.get("queue", "")) for labels in self.alerts()}

    def evaluated_since(self, moment: float) -> bool:
        """True once every rule group was evaluated after the Unix time ``moment``."""
        return all(_unix(group["lastEvaluation"]) > moment for group in self.get("rules")["groups"])

    def reconfigure(self, targets: list[str]) -> None:
        """Scrape ``targets`` from now on (none: the ingest job's series go stale at once)."""
        self.write_config(targets)
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def write_config(self, targets: list[str]) -> None:
        # (A job with no targets, rather than none: only then are the old target's series marked stale.)
        self.config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"}, "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "ingest", "static_configs": [{"targets": targets}]}]}))

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.get("rules")["groups"] for rule in group["rules"]]


def _unix(rfc3339: str) -> float:
    # Prometheus writes nanoseconds; fromisoformat takes at most microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], PrometheusAPI]]:
    """``start(target)``: run Prometheus on 127.0.0.1 scraping ``target`` and evaluating the shipped
    alert rules every 0.5 s; returns its API once it is ready. Stopped after the test."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: scripts/test installs Debian's package (apt-get install prometheus)"
    port = free_port()
    api = PrometheusAPI(f"http://127.0.0.1:{port}")
    api.config = tmp_path / "prometheus.yml"
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> PrometheusAPI:
        api.write_config([target])
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={api.config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_until(lambda: _ready(api.url) or processes[0].poll() is not None, timeout=30)
        assert processes[0].poll() is None, (tmp_path / "prometheus.log").read_text()
        return api

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


@pytest.mark.parametrize("worker_class", [None, "rq.worker.SimpleWorker"], ids=["forking", "simple"])
def test_prometheus_counts_match_postgres_and_every_dashboard_and_alert_expression_works(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path, prometheus: Callable[[str], PrometheusAPI], worker_class: str | None,
) -> None:
    mock_server.config = MockConfig(records=1500)
    catalog_path = tmp_path / "catalog.toml"
    catalog_path.write_text(f"""
[sources.shop_good]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/products"
page_size = 300
interval_seconds = 1
fields = {{ product_id = "id", name = "title" }}

[sources.shop_down]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/products"
interval_seconds = 600
""", encoding="utf-8")
    specs = list(load_catalog(catalog_path, os.environ).sources.values())
    queue = make_queue(redis_client, settings)

    with metrics_server(settings, "--catalog", str(catalog_path)) as metrics_url, \
            local_workers(settings, 2, os.environ, tmp_path / "workers.log", worker_class):
        api = prometheus(metrics_url.removeprefix("http://"))
        # Two runs with a scrape between them, so rates and quantiles see an increase. (Prometheus
        # scrapes a new target only after ~5 s, its discovery delay: the first run happens meanwhile.)
        for run_id, jobs_so_far in (("run-1", 2), ("run-2", 4)):
            enqueued = enqueue_run(queue, settings, specs, run_id)
            state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=60)
            assert (state.done, state.failed) == (2, 1)
            wait_until(lambda jobs=jobs_so_far: api.value("sum(ingest_jobs_total)") == jobs, timeout=30)
        set_circuit_state(redis_client, "shop_down", "open")  # as the circuit breaker does

        rows = scalar(pg, "SELECT count(*) FROM products")
        assert rows > 0
        wait_until(lambda: api.value('sum(ingest_records_total{outcome="loaded"})') == rows, timeout=30)
        expected = {("IngestSourceUnhealthy", "shop_down"), ("IngestSourceStale", "shop_good"),
                    ("IngestFailedJobsGrowing", settings.queue), ("IngestCircuitOpen", "shop_down")}
        wait_until(lambda: expected <= api.active_alerts(), timeout=30)

        active = api.active_alerts()
        assert ("IngestSourceUnhealthy", "shop_good") not in active
        assert ("IngestSourceStale", "shop_down") not in active  # it was first tried less than 2 x 600 s ago
        rules = api.rules()
        assert {rule["name"] for rule in rules} == ALERT_NAMES
        for rule in rules:
            assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule
            api.query(rule["query"])  # parses and evaluates as a plain query too
        for expr in dashboard_expressions():
            values = [float(sample["value"][1]) for sample in api.query(expr)]
            assert any(not math.isnan(v) for v in values), f"dashboard expression returns no data: {expr}"


def test_each_alert_fires_under_its_fault_and_none_in_a_healthy_run(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path, prometheus: Callable[[str], PrometheusAPI],
) -> None:
    mock_server.config = MockConfig(records=300)
    # The metrics server's catalog lists only the healthy source: the others are known to the workers alone.
    served = tmp_path / "served.toml"
    served.write_text(f"""
[sources.shop_good]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/products"
page_size = 300
interval_seconds = 600
fields = {{ product_id = "id", name = "title" }}
""", encoding="utf-8")
    workers_only = tmp_path / "workers_only.toml"
    workers_only.write_text("""
[sources.shop_unlisted]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/products"
interval_seconds = 2

[sources.shop_idle]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/products"
queue = "ingest-test-idle"
""", encoding="utf-8")
    good = load_catalog(served, os.environ).sources["shop_good"]
    unlisted, idle = (load_catalog(workers_only, os.environ).sources[name] for name in ("shop_unlisted", "shop_idle"))
    queue = make_queue(redis_client, settings)

    def run(spec: Any, run_id: str, failed: int) -> None:
        enqueued = enqueue_run(queue, settings, [spec], run_id)
        state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=60)
        assert (state.done, state.failed) == (1, failed)

    seen: set[str] = set()
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        with metrics_server(settings, "--catalog", str(served)) as metrics_url:
            api = prometheus(metrics_url.removeprefix("http://"))
            # A healthy run: two successful jobs, scraped, and every rule evaluated after that.
            run(good, "run-1", 0)
            run(good, "run-2", 0)
            wait_until(lambda: api.value("sum(ingest_jobs_total)") == 2, timeout=30)
            scraped = time.time()
            wait_until(lambda: api.evaluated_since(scraped + 1), timeout=30)
            assert api.alerts() == []

            # The faults, one per rule.
            announce_job(redis_client, "shop_degraded", None, time.time())  # as a starting job does
            wait_until(lambda: api.value('sum(ingest_jobs_total{source="shop_degraded"})') == 0, timeout=30)
            recorder = MetricsRecorder()  # then 9 of its 10 jobs succeed, as a worker counts them
            recorder.inc(JOBS, "shop_degraded", "success", amount=9)
            recorder.inc(JOBS, "shop_degraded", "failure", amount=1)
            pipe = redis_client.pipeline()
            recorder.flush_to(pipe)
            pipe.execute()
            run(unlisted, "run-3", 1)  # fails (nothing listens on port 1), never succeeded, not in the catalog
            run(unlisted, "run-4", 1)
            set_circuit_state(redis_client, "shop_unlisted", "open")  # as its circuit breaker does
            for number in range(51):  # more than 50 waiting, on a queue no worker listens to
                enqueue_run(queue, settings, [idle], f"idle-{number}")
            expected = {("IngestSourceUnhealthy", "shop_unlisted"), ("IngestSourceDegraded", "shop_degraded"),
                        ("IngestSourceStale", "shop_unlisted"), ("IngestFailedJobsGrowing", settings.queue),
                        ("IngestCircuitOpen", "shop_unlisted"), ("IngestQueueBackingUp", "ingest-test-idle"),
                        ("IngestNoWorkers", "ingest-test-idle")}
            wait_until(lambda: expected <= api.active_alerts(), timeout=60)
            assert ("IngestSourceUnhealthy", "shop_degraded") not in api.active_alerts()
            assert not {source for name, source in api.active_alerts() if name.startswith("IngestSource")} \
                & {"shop_good"}
            seen |= {name for name, _ in api.active_alerts()}
        # The metrics server stopped: up == 0.
        wait_until(lambda: any(a["alertname"] == "IngestMetricsServerDown" and a.get("instance")
                               for a in api.alerts()), timeout=30)
        # Prometheus scrapes it no more (a scrape config lost in a change): its series are absent.
        api.reconfigure([])
        wait_until(lambda: any(a["alertname"] == "IngestMetricsServerDown" and not a.get("instance")
                               for a in api.alerts()), timeout=30)
        seen.add("IngestMetricsServerDown")
    assert seen == ALERT_NAMES
