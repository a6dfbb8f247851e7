"""A real Prometheus (Debian's package) scrapes a real `ingest metrics-server` while real
workers ingest: its counters equal the rows in PostgreSQL, and every expression of the
shipped dashboard and alert rules works against the real metrics (no silent breakage)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.ops.metrics import set_circuit_state
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.conftest import ROOT
from tests.helpers import free_port, metrics_server, scalar, wait_until

ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "ingest.json"
ALERT_NAMES = {"IngestSourceUnhealthy", "IngestSourceDegraded", "IngestSourceStale", "IngestFailedJobsGrowing",
               "IngestQueueBackingUp", "IngestNoWorkers", "IngestCircuitOpen"}


class PrometheusAPI:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def active_alerts(self) -> set[tuple[str, str]]:
        return {(alert["labels"]["alertname"], alert["labels"].get("source") or alert["labels"].get("queue", ""))
                for alert in self.get("alerts")["alerts"]}

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.get("rules")["groups"] for rule in group["rules"]]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], PrometheusAPI]]:
    """``start(target)``: run Prometheus on 127.0.0.1 scraping ``target`` and evaluating the shipped
    alert rules every 0.5 s; returns its API once it is ready. Stopped after the test."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: scripts/test installs Debian's package (apt-get install prometheus)"
    port = free_port()
    api = PrometheusAPI(f"http://127.0.0.1:{port}")
    config = tmp_path / "prometheus.yml"
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> PrometheusAPI:
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "ingest", "static_configs": [{"targets": [target]}]}],
        }))
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
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
domain = "products"
url = "{mock_server.url}/products"
page_size = 300
interval_seconds = 1
fields = {{ product_id = "id", name = "title" }}

[sources.shop_down]
kind = "http_json"
domain = "products"
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
        assert ("IngestSourceStale", "shop_down") not in active  # it never succeeded: unhealthy says so
        rules = api.rules()
        assert {rule["name"] for rule in rules} == ALERT_NAMES
        for rule in rules:
            assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule
            api.query(rule["query"])  # parses and evaluates as a plain query too
        for expr in dashboard_expressions():
            values = [float(sample["value"][1]) for sample in api.query(expr)]
            assert any(not math.isnan(v) for v in values), f"dashboard expression returns no data: {expr}"
