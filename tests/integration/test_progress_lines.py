"""`ingest enqueue --wait` with its output piped (CI logs, `docker logs`, honcho): a line of
progress every few seconds, not a bar that only a terminal can show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import local_workers, worker_env
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import write_catalog

pytestmark = pytest.mark.integration

LINE = re.compile(r"^jobs (\d+)/2 done, ([\d,]+) records fetched \([\d,]+/s\), ETA (unknown|\d+s)$")


def test_piped_progress_is_a_line_every_interval_with_jobs_records_rate_and_eta(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=1000, latency=0.3)  # 10 pages of 100: about 3 s per source
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products", name="slow_a",
                            extra=f'\n[sources.slow_b]\nkind = "http_json"\ndataset = "products"\n'
                                  f'url = "{mock_server.url}/products"\npage_size = 100\n'
                                  'fields = { product_id = "id", name = "title" }\n')
    env = {**worker_env(settings, os.environ), "INGEST_PROGRESS_INTERVAL": "0.5", "INGEST_PREFETCH_PAGES": "0"}
    with local_workers(settings, 1, os.environ, tmp_path / "workers.log"):
        done = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "enqueue",
                               "--sources", "all", "--wait", "--timeout", "120"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("jobs ")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches) and len(lines) >= 4, done.stderr  # one job alone takes over 2 s: lines every 0.5 s
    done_counts = [int(m.group(1)) for m in matches if m]
    records = [int(m.group(2).replace(",", "")) for m in matches if m]
    assert done_counts == sorted(done_counts) and done_counts[-1] == 2
    assert records == sorted(records) and records[-1] == 2000  # both sources' records, as served
    assert "\r" not in done.stderr  # no bar redrawn in place
