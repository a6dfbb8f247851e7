"""`ingest demo --faults` for real: faulty sources next to healthy ones, told in plain words."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.testing.devservices import Services
from ingest_workers.testing.faultdemo import DOWN, FAULTY, HEALTHY, THROTTLED_RATE
from tests.helpers import expected_refused, scalar

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)  # about 20 s here; the demo has 240 s of its own
def test_the_resilience_demo_tells_its_story_and_degrades_gracefully(
    services: Services, pg: psycopg2.extensions.connection, redis_client: redis.Redis, tmp_path: Path,
) -> None:
    records = 2000
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url}
    result = subprocess.run([sys.executable, "-m", "ingest_workers", "demo", "--faults", "--records", str(records),
                             "--port", "0", "--workers", "2"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=240)
    told = result.stdout
    assert result.returncode == 0, told + result.stderr
    # As it happens, in order: retries with back-off, the breaker opening after 3 failures, the probe failing.
    story = [re.search(pattern, told) for pattern in (
        rf"{DOWN}: the source answered 503 \(a server error\); trying again in [\d.]+s",
        rf"{DOWN}: 3 failures in a row: its circuit breaker OPENS",
        rf"{DOWN}: circuit open, so the job does not call the source; it steps aside",
        rf"{DOWN}: the cool-down is over: circuit half-open, ONE probe request",
        rf"{DOWN}: the probe failed: the circuit opens again")]
    assert all(story), told
    assert [m.start() for m in story] == sorted(m.start() for m in story), told
    assert "shop_throttled: the source says 'too many requests' (429)" in told
    rates = [float(rate) for rate in re.findall(r"shop_throttled: ([\d.]+) requests/s", told)]
    assert rates and max(rates) <= THROTTLED_RATE * 1.1, told  # the limit held

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    down = summary["sources"][DOWN]
    assert down["health"] == "unhealthy" and any("HTTP 503" in error for error in down["errors"]), down
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = %s", DOWN) == 0
    others = [f.name for f in FAULTY if f.name != DOWN] + list(HEALTHY)
    for name in others:  # graceful degradation: every other source finished, whole
        counts = summary["sources"][name]
        assert counts["health"] == "healthy" and counts["failed_jobs"] == 0, (name, counts)
    flaky = summary["sources"]["shop_flaky"]
    # Its retries passed (the fault sequence is seeded): every record loaded once or rejected with its reason.
    refused = expected_refused("shop_products", records)
    assert (flaky["loaded"], flaky["rejected"]) == (records - refused, refused)
    assert scalar(pg, "SELECT count(*) FROM products WHERE source = 'shop_flaky'") == records - refused
    assert summary["sources"]["market_quotes"]["loaded"] == records - expected_refused("market_quotes", records)
    assert f"{len(others)} of {len(others)} other sources finished despite the faults" in told
