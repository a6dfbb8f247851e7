"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2.extensions
import requests

from ingest_workers.core.config import Settings
from ingest_workers.core.envrefs import expand
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.workerpool import worker_env
from ingest_workers.sources.synthetic import PROFILES, SensorPlan, reading
from ingest_workers.testing.devservices import free_port
from ingest_workers.testing.mock_sources import FEEDS, count_refused_csv, sensors

DOMAIN_TABLES = {"products": "products", "quotes": "stock_quotes", "mentions": "social_mentions", "posts": "posts",
                 "sensors": "sensor_readings"}
# The default catalog's sources: (domain, mock feed path or None for the synthetic source).
DEFAULT_SOURCES = {
    "shop_products": ("products", "/products"), "shop_b_catalog": ("products", "/v2/catalog"),
    "shop_c_products": ("products", "/shop-c/products"), "market_quotes": ("quotes", "/quotes"),
    "twitter_mentions": ("mentions", "/twitter/tweets"), "telegram_mentions": ("mentions", "/telegram/getUpdates"),
    "placeholder_posts": ("posts", "/posts"), "sensor_csv": ("sensors", "/sensors.csv"),
    "sensor_synthetic": ("sensors", None),
}


def scalar(conn: psycopg2.extensions.connection, query: str, *params: object) -> int:
    """The single number ``query`` returns."""
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return int(cur.fetchone()[0])


def resolved(spec: SourceSpec, env: dict[str, str]) -> SourceSpec:
    """``spec`` with its ``${VAR}`` references expanded from ``env``, as a worker would run it."""
    return SourceSpec.from_dict({key: expand(value, env, spec.name, key) for key, value in spec.to_dict().items()})


def write_catalog(path: Path, url: str, name: str = "shop_products", extra: str = "") -> Path:
    """A catalog with one products source at ``url`` (the mock's /products)."""
    path.write_text(f"""
[sources.{name}]
kind = "http_json"
domain = "products"
url = "{url}"
page_size = 100
fields = {{ product_id = "id", name = "title" }}
{extra}
""", encoding="utf-8")
    return path




@contextmanager
def metrics_server(settings: Settings, *args: str) -> Iterator[str]:
    """A real `ingest [ARGS] metrics-server` on a free port; yields its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ingest_workers", *args, "metrics-server", "--port", str(port)],
                               env=worker_env(settings, os.environ), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/metrics") or process.poll() is not None, timeout=20)
        assert process.poll() is None, "ingest metrics-server exited"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until(condition: Callable[[], object], timeout: float, poll: float = 0.1) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(poll)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def expected_refused(source: str, records: int, invalid_every: int = 97) -> int:
    """How many of the ``records`` a default-catalog source serves its stages refuse."""
    path = DEFAULT_SOURCES[source][1]
    if path == "/sensors.csv":
        return count_refused_csv(records, invalid_every)
    if path is None:
        plan = SensorPlan(records=records, seed=42, sensors=6, interval_seconds=60)
        return sum(not PROFILES[r["kind"]][3] <= r["value"] <= PROFILES[r["kind"]][4]
                   for r in (reading(plan, i) for i in range(records)))
    return FEEDS[path].count_refused(records, invalid_every)


def served_record(source: str, index: int) -> dict[str, Any]:
    """Record ``index`` as a default-catalog source receives it (CSV rows as text)."""
    path = DEFAULT_SOURCES[source][1]
    if path is None:
        return reading(SensorPlan(records=index + 1, seed=42, sensors=6), index)
    if path == "/sensors.csv":
        return {k: str(v) for k, v in sensors.csv_reading(index).items()}
    return FEEDS[path].record(index, 97)
